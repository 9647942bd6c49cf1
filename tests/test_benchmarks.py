"""Smoke tests of the consumer benchmark's harness (benchmarks/bench_consume.py): every
inbus and skeleton row delivers exactly what it publishes at a small N, and the
background rows' clocks stop when the last callback ran. (Speed is never asserted here:
it lives in the benchmarks.)"""

from __future__ import annotations

from typing import Any

import pytest

from inbus import Bus
from inbus.testing import queue_counts

bc = pytest.importorskip("benchmarks.bench_consume")

N = 2 * bc.BATCH


def queue_counts_or_none(bus: Bus, name: str) -> tuple[int, int] | None:
    try:
        return queue_counts(bus, name)
    except KeyError:
        return None


def _close(obj: Any) -> None:
    close = getattr(obj, "close", None)
    if close is not None:
        close()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("make", [
    lambda: bc.inbus_pump(False),
    lambda: bc.inbus_pump(True),
    lambda: bc.inbus_pump(True, consumers=4, prefetch=100),
    lambda: bc.inbus_pump(True, counted=True),
    lambda: bc.inbus_pump(True, args={"x-max-priority": 10},
                          props=[bc.BasicProperties(priority=i) for i in range(10)]),
    lambda: bc.inbus_background(False),
    lambda: bc.inbus_background(True),
    lambda: bc.inbus_background(True, consumers=4, prefetch=100),
    lambda: bc.inbus_background(True, counted=True),
    lambda: bc.inbus_fanout(10),
    lambda: bc.skeleton_pump(),
    lambda: bc.skeleton_pump(consumers=4, prefetch=100),
    lambda: bc.skeleton_background(),
    lambda: bc.skeleton_background(consumers=4, prefetch=100),
], ids=["pump-auto", "pump-manual", "pump-4c", "pump-counted", "pump-priority", "bg-auto",
        "bg-manual", "bg-4c", "bg-counted", "fanout", "skel", "skel-4c", "skel-bg",
        "skel-bg-4c"])
def test_rows_deliver_what_they_publish(make: Any) -> None:
    go, bus = make()
    try:
        go(N)
        go(N)  # a second run starts from where the first ended
        if isinstance(bus, Bus):  # nothing left ready or unacked
            names = ["q"] if queue_counts_or_none(bus, "q") else [f"q{i}" for i in range(10)]
            assert {name: queue_counts(bus, name) for name in names} == {
                name: (0, 0) for name in names}
        else:
            assert all(not c.unacked and not c.pending for c in bus.consumers)
            assert not any(c.queue.ready for c in bus.consumers)
    finally:
        _close(bus)


def test_a_lost_message_fails_the_pumped_row() -> None:
    calls = []

    def run() -> int:
        calls.append(1)
        return bc.BATCH - 1          # one callback short
    go = bc.pumped(lambda *a: None, run)
    with pytest.raises(AssertionError, match="lost messages"):
        go(bc.BATCH)
    assert calls == [1]


def test_acking_and_ticking_callbacks() -> None:
    acked: list[int] = []

    class M:
        def ack(self) -> None:
            acked.append(1)
    got: list[None] = []
    bc.ticking(True, got)(M())
    bc.ticking(False, got)(M())
    bc._acking(M())
    assert (len(acked), got) == (2, [None, None])
