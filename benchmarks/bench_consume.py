"""Consumers end to end: publish -> callback -> ack (issue 4), and the cost of queue
features (issue 5), side by side with the CPython floors and peers in one run.

``python benchmarks/bench_consume.py [--quick]`` (results JSON:
``benchmarks/results/consume.json`` for a full run). One operation = one published
100-byte message that reaches its callback (and is acked, for manual-ack rows), one
queue behind a direct exchange, unless the group says otherwise.

Groups (each row's ratio is its median over the reference row's median, same run):

* ``caller's thread`` (ref: the single-thread floor, a deque append + popleft + call):
  inbus delivered by ``bus.run_until_idle()`` after every batch of 100 publishes, (a)
  auto_ack, (b) manual ack (the callback is a function that calls ``m.ack()``), (c) 4
  consumers on 4 channels with prefetch 100 and manual ack; (b) once more with the
  callback object the rows had before the eighth session (see "the consumers'
  callbacks" below); peers: pyee ``emit``, blinker ``Signal.send``, kombu
  ``memory://`` publish + ``drain_events`` (ack in the callback), pika + RabbitMQ on
  127.0.0.1:5672 when it answers (publish, then process events until the callback ran
  and acked; a round trip per message, so a smaller N).
* ``background threads`` (ref: the cross-thread floor, a SimpleQueue from the producer to
  a consumer thread that calls the callback): ``Bus(background=True)``, callbacks on each
  channel's worker thread; the clock stops when the last callback ran (each callback
  appends to a list; the publishing thread looks at its length every millisecond). Peer: pyzmq
  ``inproc://`` PUSH -> PULL to a consumer thread, when pyzmq is installed.
* ``skeleton`` rows, in both groups (``benchmarks/skeleton.py``): the least a thread-safe
  manual-ack bus must do (one lock, a route dict, delivery tags, one message object, an
  unacked dict, prefetch credit with a ready deque, callbacks outside the lock, an ack
  that takes the lock), with none of inbus's features. Not a peer: a yardstick for how
  much of inbus's ratio to the CPython floors the job itself costs.
* ``fanout 10`` (ref: blinker ``Signal.send`` with 10 receivers): one publish to a fanout
  exchange bound to 10 queues, each with an auto_ack consumer; cost per publish (10
  callbacks).
* ``features`` (ref: the plain queue): publish -> consume -> manual ack through a plain
  queue, an ``x-max-priority`` 10 queue (priorities 0-9 mixed), an ``x-message-ttl``
  queue and per-message ``expiration``.

Memory: 1M queued 100-byte messages (distinct bodies, no consumer) in a fresh
subprocess; VmRSS before and after (stored under "memory" in the JSON).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from queue import SimpleQueue
from typing import Any

_HERE = os.path.dirname(os.path.abspath(__file__))
if os.path.dirname(_HERE) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, os.path.dirname(_HERE))
try:
    from benchmarks.harness import Suite
    from benchmarks.skeleton import SkeletonBus
except ImportError:  # pragma: no cover - run with benchmarks/ as the working directory
    from harness import Suite  # type: ignore[no-redef]
    from skeleton import SkeletonBus  # type: ignore[no-redef]

from inbus import BasicProperties, Bus  # noqa: E402

BODY = b"x" * 100
BATCH = 100
FLOOR = "floor: deque append+popleft+call"
TFLOOR = "floor: SimpleQueue -> consumer thread"
SKEL = "skeleton: minimal thread-safe bus, manual ack"
SKEL4 = "skeleton: minimal thread-safe bus, 4 consumers, prefetch 100"
PLAIN = "inbus: plain queue"
COUNTED = "inbus: manual ack, counting callback object (the harness before session 8)"
BG_COUNTED = ("inbus background: manual ack, counting callback object (the harness before "
              "session 8)")


def _rabbit_up() -> bool:
    try:
        socket.create_connection(("127.0.0.1", 5672), timeout=0.5).close()
        return True
    except OSError:
        return False


# --- floors ---------------------------------------------------------------------------------

def _callback(m: Any) -> None:
    """The floors' callback: a Python function call, as a consumer callback is."""


def floor_single(n: int) -> None:
    q: deque[bytes] = deque()
    app, pop = q.append, q.popleft
    cb = _callback
    for _ in range(n):
        app(BODY)
        cb(pop())


def floor_threads(n: int) -> None:
    q: SimpleQueue[Any] = SimpleQueue()
    got: list[bytes] = []

    def consumer() -> None:
        get, cb = q.get, _callback
        k = 0
        while True:
            item = get()
            if item is None:
                got.append(k)
                return
            cb(item)
            k += 1
    t = threading.Thread(target=consumer)
    t.start()
    put = q.put
    for _ in range(n):
        put(BODY)
    put(None)
    t.join()
    assert got == [n]


# --- the consumers' callbacks ----------------------------------------------------------------
#
# The inbus and skeleton rows' callbacks are plain functions, as the floors' and the peers'
# are: ``m.ack()`` for manual-ack rows and nothing else; on background threads they also
# append to a list the clock watches (the SimpleQueue floor's consumer counts and checks
# for its sentinel too). Until the eighth session these rows called an instance of a
# counting class (``Counter``, kept for the two "counting callback object" rows): that
# call and its bookkeeping cost 60 ns per message more than the floor's callback (102 vs
# 42 ns in the floor's own loop), which the ratios charged to inbus; and its unlocked
# count could lose increments between 4 worker threads.

def _acking(m: Any) -> None:
    """A manual-ack consumer's callback."""
    m.ack()


def ticking(ack: bool, got: list[None]) -> Any:
    """A background consumer's callback: ack (if ``ack``), then one append to ``got``."""
    tick = got.append
    if ack:
        def cb(m: Any) -> None:
            m.ack()
            tick(None)
    else:
        def cb(m: Any) -> None:
            tick(None)
    return cb


class Counter:
    """The callback object of the sessions before the eighth (see above): counts (and
    acks, when ``ack``) and signals at a target."""

    def __init__(self, ack: bool) -> None:
        self.n = 0
        self.target = -1
        self.done = threading.Event()
        self.ack = ack

    def __call__(self, m: Any) -> None:
        if self.ack:
            m.ack()
        self.n += 1
        if self.n == self.target:
            self.done.set()


# --- inbus in the caller's thread -------------------------------------------------------------

def pumped(publish: Any, run: Any) -> Any:
    """The caller's-thread case: batches of BATCH publishes, each followed by ``run()``
    (which returns the number of callbacks it ran)."""
    def go(n: int) -> None:
        ran = 0
        for _ in range(n // BATCH):
            for _ in range(BATCH):
                publish("x", "k", BODY)
            ran += run()
        assert ran == n // BATCH * BATCH, "lost messages"
    return go


def backgrounded(publish: Any, got: list[None]) -> Any:
    """The background case: n publishes; the clock stops when the last callback ran
    (``got`` has n entries; this thread looks every millisecond)."""
    def go(n: int) -> None:
        got.clear()
        for _ in range(n):
            publish("x", "k", BODY)
        deadline = time.monotonic() + 120
        while len(got) < n:
            if time.monotonic() > deadline:
                raise RuntimeError(f"background delivery stalled at {len(got)}/{n}")
            time.sleep(0.001)
        assert len(got) == n, "duplicated deliveries"
    return go


def counted_pumped(publish: Any, run: Any, cb: Counter) -> Any:
    """``pumped`` as it was before the eighth session, with a :class:`Counter`."""
    def go(n: int) -> None:
        start = cb.n
        for _ in range(n // BATCH):
            for _ in range(BATCH):
                publish("x", "k", BODY)
            run()
        assert cb.n - start == n // BATCH * BATCH, "lost messages"
    return go


def counted_backgrounded(publish: Any, cb: Counter) -> Any:
    """``backgrounded`` as it was before the eighth session, with a :class:`Counter`."""
    def go(n: int) -> None:
        cb.done.clear()
        cb.target = cb.n + n
        for _ in range(n):
            publish("x", "k", BODY)
        if not cb.done.wait(120):
            raise RuntimeError(f"background delivery stalled at {cb.n}/{cb.target}")
    return go


def _inbus_topology(bus: Bus, args: dict[str, Any] | None = None) -> Any:
    pub = bus.channel()
    pub.exchange_declare("x", "direct")
    pub.queue_declare("q", arguments=args)
    pub.queue_bind("q", "x", "k")
    return pub


def _inbus_consumers(bus: Bus, cb: Any, ack: bool, consumers: int, prefetch: int) -> None:
    for _ in range(consumers):
        ch = bus.channel()
        if prefetch:
            ch.basic_qos(prefetch_count=prefetch)
        ch.basic_consume("q", cb, auto_ack=not ack)


def inbus_pump(ack: bool, consumers: int = 1, prefetch: int = 0,
               args: dict[str, Any] | None = None,
               props: list[BasicProperties] | None = None, counted: bool = False) -> Any:
    bus = Bus()
    pub = _inbus_topology(bus, args)
    publish, run = pub.basic_publish, bus.run_until_idle
    if counted:
        counter = Counter(ack)
        _inbus_consumers(bus, counter, ack, consumers, prefetch)
        return counted_pumped(publish, run, counter), bus
    _inbus_consumers(bus, _acking if ack else _callback, ack, consumers, prefetch)
    if props is None:
        return pumped(publish, run), bus
    k = len(props)

    def go(n: int) -> None:
        i = ran = 0
        for _ in range(n // BATCH):
            for _ in range(BATCH):
                publish("x", "k", BODY, props[i % k])
                i += 1
            ran += run()
        assert ran == n // BATCH * BATCH, "lost messages"
    return go, bus


def inbus_background(ack: bool, consumers: int = 1, prefetch: int = 0,
                     counted: bool = False) -> Any:
    bus = Bus(background=True)
    publish = _inbus_topology(bus).basic_publish
    if counted:
        counter = Counter(ack)
        _inbus_consumers(bus, counter, ack, consumers, prefetch)
        return counted_backgrounded(publish, counter), bus
    got: list[None] = []
    _inbus_consumers(bus, ticking(ack, got), ack, consumers, prefetch)
    return backgrounded(publish, got), bus


def inbus_fanout(k: int) -> Any:
    bus = Bus()
    ch = bus.channel()
    ch.exchange_declare("f", "fanout")
    for i in range(k):
        ch.queue_declare(f"q{i}")
        ch.queue_bind(f"q{i}", "f")
        ch.basic_consume(f"q{i}", _callback, auto_ack=True)
    publish, run = ch.basic_publish, bus.run_until_idle

    def go(n: int) -> None:
        ran = 0
        for _ in range(n // BATCH):
            for _ in range(BATCH):
                publish("f", "", BODY)
            ran += run()
        assert ran == n // BATCH * BATCH * k, "lost messages"
    return go, bus


# --- the minimal bus skeleton (benchmarks/skeleton.py) -------------------------------------

def skeleton_pump(consumers: int = 1, prefetch: int = 0) -> Any:
    bus = SkeletonBus()
    q = bus.bind("x", "k")
    for _ in range(consumers):
        bus.consume(q, _acking, prefetch)
    return pumped(bus.publish, bus.run_until_idle), bus


def skeleton_background(consumers: int = 1, prefetch: int = 0) -> Any:
    bus = SkeletonBus(background=True)
    q = bus.bind("x", "k")
    got: list[None] = []
    cb = ticking(True, got)
    for _ in range(consumers):
        bus.consume(q, cb, prefetch)
    return backgrounded(bus.publish, got), bus


# --- peers ------------------------------------------------------------------------------------

def pyee_emit() -> Any:
    from pyee import EventEmitter
    ee = EventEmitter()
    got: list[bytes] = []
    ee.on("m", got.append)

    def go(n: int) -> None:
        emit = ee.emit
        for _ in range(n):
            emit("m", BODY)
    return go


def blinker_send(k: int) -> Any:
    from blinker import Signal
    sig = Signal()
    receivers = []
    for _ in range(k):
        def r(sender: Any) -> None:
            return None
        receivers.append(r)  # blinker holds weak references: keep them alive
        sig.connect(r)

    def go(n: int) -> None:
        send = sig.send
        for _ in range(n):
            send(BODY)
    go.receivers = receivers  # type: ignore[attr-defined]
    return go


def kombu_memory() -> Any:
    from kombu import Connection, Consumer, Exchange, Producer, Queue
    conn = Connection("memory://")
    ch = conn.channel()
    x = Exchange("bench-x", "direct", durable=False)
    q = Queue("bench-q", x, routing_key="k", durable=False)
    q(ch).declare()
    got = [0]

    def cb(body: Any, message: Any) -> None:
        message.ack()
        got[0] += 1
    cons = Consumer(ch, queues=[q], callbacks=[cb], accept=None)
    cons.consume()
    prod = Producer(ch, exchange=x, routing_key="k")

    def go(n: int) -> None:
        start = got[0]
        for _ in range(n):
            prod.publish(BODY, content_type="application/octet-stream",
                         content_encoding="binary")
            conn.drain_events(timeout=5)
        assert got[0] - start == n
    return go, (conn, cons)


def zmq_inproc() -> Any:
    """pyzmq: PUSH -> PULL over ``inproc://`` to a consumer thread that calls the callback
    (the sockets are made once; each run starts its consumer thread, as the floor does)."""
    import types

    import zmq
    ctx = zmq.Context()
    push = ctx.socket(zmq.PUSH)
    push.bind("inproc://inbus-bench")
    pull = ctx.socket(zmq.PULL)
    pull.connect("inproc://inbus-bench")

    def go(n: int) -> None:
        got: list[int] = []

        def consumer() -> None:
            recv, cb = pull.recv, _callback
            for _ in range(n):
                cb(recv())
            got.append(n)
        t = threading.Thread(target=consumer)
        t.start()
        send = push.send
        for _ in range(n):
            send(BODY)
        t.join()
        assert got == [n]

    def close() -> None:
        push.close(0)
        pull.close(0)
        ctx.term()
    return go, types.SimpleNamespace(close=close)


def pika_rabbit() -> Any:
    import pika
    conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1"))
    ch = conn.channel()
    ch.queue_declare("inbus-bench-consume", exclusive=True, auto_delete=True)
    got = [0]

    def cb(c: Any, method: Any, props: Any, body: bytes) -> None:
        c.basic_ack(method.delivery_tag)
        got[0] += 1
    ch.basic_consume("inbus-bench-consume", cb)

    def go(n: int) -> None:
        for _ in range(n):
            want = got[0] + 1
            ch.basic_publish("", "inbus-bench-consume", BODY)
            while got[0] < want:
                conn.process_data_events(time_limit=1)
    return go, conn


# --- memory -------------------------------------------------------------------------------------

_MEM_SCRIPT = r"""
import json, resource, sys
sys.path.insert(0, sys.argv[1])
def rss():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
from inbus import Bus
n = int(sys.argv[2])
bus = Bus()
ch = bus.channel()
ch.exchange_declare("x", "direct")
ch.queue_declare("q")
ch.queue_bind("q", "x", "k")
before = rss()
pub = ch.basic_publish
for i in range(n):
    pub("x", "k", b"%0100d" % i)
after = rss()
assert bus.statistics().vhosts["/"].queues["q"].messages_ready == n
print(json.dumps({"messages": n, "body_bytes": 100, "rss_before": before,
                  "rss_after": after,
                  "maxrss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))
"""


def measure_memory(n: int) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-c", _MEM_SCRIPT, os.path.dirname(_HERE), str(n)],
                         capture_output=True, text=True, check=True, timeout=600)
    d: dict[str, Any] = json.loads(out.stdout)
    d["per_message_bytes"] = (d["rss_after"] - d["rss_before"]) / n
    return d


# --- the suite ----------------------------------------------------------------------------------

def main(quick: bool = False, json_path: str | None = None) -> Suite:
    """Run the consumer suite (``quick``: N = 20k, 3 repeats, 100k messages for memory)."""
    suite = Suite("Consumers and features", repeats=3 if quick else 5)
    n = 20_000 if quick else 200_000
    n_kombu = 2_000 if quick else 20_000
    n_pika = 300 if quick else 2_000
    keep: list[Any] = []

    g = "caller's thread"
    suite.add(FLOOR, floor_single, n, group=g)
    for name, kw in (("inbus: auto_ack", dict(ack=False)),
                     ("inbus: manual ack", dict(ack=True)),
                     ("inbus: 4 consumers, prefetch 100", dict(ack=True, consumers=4,
                                                               prefetch=100)),
                     (COUNTED, dict(ack=True, counted=True))):
        go, bus = inbus_pump(**kw)  # type: ignore[arg-type]
        keep.append(bus)
        suite.add(name, go, n, group=g, ref=FLOOR)
    for name, kw in ((SKEL, {}), (SKEL4, dict(consumers=4, prefetch=100))):
        go, sk = skeleton_pump(**kw)
        keep.append(sk)
        suite.add(name, go, n, group=g, ref=FLOOR)
    suite.add("pyee: emit", pyee_emit(), n, group=g, ref=FLOOR)
    suite.add("blinker: Signal.send", blinker_send(1), n, group=g, ref=FLOOR)
    go, k = kombu_memory()
    keep.append(k)
    suite.add("kombu memory://: publish + drain_events", go, n_kombu, group=g, ref=FLOOR)
    if _rabbit_up():
        go, conn = pika_rabbit()
        keep.append(conn)
        suite.add("pika + RabbitMQ (loopback)", go, n_pika, group=g, ref=FLOOR)
    else:
        suite.skip("pika + RabbitMQ (loopback)", "nothing listens on 127.0.0.1:5672", group=g)

    g = "background threads"
    suite.add(TFLOOR, floor_threads, n, group=g)
    for name, kw in (("inbus background: auto_ack", dict(ack=False)),
                     ("inbus background: manual ack", dict(ack=True)),
                     ("inbus background: 4 consumers, prefetch 100",
                      dict(ack=True, consumers=4, prefetch=100)),
                     (BG_COUNTED, dict(ack=True, counted=True))):
        go, bus = inbus_background(**kw)  # type: ignore[arg-type]
        keep.append(bus)
        suite.add(name, go, n, group=g, ref=TFLOOR)
    try:
        go, z = zmq_inproc()
    except ImportError:
        suite.skip("pyzmq: inproc PUSH -> PULL consumer thread", "pyzmq is not installed",
                   group=g)
    else:
        keep.append(z)
        suite.add("pyzmq: inproc PUSH -> PULL consumer thread", go, n, group=g, ref=TFLOOR)
    for name, kw in ((SKEL, {}), (SKEL4, dict(consumers=4, prefetch=100))):
        go, sk = skeleton_background(**kw)
        keep.append(sk)
        suite.add(name, go, n, group=g, ref=TFLOOR)

    g = "fanout 10"
    suite.add("blinker: Signal.send, 10 receivers", blinker_send(10), n // 4, group=g)
    go, bus = inbus_fanout(10)
    keep.append(bus)
    suite.add("inbus: fanout to 10 queues", go, n // 4, group=g,
              ref="blinker: Signal.send, 10 receivers")

    g = "features"
    prio = [BasicProperties(priority=i) for i in (3, 7, 0, 9, 5, 1, 8, 2, 6, 4)]
    rows = [(PLAIN, {}, None),
            ("inbus: priority queue (x-max-priority 10)", {"x-max-priority": 10}, prio),
            ("inbus: TTL queue (x-message-ttl 60s)", {"x-message-ttl": 60_000}, None),
            ("inbus: per-message expiration", {}, [BasicProperties(expiration="60000")])]
    for name, args, props in rows:
        go, bus = inbus_pump(True, args=args, props=props)
        keep.append(bus)
        suite.add(name, go, n, group=g, ref=None if name == PLAIN else PLAIN)

    suite.run()
    for obj in keep:
        close = getattr(obj, "close", None)
        if close is not None:
            close()
        elif isinstance(obj, tuple):
            obj[0].release()
    suite.report()
    mem = measure_memory(100_000 if quick else 1_000_000)
    print(f"memory: {mem['messages']} queued 100-byte messages: RSS "
          f"{mem['rss_after'] / 1e6:.0f} MB = {mem['rss_after'] / 2**20:.0f} MiB (process "
          f"total; {mem['rss_before'] / 1e6:.0f} MB before), "
          f"{mem['per_message_bytes']:.0f} bytes per message")
    _ratios(suite)
    if json_path:
        suite.write_json(json_path)
        with open(json_path) as f:
            data = json.load(f)
        data["memory"] = mem
        data["notes"] = {"batch": BATCH, "n": n, "n_kombu": n_kombu, "n_pika": n_pika}
        with open(json_path, "w") as f:
            json.dump(data, f, indent=1)
    return suite


def _ratios(suite: Suite) -> None:
    def r(a: str, b: str, g: str) -> float:
        return suite.ratio(a, b, g)
    lines = [
        ("manual ack / single-thread floor (target <= 20x)",
         r("inbus: manual ack", FLOOR, "caller's thread")),
        ("kombu / inbus manual ack (target >= 10x)",
         r("kombu memory://: publish + drain_events", "inbus: manual ack", "caller's thread")),
        ("background manual ack / SimpleQueue floor (target <= 20x)",
         r("inbus background: manual ack", TFLOOR, "background threads")),
        ("background auto_ack / SimpleQueue floor (target <= 20x)",
         r("inbus background: auto_ack", TFLOOR, "background threads")),
        ("background 4 consumers, prefetch 100 / SimpleQueue floor (target <= 20x)",
         r("inbus background: 4 consumers, prefetch 100", TFLOOR, "background threads")),
        ("manual ack with the counting callback object / single-thread floor (the "
         "harness before session 8)", r(COUNTED, FLOOR, "caller's thread")),
        ("background manual ack with the counting callback object / SimpleQueue floor "
         "(the harness before session 8)", r(BG_COUNTED, TFLOOR, "background threads")),
        ("skeleton manual ack / single-thread floor",
         r(SKEL, FLOOR, "caller's thread")),
        ("inbus manual ack / skeleton manual ack",
         r("inbus: manual ack", SKEL, "caller's thread")),
        ("skeleton 4 consumers / single-thread floor",
         r(SKEL4, FLOOR, "caller's thread")),
        ("skeleton background manual ack / SimpleQueue floor",
         r(SKEL, TFLOOR, "background threads")),
        ("inbus background manual ack / skeleton",
         r("inbus background: manual ack", SKEL, "background threads")),
        ("inbus background manual ack / pyzmq inproc (no routing, no acks)",
         r("inbus background: manual ack", "pyzmq: inproc PUSH -> PULL consumer thread",
           "background threads")),
        ("skeleton background 4 consumers / SimpleQueue floor",
         r(SKEL4, TFLOOR, "background threads")),
        ("inbus background 4 consumers / skeleton",
         r("inbus background: 4 consumers, prefetch 100", SKEL4, "background threads")),
        ("fanout 10 / blinker 10 (target <= 1x)",
         r("inbus: fanout to 10 queues", "blinker: Signal.send, 10 receivers", "fanout 10")),
        ("priority / plain (target <= 2x)",
         r("inbus: priority queue (x-max-priority 10)", PLAIN, "features")),
        ("TTL / plain (target <= 2x)", r("inbus: TTL queue (x-message-ttl 60s)", PLAIN,
                                         "features")),
    ]
    for text, v in lines:
        print(f"{text}: {v:.2f}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="short run")
    ap.add_argument("--json", default=None,
                    help="write results here (default: benchmarks/results/consume.json "
                         "for a full run, nothing for --quick)")
    a = ap.parse_args()
    path = a.json
    if path is None and not a.quick:
        path = os.path.join(_HERE, "results", "consume.json")
    main(quick=a.quick, json_path=path)
