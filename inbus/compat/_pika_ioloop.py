"""pika look-alike, part 7: the I/O loop of :class:`inbus.compat.pika.SelectConnection`
(pika's ``select_connection.IOLoop``) and the sink that wakes it.

Theory of operation
-------------------
The loop sleeps while there is nothing to run. To hear of work, each connection's sink
is a :class:`_WireSink` whose condition is a *bell*: the bus rings it (``cond.notify()``,
under the bus lock) when it appends to a sink the loop armed before sleeping
(``sink.wanted``, as the worker threads of :mod:`inbus._dispatch` do) and when the
connection closes. The :class:`IOLoop` waits on a condition of its own, woken by the
bells of its connections, ``add_callback_threadsafe``, ``stop()`` or the next timer's
deadline; it takes the bus lock only to take items, never while holding its own (lock
order: bus, then loop).

One iteration, as pika's poller does it: run the items each connection's sink holds (the
"I/O"), then the callbacks given to ``add_callback`` before the iteration, then the
timers that are due (in deadline order, ties in the order they were made). ``stop()``
takes effect after the callback that calls it; what is left waits for the next
``start()``. An exception from a callback propagates out of ``start()``, as with pika.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .._dispatch import Sink
from .._message import Message

if TYPE_CHECKING:
    from ._pika_select import _AsyncConnection

__all__ = ["IOLoop"]

_SAFETY_WAKE = 1.0  # seconds: the longest the loop sleeps without a bell (a safety net)


class _WireSink(Sink):
    """A connection's sink with a bell for a condition (the bus's ``notify()`` rings the
    loop) that keeps what ``remove_deliveries`` took: the deliveries a channel error
    dropped were on the wire before the error, so pika still dispatches them."""

    __slots__ = ("dropped",)

    def __init__(self, lock: Any, bell: _Bell) -> None:
        super().__init__(lock)
        self.cond = bell  # type: ignore[assignment]
        self.waiting = 1  # (so that Connection._close's sink.wake() rings too)
        self.dropped: list[Message] = []

    def remove_deliveries(self, match: Callable[[Message], bool]) -> list[Message]:
        mine = super().remove_deliveries(match)
        self.dropped.extend(mine)
        return mine


class _Bell:
    """Stands for a sink's condition: the bus's ``notify()`` rings the loop."""

    __slots__ = ("ring",)

    def __init__(self, ring: Callable[[], None]) -> None:
        self.ring = ring

    def notify(self, n: int = 1) -> None:
        self.ring()

    def notify_all(self) -> None:
        self.ring()

    def wait(self, timeout: float | None = None) -> bool:
        raise RuntimeError("this connection's callbacks are run by its I/O loop")


class _Timeout:
    """The handle ``call_later`` returns (for ``remove_timeout``)."""

    __slots__ = ("deadline", "callback")

    def __init__(self, deadline: float, callback: Callable[[], Any]) -> None:
        self.deadline = deadline
        self.callback: Callable[[], Any] | None = callback

    def __repr__(self) -> str:
        return f"<_Timeout deadline={self.deadline:.3f}>"


# --------------------------------------------------------------------------- the loop


class IOLoop:
    """pika's ``select_connection.IOLoop``: ``start()`` runs callbacks until ``stop()``;
    ``call_later(delay, cb)`` returns a handle for ``remove_timeout``;
    ``add_callback_threadsafe(cb)`` (alias ``add_callback``) is the one method safe to
    call from another thread. Every callback runs in the thread that called ``start()``.

    >>> loop = IOLoop()
    >>> _ = loop.call_later(0.01, loop.stop)
    >>> loop.add_callback(lambda: print("first"))
    >>> loop.start()
    first
    """

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._callbacks: deque[Callable[[], Any]] = deque()
        self._timers: list[tuple[float, int, _Timeout]] = []
        self._seq = itertools.count()
        self._conns: list[_AsyncConnection] = []
        self._rang = False
        self._stopping = False
        self._running = False
        self._thread: int | None = None

    def call_later(self, delay: float, callback: Callable[[], Any]) -> _Timeout:
        """Run ``callback()`` after ``delay`` seconds (on a best-effort basis)."""
        if not callable(callback):
            raise TypeError(f"callback must be a callable, but got {callback!r}")
        t = _Timeout(time.monotonic() + max(0.0, float(delay)), callback)
        heapq.heappush(self._timers, (t.deadline, next(self._seq), t))
        self._ring()
        return t

    def remove_timeout(self, timeout_handle: _Timeout) -> None:
        """Cancel a ``call_later`` (a handle that fired already is ignored)."""
        timeout_handle.callback = None

    def add_callback_threadsafe(self, callback: Callable[[], Any]) -> None:
        """Run ``callback()`` on the loop's thread as soon as possible (from any
        thread; wakes a sleeping loop)."""
        if not callable(callback):
            raise TypeError(f"callback must be a callable, but got {callback!r}")
        with self._cond:
            self._callbacks.append(callback)
            self._rang = True
            self._cond.notify()

    add_callback = add_callback_threadsafe

    def start(self) -> None:
        """Run the loop until ``stop()``. Not reentrant (RuntimeError), as pika's."""
        if self._running:
            raise RuntimeError("IOLoop is not reentrant and is already running")
        self._running = True
        self._thread = threading.get_ident()
        try:
            while not self._stopping:
                if not self._iterate() and not self._stopping:
                    self._wait()
        finally:
            self._stopping = False
            self._running = False
            self._thread = None

    def stop(self) -> None:
        """Make ``start()`` return after the current callback (before a ``start()``:
        the next ``start()`` returns at once, as pika's). From another thread:
        ``add_callback_threadsafe(ioloop.stop)``."""
        self._stopping = True
        self._ring()

    def close(self) -> None:
        """Release the loop (nothing to release here)."""

    # --- inside --------------------------------------------------------------------------

    def _is_stopping(self) -> bool:
        return self._stopping

    def _ring(self) -> None:
        with self._cond:
            self._rang = True
            self._cond.notify()

    def _attach(self, conn: _AsyncConnection) -> None:
        self._conns.append(conn)

    def _detach(self, conn: _AsyncConnection) -> None:
        if conn in self._conns:
            self._conns.remove(conn)

    def _iterate(self) -> bool:
        """One round; True if anything ran."""
        ran = 0
        for conn in list(self._conns):
            ran += conn._pump(self._is_stopping)
            if self._stopping:
                return True
        for _ in range(len(self._callbacks)):
            if self._stopping:
                return True
            with self._cond:
                cb = self._callbacks.popleft()
            cb()
            ran += 1
        now = time.monotonic()
        timers = self._timers
        while timers and timers[0][0] <= now and not self._stopping:
            t = heapq.heappop(timers)[2]
            cb2, t.callback = t.callback, None
            if cb2 is not None:
                cb2()
                ran += 1
        return ran > 0

    def _wait(self) -> None:
        timers = self._timers
        while timers and timers[0][2].callback is None:
            heapq.heappop(timers)  # (removed ones)
        timeout = _SAFETY_WAKE
        if timers:
            timeout = min(timeout, max(0.0, timers[0][0] - time.monotonic()))
        for conn in self._conns:
            if conn._arm():
                return  # work arrived meanwhile
        with self._cond:
            if not (self._rang or self._callbacks or self._stopping) and timeout > 0:
                self._cond.wait(timeout)
            self._rang = False
