"""Connections: a vhost's door, the unit whose thread pumps callbacks (as in pika).

Theory of operation
-------------------
A :class:`Connection` owns channels, a sink of pending callbacks (run by the thread that
calls ``process_data_events`` / ``start_consuming`` / ``consume()`` /
``bus.run_until_idle``) and its exclusive queues. Closing it first detaches every
consumer of every channel, then closes the channels (their unacked messages go back to
their queues, redelivered), then deletes its exclusive queues. A connection-scope error
(503, 530, 540) closes it the same way.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ._channel import Channel
from ._dispatch import Sink, Worker
from ._errors import AMQPError, ConnectionClosed
from ._queue import Queue

if TYPE_CHECKING:
    from ._bus import Bus
    from ._vhost import VHost

__all__ = ["Connection"]


class Connection:
    """A connection to one vhost of a bus. Closing it closes its channels, requeues
    their unacked messages and deletes its exclusive queues."""

    def __init__(self, bus: Bus, vhost: VHost, background: bool) -> None:
        self._bus = bus
        self._lock = bus._lock
        self.vhost = vhost.name
        self._vh = vhost
        self._background = background
        self._channels: dict[int, Channel] = {}
        self._next_channel = 1
        self._sink = Sink(bus._lock)
        self._open = True
        self._closed_reason: AMQPError | None = None
        self._exclusive: list[Queue] = []
        bus._n_connections += 1
        self._number = bus._n_connections  # (names its channels' worker threads)

    @property
    def is_open(self) -> bool:
        """True until :meth:`close`, a connection-level error, or the bus closing."""
        return self._open

    @property
    def is_closed(self) -> bool:
        """``not is_open``."""
        return not self._open

    def _check_open(self) -> None:
        if not self._open:
            raise ConnectionClosed(self._closed_reason)

    def channel(self, channel_number: int | None = None, *,
                background: bool | None = None) -> Channel:
        """Open a channel. ``background=True``: its callbacks run on a worker thread.

        >>> from inbus import Bus
        >>> with Bus() as bus:
        ...     ch = bus.connection().channel()
        ...     ch.is_open
        True
        """
        with self._lock:
            self._check_open()
            n = channel_number or self._next_channel
            while n in self._channels:
                n += 1
            self._next_channel = n + 1
            bg = self._background if background is None else background
            ch = Channel(self, n, bg)
            self._channels[n] = ch
            if ch._worker is not None:
                # The bus joins it on close() even if the channel closes first without
                # joining it (from its own callback, or by an error): bus._workers.
                workers = self._bus._workers
                workers[:] = [w for w in workers if w.thread.is_alive()]
                workers.append(ch._worker)
            return ch

    def close(self) -> None:
        """Close every channel (requeueing their unacked messages), delete this
        connection's exclusive queues, and close the connection. Idempotent. On a
        durable Bus it returns once what that changed on disk is committed.

        >>> from inbus import Bus
        >>> bus = Bus(); conn = bus.connection(); ch = conn.channel()
        >>> q = ch.queue_declare("", exclusive=True).queue
        >>> conn.close(); conn.is_closed
        True
        >>> import inbus
        >>> try:
        ...     bus.channel().queue_declare(q, passive=True)
        ... except inbus.NotFound as e:
        ...     print(e.reply_code, "gone with its connection")
        404 gone with its connection
        """
        since = self._bus._n_submits
        workers = self._close(None)
        for w in workers:
            w.stop()
        self._bus._await_commit(since)

    def _close(self, reason: AMQPError | None) -> list[Worker]:
        with self._lock:
            if not self._open:
                return []
            self._open = False
            self._closed_reason = reason
            workers: list[Worker] = []
            chans = list(self._channels.values())
            # First every channel stops consuming, so that what one channel requeues is
            # never handed to a consumer of another channel that is closing with it.
            queues = [q for ch in chans for q in ch._detach_consumers_locked()]
            for ch in chans:
                cw = ch._close_locked(reason, from_connection=True)
                if cw is not None:
                    workers.append(cw)
            for q in queues:
                if not q.deleted:
                    self._bus._dispatch_queue_locked(self._vh, q)
            self._channels.clear()
            for q in self._exclusive:
                self._bus._delete_queue_locked(self._vh, q)
            self._exclusive.clear()
            self._sink.closed = True
            self._sink.items.clear()
            self._sink.wake()
            self._bus._forget(self)
            return workers

    def process_data_events(self, time_limit: float | None = 0) -> int:
        """Run pending callbacks of this connection in this thread (pika's name).

        ``time_limit=0`` runs what is pending and returns; a positive limit waits up to
        that long for work and returns once some ran (as pika does); None waits until at
        least one callback ran (or the connection closes). With a limit it returns once
        the limit has passed even if callbacks keep making work (a consumer that nacks
        with requeue gets its message again at once). Returns the number of
        callbacks run. On a closed connection it raises :class:`ConnectionClosed`.

        >>> from inbus import Bus
        >>> bus = Bus(); conn = bus.connection(); ch = conn.channel()
        >>> _ = ch.queue_declare("q")
        >>> _ = ch.basic_consume("q", lambda m: print(m.body), auto_ack=True)
        >>> ch.basic_publish("", "q", b"a"); conn.process_data_events(time_limit=1)
        b'a'
        1
        """
        with self._lock:
            self._check_open()
        deadline = None if time_limit is None else time.monotonic() + time_limit
        ran = 0
        while True:
            if ran and deadline is not None and time.monotonic() >= deadline:
                return ran  # (callbacks that keep requeueing must not hold it forever)
            with self._lock:
                if not self._sink.items and self._open:
                    if deadline is None:
                        if ran:
                            return ran
                        self._sink.wait(None)
                    else:
                        left = deadline - time.monotonic()
                        if left <= 0 or ran:
                            return ran
                        self._sink.wait(left)
                items = self._sink.take()
                if not items and not self._open:
                    return ran
            if items:
                ran += self._sink.run(items, self._lock)

    def sleep(self, duration: float) -> None:
        """Process events for ``duration`` seconds (pika's BlockingConnection.sleep)."""
        deadline = time.monotonic() + duration
        while self._open and (left := deadline - time.monotonic()) > 0:
            self.process_data_events(left)

    def add_callback_threadsafe(self, callback: Callable[[], Any]) -> None:
        """Schedule ``callback()`` to run in the thread that pumps this connection (the
        one safe way, in pika, to reach it from another thread; in inbus every method is
        thread-safe anyway).

        >>> import threading
        >>> from inbus import Bus
        >>> conn = Bus().connection()
        >>> t = threading.Thread(target=conn.add_callback_threadsafe,
        ...                      args=(lambda: print("in the pumping thread"),))
        >>> t.start(); t.join(); conn.process_data_events()
        in the pumping thread
        1
        """
        with self._lock:
            self._check_open()
            self._sink.push((lambda _arg: callback(), None))

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "open" if self._open else "closed"
        return f"<inbus.Connection vhost={self.vhost!r} {state} channels={len(self._channels)}>"
