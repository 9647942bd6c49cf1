"""Direct routing: each queue is bound with the severities it wants.

    python examples/routing_direct.py
"""

from __future__ import annotations

from inbus import Bus, Message


def main() -> None:
    with Bus() as bus:
        ch = bus.channel()
        ch.exchange_declare("direct_logs", "direct")
        wants = {"errors-to-disk": ["error"], "console": ["info", "warning", "error"]}
        for q, severities in wants.items():
            ch.queue_declare(q)
            for s in severities:
                ch.queue_bind(q, "direct_logs", routing_key=s)

            def show(m: Message, q: str = q) -> None:
                print(f" [{q}] {m.routing_key}: {m.body.decode()!r}")

            ch.basic_consume(q, show, auto_ack=True)
        for severity, text in (("info", "starting"), ("error", "disk failed"),
                               ("debug", "nobody listens to debug")):
            ch.basic_publish("direct_logs", severity, text)
            print(f" [x] Sent {severity}: {text!r}")
        bus.run_until_idle()
        st = bus.statistics()
        print(f" [x] unroutable messages dropped: {st.unroutable}")


if __name__ == "__main__":
    main()
