"""Threads and waiting: where callbacks run, outside the bus lock.

Theory of operation
-------------------
The bus has one lock (an RLock). Channels and queues are changed under it; a delivery
decided under it is appended to a :class:`Sink` as an item: the :class:`Message` itself
(its consumer's callback runs it; no pair to allocate and for the garbage collector to
track per delivery), or ``(callback, argument)`` for anything else (return and cancel
callbacks...). Callbacks run later, from a sink, with no lock held, so they may publish,
ack, declare or consume again from any thread without deadlock.

- Every connection has a sink, pumped by whichever thread calls ``run_until_idle``,
  ``start_consuming``, ``process_data_events`` or iterates ``consume()`` (pika's model).
- A channel opened with ``background=True`` (or on ``Bus(background=True)``) has its own
  sink and a worker thread that runs its callbacks in order. ``close()`` stops and joins
  every worker and timer thread the bus started.
- A :class:`Timer` thread wakes at the next TTL / x-expires deadline when the bus runs on
  the real clock (tests use :class:`inbus.testing.ManualClock`, which needs no thread).

Waiting uses conditions built on the bus lock; a sink notifies only when a thread waits
and was not notified already (the woken thread takes everything pending).

Lock convoys. A thread that blocks on a CPython lock is handed the lock when it is
released, but it can run only once it also gets the GIL, which the releasing thread still
holds; the releasing thread then blocks on the lock at its next call, and so on: two busy
threads (a publisher and a worker that acks) fall into taking turns at every call, two
context switches per operation, 3-4x slower than either alone. Acks therefore take the
bus lock with :func:`acquire_barging`: on contention they give the holder the GIL
without queueing for ownership, then try again, and block only after a few tries. One side
barging is enough to keep the two from locking into step.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from ._message import Message

__all__ = ["Sink", "Timer", "Worker", "acquire_barging", "new_lock"]

log = logging.getLogger("inbus")

Item = Message | tuple[Callable[[Any], Any], Any]


def new_lock() -> threading.RLock:
    return threading.RLock()


_BARGING_TRIES = 10


def acquire_barging(lock: Any) -> bool:
    """Take ``lock`` after ``lock.acquire(False)`` failed, without joining a convoy.

    Call as ``lock.acquire(False) or acquire_barging(lock)``. Each try first sleeps for
    0 s, which releases the GIL so the holder can finish and release, then tries without
    blocking (a blocked waiter would be handed the lock while it has no GIL: see the
    module docstring); after ``_BARGING_TRIES`` tries it blocks as usual.
    """
    for _ in range(_BARGING_TRIES):
        time.sleep(0)
        if lock.acquire(False):
            return True
    return bool(lock.acquire())


class Sink:
    """A FIFO of items (deliveries, or ``(callback, argument)``) and a condition to wait
    for them (under the bus lock)."""

    __slots__ = ("items", "cond", "waiting", "wanted", "closed")

    def __init__(self, lock: Any) -> None:
        self.items: deque[Item] = deque()
        self.cond = threading.Condition(lock)
        self.waiting = 0  # threads in wait()
        # A waiting thread has not been notified yet. A notified thread takes every item
        # once it runs, so until then further pushes need not notify again (a notify
        # costs far more than an append, and the woken thread may wait for the GIL for
        # a whole switch interval while the publisher keeps pushing).
        self.wanted = False
        self.closed = False

    def push(self, item: Item) -> None:
        """Append an item; caller holds the bus lock. O(1)."""
        self.items.append(item)
        if self.wanted:
            self.wanted = False
            self.cond.notify()

    def wake(self) -> None:
        if self.waiting:
            self.wanted = False
            self.cond.notify_all()

    def take(self) -> list[Item]:
        """Every pending item (caller holds the lock)."""
        items = list(self.items)
        self.items.clear()
        return items

    def remove_deliveries(self, match: Callable[[Message], bool]) -> list[Message]:
        """Remove the pending deliveries ``match`` selects; returns them in order (caller
        holds the lock). O(pending)."""
        mine: list[Message] = []
        keep: list[Item] = []
        for it in self.items:
            if isinstance(it, Message) and match(it):
                mine.append(it)
            else:
                keep.append(it)
        if mine:
            self.items.clear()
            self.items.extend(keep)
        return mine

    def wait(self, timeout: float | None) -> bool:
        """Wait (lock held) until items arrive, the sink closes or timeout passes."""
        if self.items or self.closed:
            return True
        self.waiting += 1
        self.wanted = True
        try:
            return self.cond.wait(timeout)
        finally:
            self.waiting -= 1
            self.wanted = self.waiting > 0  # the others still want a notify

    def run(self, items: list[Item], lock: Any) -> int:
        """Run items with no lock held. On an exception, put the rest back and re-raise."""
        i = skipped = 0
        try:
            for it in items:
                i += 1
                if isinstance(it, Message):
                    c = it._consumer
                    # (_cancelled, inlined)
                    if not c.live and not c.auto_ack and it._channel._putback(it):
                        skipped += 1
                        continue
                    c.callback(it)
                else:
                    it[0](it[1])
        except BaseException:
            rest = items[i:]
            if rest:
                with lock:
                    self.items.extendleft(reversed(rest))
            raise
        return i - skipped


def _cancelled(m: Message) -> bool:
    """True for a delivery to a manual-ack consumer that was cancelled (or whose channel
    closed) after it was taken from the sink but before its callback ran: the channel puts
    it back in its queue instead, so no callback runs after ``basic_cancel`` /
    ``stop_consuming``."""
    c = m._consumer
    return not c.live and not c.auto_ack and bool(m._channel._putback(m))


class Worker:
    """A thread that runs one sink's callbacks in order, for a background channel."""

    def __init__(self, sink: Sink, lock: Any, name: str,
                 on_error: Callable[[BaseException, Any], None]) -> None:
        self.sink = sink
        self.lock = lock
        self.on_error = on_error
        self.stopping = False
        self.thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        sink, lock = self.sink, self.lock
        while True:
            lock.acquire(False) or acquire_barging(lock)
            try:
                while not sink.items and not self.stopping and not sink.closed:
                    sink.wait(None)
                if not sink.items and (self.stopping or sink.closed):
                    return  # a closed sink never waits: spinning here held the lock
                items = sink.take()
            finally:
                lock.release()
            for it in items:
                arg = it
                try:
                    if isinstance(it, Message):
                        if not it._consumer.live and _cancelled(it):
                            continue
                        it._consumer.callback(it)
                    else:
                        fn, arg = it
                        fn(arg)
                except BaseException as exc:  # noqa: BLE001 - reported, never silent
                    try:
                        self.on_error(exc, arg)
                    except BaseException:  # noqa: BLE001
                        log.exception("inbus: on_error hook raised")

    def stop(self, join: bool = True) -> None:
        with self.lock:
            self.stopping = True
            self.sink.cond.notify_all()
        if join and threading.current_thread() is not self.thread:
            self.thread.join()


class Timer:
    """One thread that calls ``fire()`` at the deadline ``next_deadline()`` returns."""

    def __init__(self, lock: Any, next_deadline: Callable[[], float | None],
                 fire: Callable[[], None], monotonic: Callable[[], float]) -> None:
        self.cond = threading.Condition(lock)
        self.next_deadline = next_deadline
        self.fire = fire
        self.monotonic = monotonic
        self.stopping = False
        self.waiting_until: float | None = None  # the deadline the thread sleeps towards
        self.thread = threading.Thread(target=self._loop, name="inbus-timer", daemon=True)
        self.thread.start()

    def poke(self, deadline: float | None = None) -> None:
        """A deadline may have moved earlier (caller holds the lock). O(1); notifies only
        when ``deadline`` is None or earlier than what the thread waits for."""
        w = self.waiting_until
        if deadline is None or w is None or deadline < w:
            self.cond.notify()

    def _loop(self) -> None:
        while True:
            with self.cond:
                if self.stopping:
                    return
                deadline = self.next_deadline()
                now = self.monotonic()
                if deadline is None:
                    self.waiting_until = None
                    self.cond.wait(None)
                    continue
                if deadline > now:
                    self.waiting_until = deadline
                    self.cond.wait(min(deadline - now, 3600.0))
                    continue
                self.waiting_until = now
            try:
                self.fire()
            except Exception:  # pragma: no cover - logged, the timer keeps going
                log.exception("inbus: expiry timer failed")
                time.sleep(0.01)

    def stop(self) -> None:
        with self.cond:
            self.stopping = True
            self.cond.notify_all()
        if threading.current_thread() is not self.thread:
            self.thread.join()
