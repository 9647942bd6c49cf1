"""Crash test at the store + committer level: SIGKILL a writer at random moments.

A child process streams PutMessage ops (two producer threads, one queue each) and
DeleteMessage "acks" of messages whose put was confirmed, through a GroupCommitter on a
SqliteStore. Each on_done writes "P queue seq" / "A queue seq" to stdout *after* the
commit; "D queue seq" is written *before* an ack is submitted (a delete may commit and the
process die before its confirmation is written, so such a message may be gone). The parent kills the child with SIGKILL at a random moment, reopens the file and
checks: every confirmed put is there unless an ack of it was submitted; no confirmed ack came
back; messages are in seq order with intact bodies; the file opens (and passes SQLite's
integrity check); the unclean close is reported and every message is redelivered=True.
Trials share one file, so each also recovers what earlier crashes left.

Also here: a process holding the file keeps others out until it is SIGKILLed, and then its
lock is gone (the kernel drops it), so the next open recovers.
"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from inbus._errors import PersistenceError
from inbus._sqlite import SqliteStore

REPO = str(Path(__file__).resolve().parent.parent)

CHILD = textwrap.dedent("""
    import os, random, sys, threading
    from collections import deque
    sys.path.insert(0, sys.argv[1])
    from inbus._committer import GroupCommitter
    from inbus._sqlite import SqliteStore
    from inbus._store import (DeleteMessage, MarkDelivered, MessageRecord, PutMessage,
                              PutQueue, QueueRecord)

    path, seed, sync = sys.argv[2], int(sys.argv[3]), sys.argv[4]
    rnd = random.Random(seed)
    store = SqliteStore(path, synchronous=sync)
    snap = store.load()
    committer = GroupCommitter(store)
    committer.submit([PutQueue(QueueRecord("/", "q1")), PutQueue(QueueRecord("/", "q2"))])

    def body(q, seq):
        return (f"{q}:{seq}:".encode() * 20)[:100]

    def say(line):
        os.write(1, line.encode())

    def producer(q, rnd):
        have = [m.seq for m in snap.messages if m.queue == q]
        ackable = deque(have)   # recovered messages may be acked too
        lock = threading.Lock()
        seq = max(have, default=-1) + 1

        def on_put(exc, seq=None):
            if exc is None:
                say(f"P {q} {seq}\\n")
                with lock:
                    ackable.append(seq)

        def on_ack(exc, seq=None):
            if exc is None:
                say(f"A {q} {seq}\\n")

        while True:
            rec = MessageRecord("/", q, seq, "", q, body(q, seq), {"delivery_mode": 2})
            committer.submit([PutMessage(rec)], lambda e, s=seq: on_put(e, s))
            seq += 1
            with lock:
                victim = ackable.popleft() if ackable and rnd.random() < 0.75 else None
            if victim is not None:
                if rnd.random() < 0.3:
                    committer.submit([MarkDelivered("/", q, victim)])
                say(f"D {q} {victim}\\n")  # an ack is attempted: it may commit unconfirmed
                committer.submit([DeleteMessage("/", q, victim)],
                                 lambda e, s=victim: on_ack(e, s))
            if rnd.random() < 0.05:
                committer.flush(5)

    threading.Thread(target=producer, args=("q2", random.Random(seed + 1)),
                     daemon=True).start()
    say("ready\\n")
    producer("q1", rnd)
""")


def _body(q: str, seq: int) -> bytes:
    return (f"{q}:{seq}:".encode() * 20)[:100]


def _run_and_kill(path: str, seed: int, sync: str, run_for: float) -> list[str]:
    child = subprocess.Popen([sys.executable, "-c", CHILD, REPO, path, str(seed), sync],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    lines: list[str] = []
    ready = threading.Event()

    def reader() -> None:
        assert child.stdout is not None
        for raw in child.stdout:
            if raw.endswith(b"\n"):  # a line cut by the kill is not a confirmation
                line = raw.decode().strip()
                if line == "ready":
                    ready.set()
                else:
                    lines.append(line)

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    try:
        assert ready.wait(15), child.stderr.read().decode() if child.poll() is not None else ""
        time.sleep(run_for)
        assert child.poll() is None, "the child died on its own"
        child.send_signal(signal.SIGKILL)
        child.wait(10)
        t.join(10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        assert child.stdout is not None and child.stderr is not None
        child.stdout.close()
        child.stderr.close()
    assert child.returncode == -signal.SIGKILL
    return lines


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_sigkill_at_random_moments_never_loses_a_confirmed_write(tmp_path: Path) -> None:
    path = str(tmp_path / "crash.db")
    rnd = random.Random(20261126)
    confirmed: set[tuple[str, int]] = set()
    acked: set[tuple[str, int]] = set()
    attempted: set[tuple[str, int]] = set()  # acks submitted, confirmed or not
    trials, deadline = 0, time.monotonic() + 40
    total_present = 0
    while trials < 20 and time.monotonic() < deadline:
        sync = "FULL" if trials % 3 == 0 else "NORMAL"
        for line in _run_and_kill(path, rnd.randrange(1 << 30), sync, rnd.uniform(0.02, 0.3)):
            kind, q, seq = line.split()
            {"P": confirmed, "A": acked, "D": attempted}[kind].add((q, int(seq)))
        trials += 1

        with SqliteStore(path, timeout=5) as store:  # opens cleanly, passes quick_check
            snap = store.load()
        present = [(m.queue, m.seq) for m in snap.messages]
        assert not snap.clean
        assert all(m.redelivered for m in snap.messages)
        assert present == sorted(present) and len(set(present)) == len(present)  # seq order
        assert all(m.body == _body(m.queue, m.seq) for m in snap.messages)
        assert acked <= attempted
        missing = confirmed - attempted - set(present)
        assert not missing, f"trial {trials}: confirmed messages lost: {sorted(missing)[:10]}"
        back = acked & set(present)
        assert not back, f"trial {trials}: acked messages came back: {sorted(back)[:10]}"
        assert {q.name for q in snap.queues} >= {"q1", "q2"} or not confirmed
        total_present = len(present)
    assert trials >= 10, f"only {trials} trials in the time budget"
    assert len(confirmed) > 100 and len(acked) > 20, (len(confirmed), len(acked))
    print(f"{trials} trials: {len(confirmed)} confirmed puts, {len(acked)} confirmed acks, "
          f"{total_present} messages stored at the end")


HOLDER = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {repo!r})
    from inbus._sqlite import SqliteStore
    from inbus._store import PutVhost
    s = SqliteStore({path!r})
    s.apply([PutVhost("held")])
    print("ready", flush=True)
    time.sleep(60)
""")


@pytest.mark.timeout(30)
def test_another_process_holds_the_lock_until_it_is_killed(tmp_path: Path) -> None:
    path = str(tmp_path / "held.db")
    child = subprocess.Popen([sys.executable, "-c", HOLDER.format(repo=REPO, path=path)],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
        with pytest.raises(PersistenceError, match="locked: another Bus or process") as e:
            SqliteStore(path, timeout=0.1)
        assert path in str(e.value)
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    finally:
        child.kill()
        child.wait()
        if child.stdout:
            child.stdout.close()
    with SqliteStore(path, timeout=0) as s:  # a dead owner's lock does not block
        snap = s.load()
    assert snap.vhosts == ["held"] and not snap.clean
