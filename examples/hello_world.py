"""Hello world: one queue, one message, taken with basic_get.

    python examples/hello_world.py
"""

from __future__ import annotations

from inbus import Bus


def main() -> None:
    with Bus() as bus:
        ch = bus.channel()
        ch.queue_declare("hello")
        ch.basic_publish(exchange="", routing_key="hello", body="Hello World!")
        print(" [x] Sent 'Hello World!'")
        m = ch.basic_get("hello", auto_ack=True)
        assert m is not None
        print(f" [x] Received {m.body.decode()!r} ({m.message_count} left in the queue)")
        print(f" [x] The queue is now empty: basic_get returns {ch.basic_get('hello')}")


if __name__ == "__main__":
    main()
