"""Persistence at the store level: SqliteStore + GroupCommitter against SQLite's floors.

Rows, measured side by side in one run (python benchmarks/bench_sqlite.py [--quick]):

* streaming: a stream of persistent messages, 100-byte bodies; per message one put and one
  delete (the ack of the message 100 places earlier), N = 100k. inbus submits each put and
  each delete separately to a GroupCommitter (as a Bus would on publish and on ack) and
  flushes at the end. The floors do the same inserts and deletes with plain sqlite3 (WAL,
  synchronous=NORMAL as in the issue's floors, the same table shape): all in one transaction; a transaction per 100
  messages; a transaction per message.
* confirmed from 8 threads: each thread submits a put and waits for its confirmation
  (on_done) before the next one. Compared with RabbitMQ persistent publishes with publisher
  confirms through pika, one at a time (skipped when 127.0.0.1:5672 does not answer), and
  with a plain sqlite3 commit per message at FULL (the fsync) and NORMAL, and with the
  floor for this pattern: 8 threads through the barest group commit plain Python allows
  (``floor_group``).

Bus-level rows: basic_publish -> consume -> ack through a Bus("file.db"), with and without
async confirms (streaming); 8 publisher threads on their own channels in confirm mode, each
``basic_publish`` returning only once its message is committed (FULL and NORMAL); and the
same 8 threads with a confirm callback instead, each publishing all its messages and then
waiting for all its confirms (every confirm still fires only after its commit).
"""

from __future__ import annotations

import os
import shutil
import socket
import sqlite3
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import Suite, machine_info  # noqa: E402

from inbus._committer import GroupCommitter  # noqa: E402
from inbus._sqlite import SqliteStore  # noqa: E402
from inbus._store import DeleteMessage, MessageRecord, PutMessage, PutQueue, QueueRecord  # noqa: E402

BODY = b"x" * 100
LAG = 100  # a message is acked when the one LAG places later is published
STREAM = "streaming put+delete, 100 B"
CONFIRM = "confirmed puts, 8 threads"
FLOOR_BATCH = "sqlite3 floor: batches of 100"
RABBIT = "RabbitMQ: persistent + confirms (pika, 1 at a time)"
ASYNC8 = ("inbus Bus: 8 threads, async confirms (callback; each waits for all its "
          "confirms at the end), synchronous=FULL")
GROUP_FLOOR = "sqlite3 floor: 8 threads, bare group commit, each waits for its commit"
ISSUE_RABBIT_S = 1.1e-3  # the issue's figure for one RabbitMQ confirmed publish "here"


class Workdir:
    """A fresh directory per repeat, so every case starts from an empty file."""

    def __init__(self) -> None:
        self.root = tempfile.mkdtemp(prefix="inbus-bench-")
        self.count = 0

    def new(self) -> str:
        self.count += 1
        d = os.path.join(self.root, str(self.count))
        os.mkdir(d)
        return os.path.join(d, "bench.db")

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


# --- floors: plain sqlite3 ----------------------------------------------------------------


def _floor_table(work: Workdir, state: dict[str, Any], sync: str) -> None:
    """A fresh file with the floors' table (WAL, ``sync``) in ``state["c"]``."""
    c = sqlite3.connect(work.new(), isolation_level=None, check_same_thread=False)
    c.execute("PRAGMA journal_mode=WAL")
    c.execute(f"PRAGMA synchronous={sync}")
    c.execute("CREATE TABLE messages (vhost TEXT, queue TEXT, seq INTEGER, body BLOB,"
              " UNIQUE (vhost, queue, seq))")
    if "c" in state:
        state["c"].close()
    state["c"] = c


def floor(work: Workdir, per_txn: int | None,
          sync: str = "NORMAL") -> tuple[Callable[[], None], Callable[[int], None]]:
    state: dict[str, Any] = {}

    def setup() -> None:
        _floor_table(work, state, sync)

    def run(n: int) -> None:
        c: sqlite3.Connection = state["c"]
        size = per_txn or n
        c.execute("BEGIN")
        for i in range(n):
            c.execute("INSERT INTO messages VALUES ('/', 'q', ?, ?)", (i, BODY))
            if i >= LAG:
                c.execute("DELETE FROM messages WHERE vhost='/' AND queue='q' AND seq=?",
                          (i - LAG,))
            if (i + 1) % size == 0:
                c.execute("COMMIT")
                c.execute("BEGIN")
        c.execute("DELETE FROM messages")
        c.execute("COMMIT")

    return setup, run


def floor_group(work: Workdir, sync: str, threads: int = 8
                ) -> tuple[Callable[[], None], Callable[[int], None]]:
    """The floor for publishers that each wait for their commit: ``threads`` threads, each
    inserting one row and waiting until it is committed before the next, through the
    barest leader/follower group commit plain Python allows (one lock, a list of pending
    rows, a lock per sleeping thread; the thread that finds no commit running commits
    everything pending itself, after waiting up to 25 µs per thread for the others to
    come back, as inbus's committer does). No routing, no queue, no properties: what is
    left is SQLite's commit and CPython's thread handoffs."""
    state: dict[str, Any] = {}

    def setup() -> None:
        _floor_table(work, state, sync)

    def run(n: int) -> None:
        c: sqlite3.Connection = state["c"]
        lock = threading.Lock()
        arrived = threading.Condition(lock)
        pending: list[tuple[int, bytes]] = []
        sleepers: list[tuple[int, threading.Lock]] = []
        st = {"seq": 0, "done": 0, "leading": False}
        gather = threads * 25e-6

        def put() -> None:
            wake = threading.Lock()
            wake.acquire()
            with lock:
                st["seq"] += 1
                mine = st["seq"]
                pending.append((mine, BODY))
                if len(pending) >= threads:
                    arrived.notify()
            while True:
                with lock:
                    if st["done"] >= mine:
                        return
                    if st["leading"] or not pending:
                        sleepers.append((mine, wake))
                        batch = None
                    else:
                        st["leading"] = True
                        deadline = time.monotonic() + gather
                        while len(pending) < threads and (
                                left := deadline - time.monotonic()) > 0:
                            arrived.wait(left)
                        batch = pending[:]
                        del pending[:]
                if batch is None:
                    wake.acquire()
                    continue
                c.execute("BEGIN IMMEDIATE")
                c.executemany("INSERT INTO messages VALUES ('/', 'q', ?, ?)", batch)
                c.execute("COMMIT")
                with lock:
                    st["leading"] = False
                    st["done"] = batch[-1][0]
                    keep = []
                    for target, w in sleepers:
                        if target <= st["done"]:
                            w.release()
                        else:
                            keep.append((target, w))
                    if keep and pending:
                        keep.pop(0)[1].release()  # it leads the next batch
                    sleepers[:] = keep

        def producer() -> None:
            for _ in range(n // threads):
                put()

        ts = [threading.Thread(target=producer) for _ in range(threads)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        c.execute("DELETE FROM messages")

    return setup, run


# --- inbus: SqliteStore + GroupCommitter ---------------------------------------------------


def _rec(i: int) -> MessageRecord:
    return MessageRecord("/", "q", i, "", "q", BODY, {"delivery_mode": 2})


def _open(work: Workdir, state: dict[str, Any], sync: str) -> None:
    if "c" in state:
        state["c"].close()
        state["s"].close()
    state["s"] = SqliteStore(work.new(), synchronous=sync)
    state["s"].apply([PutQueue(QueueRecord("/", "q"))])
    state["c"] = GroupCommitter(state["s"])


def streaming(work: Workdir, sync: str) -> tuple[Callable[[], None], Callable[[int], None]]:
    state: dict[str, Any] = {}

    def run(n: int) -> None:
        c: GroupCommitter = state["c"]
        for i in range(n):
            c.submit([PutMessage(_rec(i))])
            if i >= LAG:
                c.submit([DeleteMessage("/", "q", i - LAG)])
        for i in range(max(0, n - LAG), n):
            c.submit([DeleteMessage("/", "q", i)])
        c.flush()

    return lambda: _open(work, state, sync), run


def confirmed(work: Workdir, sync: str,
              threads: int = 8) -> tuple[Callable[[], None], Callable[[int], None]]:
    state: dict[str, Any] = {}

    def run(n: int) -> None:
        c: GroupCommitter = state["c"]
        per = n // threads

        def producer(k: int) -> None:
            ev = threading.Event()
            for i in range(k * per, (k + 1) * per):
                ev.clear()
                c.submit([PutMessage(_rec(i))], lambda e: ev.set())
                ev.wait()

        ts = [threading.Thread(target=producer, args=(k,)) for k in range(threads)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()

    return lambda: _open(work, state, sync), run


# --- inbus: the Bus over SQLite ---------------------------------------------------------------


def _open_bus(work: Workdir, state: dict[str, Any], sync: str) -> None:
    from inbus import Bus
    if "bus" in state:
        state["bus"].close()
    state["bus"] = Bus(work.new(), synchronous=sync)
    state["bus"].channel().queue_declare("q", durable=True)


def bus_stream(work: Workdir, confirms: bool
               ) -> tuple[Callable[[], None], Callable[[int], None]]:
    """Persistent basic_publish -> consumer callback -> ack on a durable queue, pumped
    with run_until_idle every 100 publishes; then wait until everything is committed."""
    from inbus import BasicProperties
    state: dict[str, Any] = {}
    props = BasicProperties(delivery_mode=2)

    def run(n: int) -> None:
        bus = state["bus"]
        ch = bus.channel()
        confirmed = [0]
        if confirms:
            def on_confirm(seq: int, ok: bool) -> None:
                confirmed[0] += 1
            ch.confirm_delivery(on_confirm)
        ch.basic_consume("q", lambda m: m.ack())
        publish = ch.basic_publish
        for i in range(n):
            publish("", "q", BODY, props)
            if i % 100 == 99:
                bus.run_until_idle()
        bus.run_until_idle()
        bus.flush()
        if confirms:
            assert confirmed[0] == n, (confirmed[0], n)
        ch.close()

    return lambda: _open_bus(work, state, "FULL"), run


def bus_publishers(work: Workdir, sync: str, confirm_callback: bool, threads: int = 8
                   ) -> tuple[Callable[[], None], Callable[[int], None]]:
    """8 publisher threads, each on its own channel in confirm mode, publishing persistent
    messages to a durable queue. Without ``confirm_callback``, every basic_publish returns
    only once its message is committed. With it, a thread publishes all its messages, then
    waits until every one of them was confirmed (each confirm still fires only once its
    message is committed)."""
    from inbus import BasicProperties
    state: dict[str, Any] = {}
    props = BasicProperties(delivery_mode=2)

    def run(n: int) -> None:
        bus = state["bus"]
        per = n // threads

        def producer() -> None:
            ch = bus.channel()
            acked = [0]
            done = threading.Event()

            def on_confirm(seq: int, ok: bool) -> None:
                assert ok
                acked[0] += 1
                if acked[0] == per:
                    done.set()
            ch.confirm_delivery(on_confirm if confirm_callback else None)
            for _ in range(per):
                ch.basic_publish("", "q", BODY, props)
            if confirm_callback:
                assert done.wait(60), f"{acked[0]}/{per} confirms"
            ch.close()

        ts = [threading.Thread(target=producer) for _ in range(threads)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()

    return lambda: _open_bus(work, state, sync), run


# --- RabbitMQ ------------------------------------------------------------------------------


def rabbit_reachable() -> str:
    try:
        import pika  # noqa: F401
    except ImportError:
        return "pika is not installed"
    try:
        socket.create_connection(("127.0.0.1", 5672), timeout=1).close()
    except OSError:
        return "no RabbitMQ on 127.0.0.1:5672"
    return ""


def rabbit() -> tuple[Callable[[], None], Callable[[int], None], Callable[[], None]]:
    import pika

    state: dict[str, Any] = {}
    props = pika.BasicProperties(delivery_mode=2)

    def setup() -> None:
        if "conn" not in state:
            conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1"))
            ch = conn.channel()
            ch.queue_declare("inbus-bench-persistent", durable=True)
            ch.confirm_delivery()
            state["conn"], state["ch"] = conn, ch
        state["ch"].queue_purge("inbus-bench-persistent")

    def run(n: int) -> None:
        ch = state["ch"]
        for _ in range(n):
            ch.basic_publish("", "inbus-bench-persistent", BODY, properties=props)

    def close() -> None:
        if "conn" in state:
            state["ch"].queue_delete("inbus-bench-persistent")
            state["conn"].close()

    return setup, run, close


# --- the suite -----------------------------------------------------------------------------


def main(quick: bool = False) -> Suite:
    """Run every row (``quick``: small N, one repeat), print the table, write the JSON."""
    n = 5_000 if quick else 100_000
    n_commit = 1_000 if quick else 20_000
    n_confirm = 800 if quick else 16_000
    n_rabbit = 100 if quick else 1_000
    suite = Suite("Persistence (store level): SqliteStore + GroupCommitter",
                  repeats=1 if quick else 3)
    work = Workdir()
    for name, per_txn, count in (("sqlite3 floor: one transaction", None, n),
                                 (FLOOR_BATCH, 100, n),
                                 ("sqlite3 floor: a transaction per message", 1, n_commit)):
        setup, run = floor(work, per_txn)
        suite.add(name, run, count, group=STREAM, setup=setup,
                  ref=None if per_txn == 100 else FLOOR_BATCH)
    for sync in ("FULL", "NORMAL"):
        setup, run = streaming(work, sync)
        suite.add(f"inbus: GroupCommitter, synchronous={sync}", run, n, group=STREAM,
                  setup=setup, ref=FLOOR_BATCH,
                  note="default" if sync == "FULL" else "")
    why = rabbit_reachable()
    closer: Callable[[], Any] | None = None
    if why:
        suite.skip(RABBIT, why, group=CONFIRM)
    else:
        setup, run, closer = rabbit()
        suite.add(RABBIT, run, n_rabbit, group=CONFIRM, setup=setup)
    for sync in ("FULL", "NORMAL"):
        setup, run = floor(work, 1, sync)
        suite.add(f"sqlite3 floor: a transaction per message, synchronous={sync}", run,
                  n_commit // (10 if sync == "FULL" else 1), group=CONFIRM, setup=setup,
                  ref=None if why else RABBIT)
    for sync in ("FULL", "NORMAL"):
        setup, run = floor_group(work, sync)
        suite.add(f"{GROUP_FLOOR}, synchronous={sync}", run, n_confirm, group=CONFIRM,
                  setup=setup, ref=None if why else RABBIT)
    for sync in ("FULL", "NORMAL"):
        setup, run = confirmed(work, sync)
        suite.add(f"inbus: 8 threads, each waits for its confirm, synchronous={sync}", run,
                  n_confirm, group=CONFIRM, setup=setup, ref=None if why else RABBIT)
    # Bus level: the same work through the public API, in the same groups.
    for confirms in (False, True):
        setup, run = bus_stream(work, confirms)
        label = "async confirms" if confirms else "no confirms"
        suite.add(f"inbus Bus: persistent publish -> consume -> ack, {label}", run, n,
                  group=STREAM, setup=setup, ref=FLOOR_BATCH, note="synchronous=FULL")
    for sync in ("FULL", "NORMAL"):
        setup, run = bus_publishers(work, sync, confirm_callback=False)
        suite.add(f"inbus Bus: 8 threads, confirmed basic_publish, synchronous={sync}", run,
                  n_confirm, group=CONFIRM, setup=setup, ref=None if why else RABBIT)
    setup, run = bus_publishers(work, "FULL", confirm_callback=True)
    suite.add(ASYNC8, run, n_confirm, group=CONFIRM, setup=setup,
              ref=None if why else RABBIT)
    try:
        suite.run()
    finally:
        work.remove()
        if closer is not None:
            closer()
    suite.report()
    here = os.path.dirname(os.path.abspath(__file__))
    if not quick:
        suite.write_json(os.path.join(here, "results", "sqlite.json"))
    return suite


def summary(suite: Suite) -> str:
    """The markdown section for RESULTS.md: machine, table, ratios vs the issue's targets."""
    m = machine_info()
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    lines = ["## Persistence (store level)", "",
             f"`python benchmarks/bench_sqlite.py` (results JSON: "
             f"`benchmarks/results/sqlite.json`). Machine: {m['processor']}, {m['cores']} "
             f"cores, {m['platform']}, Python {m['python']}, SQLite {sqlite3.sqlite_version}, "
             f"{m['date']}; load average after the run {load} (the machine and its disk were "
             "shared with other jobs: fsync latency, and so every synchronous=FULL row, "
             "varies several-fold between runs). Per message: one put + one delete "
             "(streaming), one confirmed put (8 threads).", ""]
    table = suite.report(file=open(os.devnull, "w"))  # noqa: SIM115
    lines += table.splitlines()[2:]
    lines.append("")
    for sync in ("FULL", "NORMAL"):
        r = suite.ratio(f"inbus: GroupCommitter, synchronous={sync}", FLOOR_BATCH, STREAM)
        lines.append(f"- Streaming, synchronous={sync}: {r:.2f}x the batch-of-100 floor "
                     f"(target: within 3x) -> {'met' if r <= 3 else 'NOT met'}.")
    for sync in ("FULL", "NORMAL"):
        r = suite.ratio(f"inbus: 8 threads, each waits for its confirm, synchronous={sync}",
                        RABBIT, CONFIRM)
        row = suite._find(CONFIRM, f"inbus: 8 threads, each waits for its confirm, "
                                   f"synchronous={sync}")
        if r == r and row is not None:
            vs_issue = ISSUE_RABBIT_S / row.median
            lines.append(f"- Confirmed puts from 8 threads, synchronous={sync}: {1 / r:.1f}x "
                         "RabbitMQ's one-at-a-time confirmed rate measured in this run "
                         f"(target: at least 20x) -> {'met' if 1 / r >= 20 else 'NOT met'}; "
                         f"{vs_issue:.1f}x the issue's quoted RabbitMQ figure (1.1 ms) -> "
                         f"{'met' if vs_issue >= 20 else 'NOT met'}.")
        else:
            lines.append("- Confirmed puts from 8 threads: RabbitMQ not reachable, no ratio.")
    full = suite._find(CONFIRM, "sqlite3 floor: a transaction per message, synchronous=FULL")
    if full is not None:
        lines.append(f"- One fsync'd commit (synchronous=FULL) cost {full.median * 1e6:.0f} µs "
                     "in this run: 8 publishers that each wait for their confirm cannot go "
                     "below about a 1/8 of that per message at FULL.")
    for sync in ("FULL", "NORMAL"):
        g = suite._find(CONFIRM, f"{GROUP_FLOOR}, synchronous={sync}")
        b = suite._find(CONFIRM, f"inbus Bus: 8 threads, confirmed basic_publish, "
                                 f"synchronous={sync}")
        rr = suite._find(CONFIRM, RABBIT)
        if g is not None and b is not None and rr is not None:
            lines.append(f"- The bare group-commit floor, synchronous={sync}: "
                         f"{g.median * 1e6:.1f} µs per confirm = {rr.median / g.median:.1f}x "
                         f"RabbitMQ; the Bus's blocking confirms cost {b.median / g.median:.2f}x "
                         "that floor.")
    rabbit_row = suite._find(CONFIRM, RABBIT)
    if rabbit_row is not None and full is not None:
        lines += ["", f"Where the 8-thread rows stand: RabbitMQ answered one confirmed publish "
                  f"in {rabbit_row.median * 1e6:.0f} µs in this run (the issue measured "
                  "1.1 ms). A publisher that waits for its confirm commits the pending batch "
                  "itself when no commit is running (leader/follower), so a confirm costs one "
                  "thread wakeup, not a round trip through the writer thread; with 8 such "
                  "threads the batches hold 3-8 messages. What remains per message is the "
                  "publish itself, a wakeup, and SQLite's calls, each of which releases and "
                  "re-takes the GIL while 7 other threads want it; the fsync "
                  f"({full.median * 1e6:.0f} µs here) sets the floor at FULL."]
    lines += ["", "The default is synchronous=FULL: a confirm means the WAL was fsynced, so it "
              "survives a power loss, as a RabbitMQ confirm does. NORMAL keeps every confirmed "
              "write across a process crash (the crash tests kill with SIGKILL) but may lose "
              "the last commits on power loss. The streaming rows benefit from coalescing: a "
              "put acked within the same batch becomes a single delete. Bus-level rows "
              "(publish -> consume -> ack through a Bus) are added by the Bus integration.",
              ""]
    return "\n".join(lines)


if __name__ == "__main__":
    quick = "--quick" in sys.argv
    s = main(quick)
    if not quick and "--no-results-md" not in sys.argv:
        path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "RESULTS.md")
        section = summary(s)
        print(section)
        with open(path, "a") as f:  # other sections belong to other benchmarks: append
            f.write(("\n" if os.path.exists(path) and os.path.getsize(path) else "") + section)
