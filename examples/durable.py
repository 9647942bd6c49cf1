"""A durable queue and persistent messages (delivery_mode=2).

    python examples/durable.py              # in memory: the flags are kept, nothing written
    python examples/durable.py --db app.db  # in SQLite: the message survives a restart
"""

from __future__ import annotations

import argparse

from inbus import BasicProperties, Bus


def main(path: str | None = None) -> None:
    persistent = BasicProperties(delivery_mode=2)
    with Bus(path) as bus:
        ch = bus.channel()
        ch.queue_declare("orders", durable=True)
        ch.basic_publish("", "orders", "order #1", properties=persistent)
        s = bus.statistics().queue("orders")
        print(f" [x] Sent a persistent message to durable queue 'orders' "
              f"({'in ' + path if path else 'in memory'}); ready: {s.messages_ready}")
    if path is None:
        print(" [x] In memory, the bus keeps durable flags but nothing outlives it")
        return
    print(" [x] Bus closed; opening it again")
    with Bus(path) as bus:
        ch = bus.channel()
        m = ch.basic_get("orders")
        assert m is not None
        print(f" [x] After the restart: {m.body.decode()!r}, "
              f"delivery_mode={m.properties.delivery_mode}")
        m.ack()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="durable queue + persistent messages")
    parser.add_argument("--db", help="keep durable state in this SQLite file")
    main(parser.parse_known_args()[0].db)  # known args: `python -m inbus demo` runs it too
