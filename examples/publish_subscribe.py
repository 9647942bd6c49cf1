"""Publish/subscribe: a fanout exchange; each subscriber has its own exclusive,
server-named queue.

    python examples/publish_subscribe.py
"""

from __future__ import annotations

from inbus import Bus, Message


def main() -> None:
    with Bus() as bus:
        emitter = bus.channel()
        emitter.exchange_declare("logs", "fanout")
        names = []
        for who in ("subscriber A", "subscriber B"):
            ch = bus.connection().channel()
            q = ch.queue_declare("", exclusive=True).queue
            ch.queue_bind(q, "logs")
            names.append(q)

            def on_log(m: Message, who: str = who) -> None:
                print(f" [{who}] {m.body.decode()!r}")

            ch.basic_consume(q, on_log, auto_ack=True)
            print(f" [{who}] listening on its own queue {q[:12]}...")
        for line in ("info: hello", "warning: disk almost full"):
            emitter.basic_publish("logs", "", line)
            print(f" [x] Sent {line!r}")
        n = bus.run_until_idle()
        print(f" [x] {n} deliveries: every subscriber got every message")


if __name__ == "__main__":
    main()
