"""Consuming on a channel (a mixin of :class:`inbus._channel.Channel`): ``basic_qos``,
``basic_consume`` and ``basic_cancel``, and pika's blocking ways to consume,
``start_consuming`` / ``stop_consuming`` and the ``consume()`` generator.

A consumer's state and who gets the next message are the queue's
(:mod:`inbus._consumers`); deliveries, settles and requeues are the broker's rules
(:mod:`inbus._broker`). The blocking ways pump the channel's connection's sink in the calling thread, so callbacks run there,
with no bus lock held. On a background channel the worker runs the callbacks; ``consume()``
then waits for what its consumer's callback hands over. A cancel or a close from another
thread is noticed at once when it wakes the sink, else within ``_POLL`` seconds.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Generator
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from ._dispatch import Sink
from ._errors import (
    AccessRefused,
    AMQPError,
    ChannelClosed,
    NotAllowed,
    NotImplementedByBus,
    PreconditionFailed,
    ReentrancyError,
)
from ._message import Message
from ._names import check_short, gen_consumer_tag
from ._queue import ChannelQos, Consumer

if TYPE_CHECKING:
    from ._connection import Connection
    from ._vhost import VHost

__all__ = ["BlockingConsuming"]

_POLL = 0.25  # seconds between checks when nothing wakes start_consuming (a safety net)


class BlockingConsuming:
    """The pumping half of a Channel (state lives on the Channel)."""

    _conn: Connection
    _lock: Any
    _consuming: bool
    _consumers: dict[str, Consumer]
    _open: bool
    _sink: Any
    _bus: Any
    _worker: Any
    channel_number: int
    _unacked: dict[int, Message]
    _closed_reason: AMQPError | None
    _consume_boxes: dict[str, Sink]
    _qos: ChannelQos
    _tx: Any  # (a _tx._Tx while transactional)
    _vh: VHost

    @property
    def consumer_tags(self) -> list[str]:
        raise NotImplementedError

    def _check_open(self) -> None:
        raise NotImplementedError

    def _op(self) -> AbstractContextManager[None]:
        raise NotImplementedError

    def _queue_name(self, queue: str) -> str:
        raise NotImplementedError

    def basic_qos(self, prefetch_size: int = 0, prefetch_count: int = 0,
                  global_qos: bool = False) -> None:
        """Limit unacked messages: per consumer (for consumers started later) or, with
        ``global_qos=True``, shared by the whole channel. 0 = no limit. As in RabbitMQ
        3.10, a per-consumer ``basic_qos`` also removes the channel's global limit: to
        have both, set the global one last.

        >>> from inbus import Bus
        >>> bus = Bus(); ch = bus.channel(); _ = ch.queue_declare("q")
        >>> for b in (b"1", b"2", b"3"): ch.basic_publish("", "q", b)
        >>> ch.basic_qos(prefetch_count=1)
        >>> held = []
        >>> _ = ch.basic_consume("q", held.append)
        >>> bus.run_until_idle(), [m.body for m in held]   # one unacked at a time
        (1, [b'1'])
        >>> held[0].ack(); bus.run_until_idle(), [m.body for m in held]
        (1, [b'1', b'2'])
        """
        if prefetch_count < 0 or prefetch_count > 65535:
            raise ValueError("prefetch_count must be between 0 and 65535")
        with self._op():
            if prefetch_size:
                raise NotImplementedByBus(f"prefetch_size!=0 ({prefetch_size})",
                                          scope="connection", method="basic.qos")
            if global_qos:
                qos = self._qos
                if prefetch_count and not qos.global_prefetch:
                    # (the channel's count is kept only under a global limit: ChannelQos)
                    # As RabbitMQ 3.10 (limit_prefetch(.., len(UAMQ))): from everything
                    # unacked on the channel, basic_get messages too (settling one never
                    # gives that back), settles a transaction holds not (their commit does).
                    qos.unacked = len(self._unacked)
                    qos.skew = qos.unacked - sum(e._consumer is not None for e in (
                        *self._unacked.values(),
                        *(self._tx.held_entries() if self._tx is not None else ())))
                qos.global_prefetch = prefetch_count
                self._bus._dispatch_channel_locked(self)
            else:
                self._qos.prefetch_count = prefetch_count
                if self._qos.global_prefetch:
                    # RabbitMQ 3.10 (rabbit_channel, basic.qos global=false): "ensures
                    # that if default was set, it's overridden": the global limit goes.
                    self._qos.global_prefetch = 0
                    self._bus._dispatch_channel_locked(self)

    def basic_consume(self, queue: str, on_message_callback: Callable[[Message], Any],
                      auto_ack: bool = False, exclusive: bool = False,
                      consumer_tag: str | None = None,
                      arguments: dict[str, Any] | None = None) -> str:
        """Start a consumer; returns its tag (``amq.ctag-...`` when not given).

        ``on_message_callback(message)`` runs in the thread that pumps the connection
        (``run_until_idle``, ``start_consuming``...) or on the channel's worker thread.
        Consumers of one queue share its messages round-robin among those with credit.
        O(consumers of the queue).

        >>> from inbus import Bus
        >>> bus = Bus(); ch = bus.channel(); _ = ch.queue_declare("q")
        >>> def on_message(m):
        ...     print(m.consumer_tag, m.body, m.redelivered); m.ack()
        >>> ch.basic_consume("q", on_message, consumer_tag="worker")
        'worker'
        >>> ch.basic_publish("", "q", b"job"); _ = bus.run_until_idle()
        worker b'job' False
        """
        if not callable(on_message_callback):
            raise TypeError("on_message_callback must be callable")
        with self._op():
            name = self._queue_name(queue)
            q = self._vh.get_queue(name, "basic.consume", self._conn)
            tag = check_short(consumer_tag, "consumer_tag") if consumer_tag else ""
            if tag and tag in self._consumers:
                raise NotAllowed(f"attempt to reuse consumer tag '{tag}'",
                                 scope="connection", method="basic.consume")
            tag = tag or gen_consumer_tag()
            if q.exclusive_consumer or (exclusive and q.consumers):
                raise AccessRefused(f"queue '{name}' in vhost '{self._vh.name}' in "
                                    "exclusive use", method="basic.consume")
            args = dict(arguments or {})
            prio = args.get("x-priority", 0)
            if isinstance(prio, bool) or not isinstance(prio, int):
                from ._args import amqp_type
                raise PreconditionFailed(
                    f"invalid arg 'x-priority' for queue '{name}' in vhost "
                    f"'{self._vh.name}': \"expected integer, got {amqp_type(prio)}\"",
                    method="basic.consume")
            c = Consumer(tag, q, self, on_message_callback, auto_ack, exclusive, self._qos,
                         prio, args, self._sink)
            self._consumers[tag] = c
            self._bus._add_consumer_locked(q, c)
            return tag

    def basic_cancel(self, consumer_tag: str = "") -> None:
        """Cancel a consumer. Its delivered messages stay unacked (and ackable) until
        this channel closes; deliveries whose callback has not run yet are put back
        (flagged redelivered; in a transaction, at its commit, as pika's reject of them
        would be), except an auto-ack consumer's: those were settled when delivered, so
        their callbacks still run. An unknown tag does nothing. On a
        durable Bus it returns once what it changed on disk is committed (an auto-delete
        queue it deleted stays deleted after a crash).

        >>> from inbus import Bus
        >>> bus = Bus(); ch = bus.channel(); _ = ch.queue_declare("q")
        >>> tag = ch.basic_consume("q", lambda m: None)
        >>> ch.basic_cancel(tag); ch.consumer_tags
        []
        """
        self._cancel(consumer_tag, putback=True)

    def _cancel(self, consumer_tag: str, putback: bool) -> None:
        """basic_cancel; without ``putback`` the deliveries whose callback has not run
        stay in the sink, for the one who reads it to settle (pika's asynchronous
        channel rejects them as it reads them, as from RabbitMQ's wire)."""
        since = self._bus._n_submits
        with self._op():
            c = self._consumers.pop(consumer_tag, None)
            if c is not None:
                self._bus._remove_consumer_locked(c, notify=False, putback=putback)
        # (a durable auto-delete queue it deleted stays deleted after a crash)
        self._bus._await_commit(since)

    def start_consuming(self) -> None:
        """Run the connection's callbacks in this thread until this channel has no
        consumers left (``stop_consuming()`` cancels them all) or is closed; raises
        :class:`ChannelClosed` if the bus closed it (an error), as pika does.

        >>> from inbus import Bus
        >>> ch = Bus().channel(); _ = ch.queue_declare("q")
        >>> def on_message(m):
        ...     print(m.body); m.ack()
        ...     if m.body == b"stop":
        ...         ch.stop_consuming()
        >>> _ = ch.basic_consume("q", on_message)
        >>> for b in (b"a", b"stop", b"never"): ch.basic_publish("", "q", b)
        >>> ch.start_consuming()
        b'a'
        b'stop'
        """
        self._check_not_own_worker("start_consuming()")
        sink, lock = self._conn._sink, self._lock
        with lock:
            self._check_open()
            self._consuming = True
        try:
            while True:
                with lock:
                    # checked under the lock that stop_consuming() takes to wake us: a stop
                    # from another thread ends this at once, not at the next poll
                    if not self._open and self._closed_reason is not None:
                        raise ChannelClosed(self._closed_reason)
                    if not self._consuming or not self._consumers or not self._open:
                        return
                    if not sink.items:
                        sink.wait(_POLL)
                        continue
                    items = sink.take()
                sink.run(items, lock)
        finally:
            self._consuming = False

    def _check_not_own_worker(self, what: str) -> None:
        w = self._worker
        if w is not None and w.thread is threading.current_thread():
            raise ReentrancyError(
                f"{what} on background channel {self.channel_number} cannot be called from its "
                f"own callback: the channel's worker runs that callback, so it could never "
                f"deliver what {what} waits for; consume on another channel, or use "
                f"basic_get")

    def stop_consuming(self, consumer_tag: str | None = None) -> None:
        """Cancel every consumer of the channel and make ``start_consuming`` return; with
        ``consumer_tag``, cancel that one only (``start_consuming`` goes on while the
        channel has other consumers, as in pika). Safe from any thread and from a
        callback (see :meth:`start_consuming`)."""
        with self._lock:
            if not self._open:
                return
            tags = [consumer_tag] if consumer_tag else list(self._consumers)
        for t in tags:
            self.basic_cancel(t)
        with self._lock:
            if not consumer_tag:
                self._consuming = False
            self._conn._sink.wake()  # (the sink start_consuming waits on)

    def consume(self, queue: str, auto_ack: bool = False, exclusive: bool = False,
                arguments: dict[str, Any] | None = None,
                inactivity_timeout: float | None = None, consumer_tag: str | None = None
                ) -> Generator[Message | None, None, None]:
        """Yield messages from ``queue`` as they come, pumping the connection meanwhile
        (other consumers' callbacks run in this thread, as in pika); on a background
        channel its worker hands the messages over. ``inactivity_timeout``: yield None
        after that many seconds without a message from ``queue``.

        The generator ends when its consumer is cancelled (``cancel()``, ``basic_cancel``,
        the queue deleted) or the channel closed, from any thread; it raises
        :class:`ChannelClosed` if the bus closed the channel (an error). Closing the
        generator, or ``cancel()``, cancels the consumer and puts the messages it
        received but did not yield back in their queue (flagged redelivered, as pika's
        ``cancel()`` rejects them).

        >>> from inbus import Bus
        >>> ch = Bus().channel(); _ = ch.queue_declare("q")
        >>> ch.basic_publish("", "q", b"a"); ch.basic_publish("", "q", b"b")
        >>> for m in ch.consume("q", inactivity_timeout=0.01):
        ...     if m is None:
        ...         break              # nothing came for 0.01 s
        ...     print(m.body); m.ack()
        b'a'
        b'b'
        >>> ch.cancel()
        0
        """
        self._check_not_own_worker("consume()")
        lock = self._lock
        mail = Sink(lock)  # what the consumer received and the generator did not yield
        # On the caller's-thread model, wait for (and run) the connection's callbacks; on
        # a background channel, wait for the worker to hand messages over.
        pump = self._worker is None
        sink = self._conn._sink if pump else mail

        def received(m: Message) -> None:  # in a pumping thread, or on the worker
            with lock:
                mail.push(m)
                if pump:
                    sink.wake()  # (another thread pumping the connection ran this)

        tag = self.basic_consume(queue, received, auto_ack, exclusive, consumer_tag,
                                 arguments)
        with lock:
            self._consume_boxes[tag] = mail
        deadline: float | None = None
        try:
            while True:
                with lock:
                    m = mail.items.popleft() if mail.items else None
                if m is not None:
                    assert isinstance(m, Message)  # (only deliveries are pushed to mail)
                    yield m
                    deadline = None
                    continue
                items: list[Any] = []
                with lock:
                    if not self._open or tag not in self._consumers:
                        if self._closed_reason is not None:
                            raise ChannelClosed(self._closed_reason)
                        return
                    if inactivity_timeout is None:
                        left = _POLL
                    else:
                        now = time.monotonic()
                        if deadline is None:
                            deadline = now + inactivity_timeout
                        left = deadline - now
                    if left > 0:
                        # (a cancel or close from another thread is noticed within _POLL)
                        sink.wait(min(left, _POLL))
                    if pump:
                        items = sink.take()
                if items:
                    sink.run(items, lock)
                if left <= 0 and not mail.items:  # (pumped at least once, even at 0 s)
                    yield None
                    deadline = None
        finally:
            self._end_consume(tag)

    def _end_consume(self, tag: str) -> None:
        """Cancel a consume() generator's consumer; what it received and did not yield
        goes back to the queue (the manual-ack deliveries still unacked)."""
        with self._lock:
            mail = self._consume_boxes.pop(tag, None)
            if self._open and tag in self._consumers:
                self.basic_cancel(tag)
            if mail is None or not mail.items or not self._open:
                return  # (a closed channel requeued them already)
            pending = mail.take()
            back = [m for m in pending if isinstance(m, Message)
                    and self._unacked.get(m.delivery_tag) is m]
            for m in back:
                del self._unacked[m.delivery_tag]
            if back:
                self._bus._requeue_locked(self, back)

    def cancel(self) -> int:
        """Cancel the consumers of this channel's ``consume()`` generators (pika), putting
        back what they received and did not yield; the generators end. Returns 0, as
        pika's does."""
        with self._lock:
            tags = list(self._consume_boxes)
        for tag in tags:
            self._end_consume(tag)
        return 0
