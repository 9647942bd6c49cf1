"""Fair dispatch with prefetch_count=1: a busy worker gets no new task until it acks, so
the free worker takes the next one.

    python examples/fair_dispatch.py
"""

from __future__ import annotations

from inbus import Bus, Message


def main() -> None:
    with Bus() as bus:
        ch = bus.channel()
        ch.queue_declare("task_queue")
        ch.basic_qos(prefetch_count=1)
        busy: list[Message] = []
        done: dict[str, list[str]] = {"slow": [], "fast": []}

        def slow(m: Message) -> None:  # a long task: it keeps the message unacked
            print(f" [slow worker] started {m.body.decode()!r}")
            busy.append(m)

        def fast(m: Message) -> None:
            print(f" [fast worker] did {m.body.decode()!r}")
            done["fast"].append(m.body.decode())
            m.ack()

        ch.basic_consume("task_queue", slow)
        ch.basic_consume("task_queue", fast)
        for i in range(1, 6):
            ch.basic_publish("", "task_queue", f"task {i}")
        bus.run_until_idle()
        print(f" [x] While the slow worker is busy the fast one did {len(done['fast'])} tasks")
        m = busy.pop()
        m.ack()
        done["slow"].append(m.body.decode())
        print(f" [slow worker] finished {m.body.decode()!r}")
        print(f" [x] slow: {done['slow']}, fast: {done['fast']}")


if __name__ == "__main__":
    main()
