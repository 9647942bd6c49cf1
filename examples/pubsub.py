"""Redis-style publish/subscribe on the bus: the seed's first half.

A publisher sends to a channel; every current subscriber receives it; the publisher
learns how many received it; a subscriber sees only what was published after it
subscribed. Patterns use Redis's glob rules.

    python examples/pubsub.py
"""

from __future__ import annotations

from inbus import Bus


def main() -> None:
    with Bus() as bus:
        print(f" [x] 'news' before anyone listens: {bus.publish('news', 'early')} receivers")

        alice = bus.pubsub(ignore_subscribe_messages=True)
        alice.subscribe("news")
        bob = bus.pubsub(ignore_subscribe_messages=True)
        bob.psubscribe("n*")

        n = bus.publish("news", "inbus 0.1 released")
        print(f" [x] 'news' -> {n} receivers (a channel and a pattern subscriber)")
        n = bus.publish("notes", "pattern only")
        print(f" [x] 'notes' -> {n} receiver")

        for name, sub, expected in (("alice", alice, 1), ("bob", bob, 2)):
            got = 0
            for _ in range(expected + 1):  # one more read: the skipped confirmation
                # As in redis-py, a skipped subscribe confirmation reads as None.
                m = sub.get_message(timeout=1.0)
                if m is None:
                    continue
                got += 1
                via = f" via pattern {m['pattern'].decode()}" if m["pattern"] else ""
                print(f" [{name}] {m['channel'].decode()}: {m['data'].decode()}{via}")

        print(f" [x] channels with subscribers: {bus.pubsub_channels()}, "
              f"patterns: {bus.pubsub_numpat()}")
        alice.close()
        bob.close()


if __name__ == "__main__":
    main()
