"""Work queues with manual acks: a worker that dies before acking loses nothing; its
message goes to the other worker, flagged redelivered.

    python examples/work_queues.py
"""

from __future__ import annotations

from inbus import Bus, Message


def main() -> None:
    with Bus() as bus:
        producer = bus.channel()
        producer.queue_declare("task_queue", durable=True)

        held: list[Message] = []  # worker 1 takes its task and never acks it
        c1 = bus.connection()
        w1 = c1.channel()
        w1.basic_qos(prefetch_count=1)

        def worker1(m: Message) -> None:
            print(f" [worker 1] received {m.body.decode()!r}, and dies before acking")
            held.append(m)

        w1.basic_consume("task_queue", worker1)

        w2 = bus.connection().channel()
        w2.basic_qos(prefetch_count=1)

        def worker2(m: Message) -> None:
            flag = " (redelivered)" if m.redelivered else ""
            print(f" [worker 2] received {m.body.decode()!r}{flag}, done, ack")
            m.ack()

        w2.basic_consume("task_queue", worker2)

        for task in ("task 1", "task 2", "task 3"):
            producer.basic_publish("", "task_queue", task)
            print(f" [x] Sent {task!r}")
        bus.run_until_idle()

        print(" [worker 1] connection lost")
        c1.close()  # its unacked message goes back to the queue, first in line
        bus.run_until_idle()
        s = bus.statistics().queue("task_queue")
        print(f" [x] Queue: {s.messages_ready} ready, {s.messages_unacknowledged} unacked, "
              f"{s.acked} acked, {s.redelivered} redelivered")


if __name__ == "__main__":
    main()
