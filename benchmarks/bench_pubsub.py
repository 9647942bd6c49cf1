"""Redis-style pub/sub, end to end: publish -> get_message, per delivery.

Rows, measured side by side in one run (python benchmarks/bench_pubsub.py [--quick]):

* ``1 subscriber``: one channel subscriber; each operation is one publish and the
  get_message that returns it. Rows: the CPython floor (a deque append + popleft),
  inbus's native ``PubSubHub``, ``Bus.publish`` / ``Bus.pubsub`` when the Bus has them,
  ``inbus.compat.redis`` (the redis-py look-alike), fakeredis, and redis-py against a
  real Redis on 127.0.0.1:6379 (one publish at a time, and pipelined by 100) when it
  answers.
* ``10 subscribers``: one publish reaches 10 channel subscribers; cost per delivery.
* ``K=... patterns``: one channel subscriber plus K subscribed patterns that do not match
  the channel (held by another subscriber). "indexed" patterns open with a literal or are
  ``*suffix`` (``other17.*``, ``*.x17``); "scanned" ones open with a wildcard
  (``*17*q``), which inbus must test one by one. Peers get the indexed set.

Peers' ratios are "this row's median / the inbus row's median": 95x means 95 times the
cost of inbus.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
from collections import deque
from collections.abc import Callable
from typing import Any

_HERE = os.path.dirname(os.path.abspath(__file__))
if os.path.dirname(_HERE) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, os.path.dirname(_HERE))
try:
    from benchmarks.harness import Suite
except ImportError:  # pragma: no cover - run with benchmarks/ as the working directory
    from harness import Suite  # type: ignore[no-redef]

from inbus.pubsub import PubSubHub  # noqa: E402

INBUS = "inbus: PubSubHub"
CH = b"news.sport"


def _redis_up() -> bool:
    try:
        socket.create_connection(("127.0.0.1", 6379), timeout=0.5).close()
        return True
    except OSError:
        return False


def _patterns(k: int, kind: str) -> list[bytes]:
    if kind == "indexed":
        return [(b"other%d.*" % i) if i % 2 else (b"*.x%d" % i) for i in range(k)]
    return [b"*%d*q" % i for i in range(k)]


def _loop(publish: Callable[[bytes, bytes], Any], get: Callable[[], Any]) -> Callable[[int], None]:
    def run(n: int) -> None:
        for _ in range(n):
            publish(CH, b"x")
            if get() is None:
                raise RuntimeError("message lost")
    return run


def _fanout(publish: Callable[[bytes, bytes], Any], gets: list[Callable[[], Any]]
            ) -> Callable[[int], None]:
    per = len(gets)

    def run(n: int) -> None:
        for _ in range(n // per):
            publish(CH, b"x")
            for g in gets:
                if g() is None:
                    raise RuntimeError("message lost")
    return run


def _wait(get: Callable[..., Any]) -> Callable[[], Any]:
    def recv() -> Any:  # a real server's message may still be on the wire
        for _ in range(1000):
            m = get(timeout=1.0)
            if m is not None:
                return m
        return None
    return recv


# -- subscribers for each system ---------------------------------------------------------

def inbus_subs(n: int, patterns: list[bytes] = ()) -> tuple[Any, list[Callable[[], Any]]]:  # type: ignore[assignment]
    hub = PubSubHub()
    subs = [hub.pubsub(ignore_subscribe_messages=True) for _ in range(n)]
    for s in subs:
        s.subscribe(CH)
        s.get_message()
    if patterns:
        hub.pubsub().psubscribe(*patterns)
    return hub.publish, [s.get_message for s in subs]


def bus_subs(n: int) -> tuple[Any, list[Callable[[], Any]]] | None:
    try:
        from inbus import Bus
    except ImportError:
        return None
    if not hasattr(Bus, "publish"):
        return None
    bus = Bus()
    subs = [bus.pubsub(ignore_subscribe_messages=True) for _ in range(n)]
    for s in subs:
        s.subscribe(CH)
        s.get_message()
    return bus.publish, [s.get_message for s in subs]


def compat_subs(n: int) -> tuple[Any, list[Callable[[], Any]]]:
    from inbus.compat import redis as compat
    r = compat.Redis(port=16379)
    subs = [r.pubsub(ignore_subscribe_messages=True) for _ in range(n)]
    for s in subs:
        s.subscribe(CH)
        s.get_message()
    return r.publish, [s.get_message for s in subs]


def fake_subs(n: int, patterns: list[bytes] = ()) -> tuple[Any, list[Callable[[], Any]]]:  # type: ignore[assignment]
    import fakeredis
    server = fakeredis.FakeServer()
    r = fakeredis.FakeRedis(server=server)
    subs = [r.pubsub(ignore_subscribe_messages=True) for _ in range(n)]
    for s in subs:
        s.subscribe(CH)
        s.get_message()
    if patterns:
        holder = r.pubsub()
        holder.psubscribe(*patterns)
    return r.publish, [s.get_message for s in subs]


def redis_subs(n: int, patterns: list[bytes] = ()) -> tuple[Any, list[Callable[[], Any]], Any]:  # type: ignore[assignment]
    import redis
    r = redis.Redis(host="127.0.0.1", port=6379)
    subs = [r.pubsub(ignore_subscribe_messages=True) for _ in range(n)]
    for s in subs:
        s.subscribe(CH)
        while s.get_message(timeout=1.0) is None and not s.subscribed:
            pass
    holder = None
    if patterns:
        holder = r.pubsub()
        holder.psubscribe(*patterns)
    return r.publish, [_wait(s.get_message) for s in subs], (r, holder)


def redis_pipelined(r: Any, recv: Callable[[], Any]) -> Callable[[int], None]:
    def run(n: int) -> None:
        for _ in range(n // 100):
            pipe = r.pipeline(transaction=False)
            for _ in range(100):
                pipe.publish(CH, b"x")
            pipe.execute()
            for _ in range(100):
                if recv() is None:
                    raise RuntimeError("message lost")
    return run


def main(quick: bool = False, json_path: str | None = None) -> Suite:
    """Run the pub/sub suite (``quick``: fewer operations, K <= 1k, 3 repeats)."""
    suite = Suite("Pub/sub", repeats=3 if quick else 5)
    big, small = (20_000, 300) if quick else (100_000, 2_000)
    up = _redis_up()

    # -- one subscriber --
    g = "1 subscriber"
    q: deque[bytes] = deque()

    def floor(n: int) -> None:
        app, pop = q.append, q.popleft
        for _ in range(n):
            app(b"x")
            pop()
    suite.add("floor: deque append+popleft", floor, big, group=g)
    pub, gets = inbus_subs(1)
    suite.add(INBUS, _loop(pub, gets[0]), big, group=g, ref="floor: deque append+popleft")
    bus = bus_subs(1)
    if bus is not None:
        suite.add("inbus: Bus.publish", _loop(bus[0], bus[1][0]), big, group=g, ref=INBUS)
    else:
        suite.skip("inbus: Bus.publish", "inbus.Bus has no publish yet", group=g)
    pub, gets = compat_subs(1)
    suite.add("inbus.compat.redis", _loop(pub, gets[0]), big, group=g, ref=INBUS)
    pub, gets = fake_subs(1)
    suite.add("fakeredis", _loop(pub, gets[0]), small, group=g, ref=INBUS)
    if up:
        pub, gets, (r, _) = redis_subs(1)
        suite.add("redis-py + Redis (loopback)", _loop(pub, gets[0]), small, group=g, ref=INBUS)
        suite.add("redis-py + Redis, publish pipelined x100, get_message each", redis_pipelined(r, gets[0]), small * 5,
                  group=g, ref=INBUS)
    else:
        suite.skip("redis-py + Redis (loopback)", "127.0.0.1:6379 does not answer", group=g)

    # -- ten subscribers (cost per delivery) --
    g = "10 subscribers"
    pub, gets = inbus_subs(10)
    suite.add(INBUS, _fanout(pub, gets), big, group=g)
    pub, gets = fake_subs(10)
    suite.add("fakeredis", _fanout(pub, gets), small * 5, group=g, ref=INBUS)
    if up:
        pub, gets, _ = redis_subs(10)
        suite.add("redis-py + Redis (loopback)", _fanout(pub, gets), small * 5, group=g,
                  ref=INBUS)

    # -- K non-matching patterns --
    for k in ([10, 1_000] if quick else [10, 100, 1_000, 10_000]):
        g = f"K={k} patterns"
        pub, gets = inbus_subs(1, _patterns(k, "indexed"))
        suite.add(INBUS, _loop(pub, gets[0]), big, group=g,
                  note="indexed patterns (lit*, *lit)")
        pub, gets = inbus_subs(1, _patterns(k, "scanned"))
        suite.add("inbus: PubSubHub, scanned patterns", _loop(pub, gets[0]),
                  max(200, big // max(1, k // 10)), group=g, ref=INBUS,
                  note="patterns opening with a wildcard (*17*q): tested one by one")
        peer_n = max(50, small // max(1, k // 100))
        pub, gets = fake_subs(1, _patterns(k, "indexed"))
        suite.add("fakeredis", _loop(pub, gets[0]), peer_n, group=g, ref=INBUS)
        if up:
            pub, gets, _ = redis_subs(1, _patterns(k, "indexed"))
            suite.add("redis-py + Redis (loopback)", _loop(pub, gets[0]), peer_n, group=g,
                      ref=INBUS)
    suite.run()
    suite.report()
    if json_path:
        suite.write_json(json_path)
    return suite


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="short run, K <= 1k")
    ap.add_argument("--json", default=None,
                    help="write results here (default: benchmarks/results/pubsub.json "
                         "for a full run, nothing for --quick)")
    args = ap.parse_args()
    path = args.json
    if path is None and not args.quick:
        path = os.path.join(_HERE, "results", "pubsub.json")
    main(quick=args.quick, json_path=path)
