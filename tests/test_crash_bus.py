"""Crash recovery of a durable Bus: a child is SIGKILLed mid-stream, the file reopens.

After each kill: every confirmed persistent message is there unless its ack was
confirmed as committed; no message whose ack was committed comes back; per-queue order
is preserved; the file opens cleanly.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from inbus import Bus

CHILD = r"""
import sys
from inbus import Bus, BasicProperties
bus = Bus(sys.argv[1], synchronous=sys.argv[2])
ch = bus.channel()
ch.queue_declare("q", durable=True)
ch.confirm_delivery()
p = BasicProperties(delivery_mode=2)
out = sys.stdout
print("READY", flush=True)
i = 0
while True:
    ch.basic_publish("", "q", str(i).encode(), p)
    out.write(f"P {i}\n"); out.flush()
    if i % 3 == 2:
        m = ch.basic_get("q")
        if m is not None:
            out.write(f"G {int(m.body)}\n"); out.flush()
            m.ack()
            bus.flush()
            out.write(f"A {int(m.body)}\n"); out.flush()
    i += 1
"""


def _rest_of_output(proc: subprocess.Popen[str]) -> str:
    """What the killed child wrote after the line already read. Read through proc.stdout
    itself: communicate() reads the raw pipe and would lose what readline() buffered."""
    assert proc.stdout is not None and proc.stderr is not None
    out = proc.stdout.read()
    proc.stderr.read()
    proc.wait(timeout=10)
    return out


def run_trial(db: str, rng: random.Random, script: str
              ) -> tuple[set[int], set[int], set[int], int]:
    proc = subprocess.Popen([sys.executable, "-c", script, db, "FULL"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.strip() == "READY", (line, proc.stderr.read() if proc.stderr else "")
    time.sleep(rng.uniform(0.02, 0.4))
    os.kill(proc.pid, signal.SIGKILL)
    out = _rest_of_output(proc)
    confirmed, acked, in_flight = set(), set(), set()
    for ln in (line + out).splitlines():
        parts = ln.split()
        if len(parts) == 2 and parts[0] == "P":
            confirmed.add(int(parts[1]))
        elif len(parts) == 2 and parts[0] == "A":
            acked.add(int(parts[1]))
        elif len(parts) == 2 and parts[0] == "G":
            in_flight.add(int(parts[1]))
    # "G" = taken and about to be acked: its ack may or may not have committed.
    return confirmed, acked, in_flight - acked, max(confirmed, default=-1)


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_sigkill_trials(tmp_path: Path) -> None:
    rng = random.Random(1234)
    trials = 12
    for t in range(trials):
        db = str(tmp_path / f"crash{t}.db")
        confirmed, acked, in_flight, top = run_trial(db, rng, CHILD)
        with Bus(db) as bus:
            ch = bus.channel()
            got = []
            while (m := ch.basic_get("q", auto_ack=True)) is not None:
                got.append(int(m.body))
        assert got == sorted(got), f"trial {t}: order broken"
        assert len(got) == len(set(got)), f"trial {t}: duplicates"
        missing = (confirmed - acked - in_flight) - set(got)
        assert not missing, f"trial {t}: confirmed messages lost: {sorted(missing)[:10]}"
        back = acked & set(got)
        assert not back, f"trial {t}: committed acks came back: {sorted(back)[:10]}"
        # Nothing can appear that was never published (at most one in flight).
        assert all(x <= top + 1 for x in got), f"trial {t}: unknown message"
        assert confirmed, f"trial {t}: the child confirmed nothing before the kill"


THREADED_CHILD = r"""
import sys, threading
from inbus import Bus, BasicProperties
bus = Bus(sys.argv[1], synchronous=sys.argv[2])
p = BasicProperties(delivery_mode=2)
setup = bus.channel()
for q in ("b0", "b1", "c"):
    setup.queue_declare(q, durable=True)
lock = threading.Lock()

def say(text):
    with lock:
        sys.stdout.write(text + "\n"); sys.stdout.flush()

def blocking(q):  # waits for every confirm: the leader / gatherer path
    ch = bus.channel(); ch.confirm_delivery()
    i = 0
    while True:
        ch.basic_publish("", q, str(i).encode(), p)
        say(f"P {q} {i}")
        i += 1

def with_callback():  # confirms fire on the writer thread after their commit
    ch = bus.channel()
    ch.confirm_delivery(lambda seq, ok: ok and say(f"P c {seq - 1}"))
    i = 0
    while True:
        ch.basic_publish("", "c", str(i).encode(), p)
        i += 1
        if i % 50 == 0:
            threading.Event().wait(0.001)

def consumer():  # takes from b0, acks, waits until the ack is committed
    ch = bus.channel()
    while True:
        m = ch.basic_get("b0")
        if m is None:
            threading.Event().wait(0.001)
            continue
        say(f"G b0 {int(m.body)}")
        m.ack()
        bus.flush()
        say(f"A b0 {int(m.body)}")

say("READY")
for target, args in ((blocking, ("b0",)), (blocking, ("b1",)), (with_callback, ()),
                     (consumer, ())):
    threading.Thread(target=target, args=args, daemon=True).start()
threading.Event().wait()
"""


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_sigkill_trials_with_threads(tmp_path: Path) -> None:
    """Blocking-confirm publishers (they commit each other's batches), a confirm-callback
    publisher and an acking consumer run on four threads when SIGKILL comes: per queue,
    nothing confirmed is lost (unless its ack was confirmed), no committed ack comes
    back, order holds, no duplicates."""
    rng = random.Random(99)
    for t in range(int(os.environ.get("INBUS_CRASH_TRIALS", "6"))):
        db = str(tmp_path / f"threads{t}.db")
        proc = subprocess.Popen([sys.executable, "-c", THREADED_CHILD, db,
                                 rng.choice(["FULL", "NORMAL"])],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        first = proc.stdout.readline()
        if first.strip() != "READY":
            proc.kill()
            pytest.fail(f"the child did not start: {first!r} {proc.communicate()[1]}")
        time.sleep(rng.uniform(0.05, 0.4))
        os.kill(proc.pid, signal.SIGKILL)
        out = _rest_of_output(proc)
        seen: dict[str, dict[str, set[int]]] = {}
        for ln in out.splitlines():
            parts = ln.split()
            if len(parts) == 3 and parts[0] in "PGA":
                seen.setdefault(parts[1], {}).setdefault(parts[0], set()).add(int(parts[2]))
        with Bus(db) as bus:
            ch = bus.channel()
            for q in ("b0", "b1", "c"):
                got = []
                while (m := ch.basic_get(q, auto_ack=True)) is not None:
                    got.append(int(m.body))
                s = seen.get(q, {})
                confirmed, taken, acked = (s.get(k, set()) for k in "PGA")
                assert got == sorted(set(got)), f"trial {t} {q}: order or duplicates"
                lost = confirmed - taken - set(got)
                assert not lost, f"trial {t} {q}: confirmed messages lost: {sorted(lost)[:10]}"
                back = acked & set(got)
                assert not back, f"trial {t} {q}: committed acks came back: {sorted(back)[:10]}"
            assert seen.get("b1", {}).get("P"), f"trial {t}: nothing confirmed before the kill"


DECLARING_CHILD = r"""
import os, signal, sys
from inbus import Bus
bus = Bus(sys.argv[1])
ch = bus.channel()
bus.vhost_declare("v")
ch.exchange_declare("x", "fanout", durable=True)
for i in range(10):
    ch.queue_declare(f"q{i}", durable=True)
    ch.queue_bind(f"q{i}", "x")
ch.queue_delete("q0")
ch.queue_unbind("q1", "x")
os.kill(os.getpid(), signal.SIGKILL)  # right after the last -ok, no publish, no flush
"""


@pytest.mark.timeout(60)
def test_durable_declarations_survive_a_sigkill_right_after_they_returned(
        tmp_path: Path) -> None:
    """RabbitMQ sends declare-ok / bind-ok / delete-ok after its commit: a crash right
    after the call loses nothing. Each such call on a durable Bus returns only once its
    change is committed."""
    db = str(tmp_path / "declared.db")
    proc = subprocess.run([sys.executable, "-c", DECLARING_CHILD, db], capture_output=True,
                          text=True, timeout=50)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    with Bus(db) as bus:
        assert "v" in bus.vhosts
        st = bus.statistics().vhosts["/"]
        assert set(st.queues) == {f"q{i}" for i in range(1, 10)}
        assert st.exchanges["x"].bindings == 8



OVERFULL_CHILD = r"""
import os, signal, sys
from inbus import Bus, BasicProperties
bus = Bus(sys.argv[1])
ch = bus.channel()
p = BasicProperties(delivery_mode=2)
ch.queue_declare("q", durable=True, arguments={"x-max-length": 2})
ch.confirm_delivery()
for i in range(2):
    ch.basic_publish("", "q", f"m{i}".encode(), p)
ch.basic_get("q"); ch.basic_get("q")
for i in range(2, 4):
    ch.basic_publish("", "q", f"m{i}".encode(), p)
os.kill(os.getpid(), signal.SIGKILL)  # m0, m1 unacked: not put back before the crash
"""


@pytest.mark.timeout(60)
def test_a_drop_head_queue_over_its_limit_after_a_crash_is_trimmed(tmp_path: Path) -> None:
    """After a crash the unacked messages were never requeued (which trims a drop-head
    queue): the recovered queue holds 4 with x-max-length 2. RabbitMQ trims it from the
    head when the queue starts; so does a Bus opening the file."""
    db = str(tmp_path / "overfull.db")
    proc = subprocess.run([sys.executable, "-c", OVERFULL_CHILD, db], capture_output=True,
                          text=True, timeout=50)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    with Bus(db) as bus:
        ch = bus.channel()
        got = []
        while (m := ch.basic_get("q", auto_ack=True)) is not None:
            got.append(m.body)
        assert got == [b"m2", b"m3"]


AUTODELETE_CHILD = r"""
import os, signal, sys
from inbus import Bus, BasicProperties
bus = Bus(sys.argv[1])
ch = bus.channel()
ch.confirm_delivery()
for q in ("by-cancel", "by-channel-close", "by-connection-close"):
    ch.queue_declare(q, durable=True, auto_delete=True)
    ch.basic_publish("", q, b"m", BasicProperties(delivery_mode=2))
ch.basic_cancel(ch.basic_consume("by-cancel", lambda m: None))
ch2 = bus.channel()
ch2.basic_consume("by-channel-close", lambda m: None)
ch2.close()
conn = bus.connection()
conn.channel().basic_consume("by-connection-close", lambda m: None)
conn.close()
os.kill(os.getpid(), signal.SIGKILL)  # right after the calls that deleted the queues
"""


@pytest.mark.timeout(60)
def test_an_auto_deleted_durable_queue_stays_deleted_after_a_crash(tmp_path: Path) -> None:
    """The last consumer of a durable auto-delete queue goes (cancel, channel or
    connection close) and the queue is gone; after a crash it must not come back with
    its messages (RabbitMQ, killed right after, does not bring it back)."""
    db = str(tmp_path / "autodelete.db")
    proc = subprocess.run([sys.executable, "-c", AUTODELETE_CHILD, db], capture_output=True,
                          text=True, timeout=50)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    with Bus(db) as bus:
        assert bus.statistics().vhosts["/"].queues == {}
