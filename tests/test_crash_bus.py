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


def run_trial(db: str, rng: random.Random, script: str
              ) -> tuple[set[int], set[int], set[int], int]:
    proc = subprocess.Popen([sys.executable, "-c", script, db, "FULL"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.strip() == "READY", (line, proc.stderr.read() if proc.stderr else "")
    time.sleep(rng.uniform(0.02, 0.4))
    os.kill(proc.pid, signal.SIGKILL)
    out, _err = proc.communicate(timeout=10)
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
