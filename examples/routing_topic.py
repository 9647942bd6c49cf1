"""Topic routing: "audit.#" matches any number of words after "audit", "audit.*"
exactly one.

    python examples/routing_topic.py
"""

from __future__ import annotations

from inbus import Bus


def main() -> None:
    with Bus() as bus:
        ch = bus.channel()
        ch.exchange_declare("topic_logs", "topic")
        for pattern in ("audit.#", "audit.*"):
            ch.queue_declare(pattern)
            ch.queue_bind(pattern, "topic_logs", routing_key=pattern)
        for key in ("audit.irs.corporate", "audit.irs", "audit"):
            ch.basic_publish("topic_logs", key, f"event {key}")
            print(f" [x] Sent with routing key {key!r}")
        for pattern in ("audit.#", "audit.*"):
            got = []
            while (m := ch.basic_get(pattern, auto_ack=True)) is not None:
                got.append(m.routing_key)
            print(f" [{pattern}] got {got}")


if __name__ == "__main__":
    main()
