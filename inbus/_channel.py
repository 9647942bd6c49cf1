"""Connections and channels: pika 1.x's BlockingChannel methods on top of the bus.

Theory of operation
-------------------
Each public method validates its arguments, takes the bus lock, checks the channel is
open, asks the vhost (pure core) to do the work, turns the decisions into deliveries
(tags, unacked bookkeeping, sink items) and releases the lock. An :class:`AMQPError`
raised inside closes the channel (or, for a connection-scope error, the connection) under
the same lock, then propagates; later use of the channel raises :class:`ChannelClosed`
naming why it closed. Callbacks never run here: they are pumped from sinks (see
:mod:`inbus._dispatch`).

The exchange and queue methods (declare, delete, bind, purge) live in the
:class:`inbus._topology.Topology` mixin, the blocking consume loops in
:class:`inbus._pumping.BlockingConsuming`.

Delivery tags are per channel and strictly increasing. ``basic_ack(tag, multiple=True)``
settles every unacked tag up to and including ``tag`` (``0`` with multiple = all).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from ._dispatch import Sink, Worker, acquire_barging
from ._errors import (
    AMQPError,
    ChannelClosed,
    ConnectionClosed,
    NackError,
    NotImplementedByBus,
    PreconditionFailed,
    UnroutableError,
)
from ._message import BasicProperties, Message, ReturnedMessage
from ._names import check_short, coerce_body
from ._pumping import BlockingConsuming
from ._queue import ChannelQos, Consumer, DeclareResult, Queue, Unacked
from ._topology import Topology
from ._tx import Transactions, _Tx

if TYPE_CHECKING:
    from ._connection import Connection

__all__ = ["Channel", "DeclareResult"]


class Channel(Topology, BlockingConsuming, Transactions):
    """An AMQP channel with pika 1.x BlockingChannel's method names and arguments.

    >>> from inbus import Bus
    >>> bus = Bus(); ch = bus.channel()
    >>> ch.queue_declare("hello").queue
    'hello'
    >>> ch.basic_publish("", "hello", b"hi")
    >>> ch.basic_get("hello", auto_ack=True).body
    b'hi'
    >>> bus.close()
    """

    def __init__(self, conn: Connection, number: int, background: bool) -> None:
        self._conn = conn
        self._bus = conn._bus
        self._lock = conn._lock
        self._vh = conn._vh
        self.channel_number = number
        self._open = True
        self._closed_reason: AMQPError | None = None
        self._closed_with_connection = False  # (not on its own: compat.pika asks)
        self._next_tag = 1
        self._unacked: dict[int, Unacked] = {}
        self._qos = ChannelQos()
        self._consumers: dict[str, Consumer] = {}
        self._return_callbacks: list[Callable[[ReturnedMessage], Any]] = []
        self._cancel_callbacks: list[Callable[[str], Any]] = []
        self._confirm = False  # confirm mode, or a transaction (_tx): publish's slow path
        self._tx: _Tx | None = None  # tx_select()ed: what the transaction holds (inbus._tx)
        self._confirm_callback: Callable[[int, bool], Any] | None = None
        self._publish_seq = 0
        self._last_queue = ""
        self._consuming = False
        # consume() generators: consumer tag -> what it received and did not yield yet
        self._consume_boxes: dict[str, Sink] = {}
        self._worker: Worker | None = None
        # Publishing takes the bus lock blocking in the caller's-thread model, but barging
        # (inbus._dispatch.acquire_barging) on a background channel, whose publisher races
        # worker threads that ack: no lock convoy.
        self._barging = background
        if background:
            self._sink = Sink(self._lock)
            self._worker = Worker(self._sink, self._lock,
                                  f"inbus-c{conn._number}-ch{number}",
                                  self._bus._callback_error)
        else:
            self._sink = conn._sink

    # --- state -------------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        """True until the channel is closed (by you, its connection, or an error)."""
        return self._open

    @property
    def is_closed(self) -> bool:
        """``not is_open``."""
        return not self._open

    @property
    def connection(self) -> Connection:
        """The connection this channel belongs to."""
        return self._conn

    @property
    def consumer_tags(self) -> list[str]:
        """The tags of this channel's consumers, in the order they started."""
        with self._lock:
            return list(self._consumers)

    def _check_open(self) -> None:
        if not self._open:
            if not self._conn._open and self._closed_reason is None:
                raise ConnectionClosed(self._conn._closed_reason)
            raise ChannelClosed(self._closed_reason)

    def _error(self, err: AMQPError) -> None:
        """Close what ``err`` closes (lock held); the caller re-raises."""
        self._bus._count("errors")
        if err.scope == "connection":
            for w in self._conn._close(err):
                w.stop(join=False)
        else:
            own = self._close_locked(err)
            if own is not None:
                own.stop(join=False)

    @contextmanager
    def _op(self) -> Iterator[None]:
        with self._lock:
            self._check_open()
            try:
                yield
            except AMQPError as e:
                self._error(e)
                raise

    def close(self, reply_code: int = 200, reply_text: str = "Normal shutdown") -> None:
        """Close the channel: its consumers are cancelled and its unacked messages return
        to their queues, redelivered. Closing a closed channel does nothing. O(unacked).
        On a durable Bus it returns once what that changed on disk is committed (a durable
        auto-delete queue it deleted stays deleted after a crash).

        >>> from inbus import Bus
        >>> bus = Bus(); ch = bus.channel(); _ = ch.queue_declare("q")
        >>> ch.basic_publish("", "q", b"x"); m = ch.basic_get("q")
        >>> ch.close(); ch.is_closed
        True
        >>> bus.channel().basic_get("q").redelivered
        True
        """
        since = self._bus._n_submits
        w = self._close_locked(None)
        if w is not None:
            w.stop()
        self._bus._await_commit(since)

    def _close_locked(self, reason: AMQPError | None, from_connection: bool = False
                      ) -> Worker | None:
        with self._lock:
            if not self._open:
                return None
            self._open = False
            self._closed_reason = reason
            self._closed_with_connection = from_connection
            bus = self._bus
            # As RabbitMQ's handle_ch_down: drop the consumers and requeue the unacked
            # messages first, then deliver, so the requeued ones go out first (to a
            # single active consumer's successor, say).
            queues = self._detach_consumers_locked()
            if self._tx is not None:
                self._tx_rollback_locked()  # (its held acks are requeued with the rest)
            self._recover_locked(requeue=True)
            for q in queues:
                if not q.deleted:
                    bus._dispatch_queue_locked(self._vh, q)
            if self._worker is not None:
                self._sink.closed = True
                self._sink.items.clear()
            else:
                self._drop_pending()
            if not from_connection:
                self._conn._channels.pop(self.channel_number, None)
            return self._worker

    def _detach_consumers_locked(self) -> list[Queue]:
        """Remove every consumer of this channel (no dispatch); their queues."""
        queues = []
        for c in list(self._consumers.values()):
            self._bus._remove_consumer_locked(c, notify=False, dispatch=False)
            queues.append(c.queue)
        self._consumers.clear()
        return queues

    def _putback(self, msg: Message) -> bool:
        """``msg`` was delivered to a consumer that is gone before its callback ran: requeue
        it to its position, flagged redelivered as basic_cancel does, and return True;
        False if the consumer is still current (then the callback runs)."""
        with self._lock:
            c = msg._consumer
            if self._consumers.get(c.tag) is c:
                return False
            entry = self._unacked.pop(msg._tag, None)
            if entry is not None:
                if self._tx is not None:  # (held, as basic_cancel's put-back: inbus._tx)
                    self._tx_hold_locked("requeue", [entry])
                else:
                    self._bus._requeue_locked(self, [entry])
            return True

    def _drop_pending(self) -> None:
        self._sink.remove_deliveries(lambda m: m._channel is self)

    # --- publishing --------------------------------------------------------------------

    def basic_publish(self, exchange: str, routing_key: str, body: Any,
                      properties: BasicProperties | None = None, mandatory: bool = False,
                      immediate: bool = False) -> None:
        """Publish a message. Unroutable + mandatory: returned (312 NO_ROUTE) to the
        return callbacks, or in confirm mode raised as :class:`UnroutableError`. The bus
        keeps a copy of ``properties``: the caller may reuse or change its object.

        >>> from inbus import Bus
        >>> ch = Bus().channel()
        >>> ch.basic_publish("amq.direct", "nowhere", "dropped")
        """
        data = body if type(body) is bytes else coerce_body(body)
        # (checked first, as pika does client-side: argument misuse raises before any
        # AMQP error could close the channel)
        if type(exchange) is not str or len(exchange) > 63:
            exchange = check_short(exchange, "exchange")
        if type(routing_key) is not str or len(routing_key) > 63:
            routing_key = check_short(routing_key, "routing_key")
        bus = self._bus
        props: BasicProperties
        if properties is None:
            props = bus._no_props
        elif type(properties) is BasicProperties or isinstance(properties, BasicProperties):
            props = properties._snapshot()  # the caller may reuse or change its object
        else:
            raise TypeError(f"properties must be an inbus.BasicProperties, not "
                            f"{type(properties).__name__}")
        # A blocking confirm of a persistent message will flush: say so before the submit,
        # so the committer lets this thread commit it instead of waking its writer.
        confirm = self._confirm
        waiter = None
        if confirm:
            if self._tx is not None:  # a transaction holds it until commit (inbus._tx)
                return self._tx_publish(exchange, routing_key, data, props, mandatory,
                                        immediate)
            if self._confirm_callback is None:
                waiter = bus._committer  # (None without storage)
                if waiter is not None:
                    waiter.expect_flush()
        lock = self._lock
        # (not "with": ~50 ns cheaper; on a background channel, barging: see _barging)
        if self._barging:
            lock.acquire(False) or acquire_barging(lock)
        else:
            lock.acquire()
        try:
            if not self._open:
                self._check_open()
            try:
                if immediate:
                    raise NotImplementedByBus("immediate=true", scope="connection",
                                              method="basic.publish")
                outcome = bus._publish_locked(self, exchange, routing_key, data, props,
                                              mandatory)
            except AMQPError as e:
                self._error(e)
                raise
            if outcome is None and not confirm:
                return  # the common outcome (delivered or queued, nothing stored)
            returned, nacked, persisted = outcome or (None, False, False)
            if confirm:
                self._publish_seq += 1
                seq = self._publish_seq
            elif returned is not None:
                for cb in self._return_callbacks:
                    self._sink.push((cb, returned))
        except BaseException:
            if waiter is not None:
                waiter.unexpect()
            raise
        finally:
            lock.release()
        if confirm:
            self._confirmed(seq, returned, nacked, persisted, waiter)
        elif persisted:
            bus._committer.throttle()  # backpressure when the disk falls behind

    def _confirmed(self, seq: int, returned: ReturnedMessage | None, nacked: bool,
                   persisted: bool, waiter: Any = None) -> None:
        cb = self._confirm_callback
        committer = self._bus._committer
        if waiter is not None and not (persisted and cb is None):
            waiter.unexpect()
            waiter = None
        if persisted and committer is not None:
            # A persistent message is confirmed only once its transaction committed.
            if cb is not None:
                committer.submit([], lambda exc: cb(seq, exc is None and not nacked))
                return
            committer.flush(expected=waiter is committer)  # raises PersistenceError if
            # the write failed
        if cb is not None:
            if returned is not None:
                for rcb in self._return_callbacks:
                    rcb(returned)
            cb(seq, not nacked)
            return
        if returned is not None:
            raise UnroutableError([returned])
        if nacked:
            raise NackError([seq])

    def confirm_delivery(self, callback: Callable[[int, bool], Any] | None = None) -> None:
        """Publisher confirms. Without ``callback``, ``basic_publish`` raises
        UnroutableError / NackError like pika's BlockingChannel; with it, every publish
        calls ``callback(publish_seq, acked)`` (returns are handed to the return
        callbacks first, as RabbitMQ sends basic.return before basic.ack).

        >>> import inbus
        >>> ch = inbus.Bus().channel(); ch.confirm_delivery()
        >>> try:
        ...     ch.basic_publish("amq.direct", "nowhere", b"x", mandatory=True)
        ... except inbus.UnroutableError as e:
        ...     print(e.messages[0].reply_code, e.messages[0].reply_text)
        312 NO_ROUTE
        """
        with self._op():
            if self._tx is not None:
                raise PreconditionFailed("cannot switch from tx to confirm mode",
                                         method="confirm.select")
            self._confirm = True
            self._confirm_callback = callback

    def add_on_return_callback(self, callback: Callable[[ReturnedMessage], Any]) -> None:
        """``callback(returned)`` for unroutable mandatory messages (312 NO_ROUTE); it runs
        where the channel's callbacks run.

        >>> from inbus import Bus
        >>> bus = Bus(); ch = bus.channel()
        >>> ch.add_on_return_callback(lambda r: print(r.reply_text, r.routing_key, r.body))
        >>> ch.basic_publish("amq.direct", "nowhere", b"lost?", mandatory=True)
        >>> bus.run_until_idle()
        NO_ROUTE nowhere b'lost?'
        1
        """
        with self._lock:
            self._return_callbacks.append(callback)

    def add_on_cancel_callback(self, callback: Callable[[str], Any]) -> None:
        """``callback(consumer_tag)`` when the bus cancels a consumer (its queue was
        deleted), as RabbitMQ's basic.cancel.

        >>> from inbus import Bus
        >>> bus = Bus(); ch = bus.channel(); _ = ch.queue_declare("q")
        >>> ch.add_on_cancel_callback(print)
        >>> _ = ch.basic_consume("q", print, consumer_tag="c1")
        >>> _ = bus.channel().queue_delete("q"); _ = bus.run_until_idle()
        c1
        """
        with self._lock:
            self._cancel_callbacks.append(callback)

    # --- getting and consuming ---------------------------------------------------------

    def basic_get(self, queue: str = "", auto_ack: bool = False) -> Message | None:
        """Take one message, or None when the queue is empty. ``.message_count`` is the
        number of ready messages left. O(1) (a priority queue: O(levels)).

        >>> from inbus import Bus
        >>> ch = Bus().channel(); _ = ch.queue_declare("q")
        >>> ch.basic_publish("", "q", b"a"); ch.basic_publish("", "q", b"b")
        >>> m = ch.basic_get("q"); m.body, m.message_count
        (b'a', 1)
        >>> m.ack(); ch.basic_get("q", auto_ack=True).body, ch.basic_get("q")
        (b'b', None)
        """
        with self._op():
            return self._bus._get_locked(self, self._queue_name(queue), auto_ack)

    def basic_ack(self, delivery_tag: int = 0, multiple: bool = False) -> None:
        """Acknowledge ``delivery_tag`` (with ``multiple``, every tag up to it; tag 0 with
        ``multiple``: everything unacked). An unknown or already settled tag is a 406
        that closes the channel, as in RabbitMQ. O(1); multiple: O(unacked).

        >>> import inbus
        >>> ch = inbus.Bus().channel(); _ = ch.queue_declare("q")
        >>> ch.basic_publish("", "q", b"a"); ch.basic_publish("", "q", b"b")
        >>> tags = [ch.basic_get("q").delivery_tag for _ in range(2)]
        >>> ch.basic_ack(tags[1], multiple=True)        # both
        >>> try:
        ...     ch.basic_ack(tags[0])
        ... except inbus.PreconditionFailed as e:
        ...     print(e.reply_code, ch.is_open)
        406 False
        """
        lock = self._lock
        # (not "with": ~50 ns cheaper; barging: acks from a worker or a pool thread racing
        # a publisher must not fall into a lock convoy, see inbus._dispatch)
        lock.acquire(False) or acquire_barging(lock)
        try:
            if not self._open:
                self._check_open()
            entry = (None if multiple or self._tx is not None
                     else self._unacked.pop(delivery_tag, None))
            if entry is None:  # multiple, an unknown tag (406), or a transaction
                try:
                    if self._tx is not None:
                        self._tx_settle_locked(delivery_tag, multiple, "ack", "basic.ack")
                    else:
                        self._bus._settle_tags_locked(self, delivery_tag, multiple, "ack",
                                                      "basic.ack")
                except AMQPError as e:
                    self._error(e)
                    raise
                return
            q = entry._queue
            c = entry._consumer
            qos = self._qos
            # (no QMsg: a direct delivery, never persistent)
            if (c is None or q.deleted or qos.global_prefetch or (
                    q.durable and entry._qmsg is not None and entry._qmsg.persistent)):
                self._bus._settle_locked(self, entry, "ack")
                return
            # The hot path of _settle_locked(entry, "ack"), inlined.
            q.n_acked += 1
            cs = q.consumers
            if not (q.ready_count and c.live and c.prefetch and not q.has_ttl and (
                    q.round_robin or len(cs) == 1 and not q.single_active)):
                q.unacked -= 1
                c.unacked -= 1  # (and no qos.unacked: counted only under a global limit)
                if c.blocked:  # it has credit again: back into the round robin
                    q.unblock(c)
                if q.ready_count and cs:
                    self._bus._dispatch_queue_locked(self._vh, q, None, c)
                return
            # A work queue's backlog: the credit this ack frees is the only one (ready
            # messages mean nobody had credit), so the acker takes the head at once, as
            # _dispatch_queue_locked would do; its unacked counts stay (one out, one in).
            # It was blocked (Consumer.blocked) and stays so while messages are left, as
            # in RabbitMQ, where it rejoins, takes the head and is found without credit.
            if q.round_robin:
                q.served = c  # (next_consumer() continues after it, see Queue.served)
            tag = self._next_tag
            self._next_tag = tag + 1
            q.n_delivered += 1
            lane = q.lanes[0]
            m = None if lane.front or not q.simple else lane.tail[0]
            if type(m) is tuple:  # a Fresh one (inbus._queue): delivered as it is
                lane.tail.popleft()
                seq, body, exchange, rk, props = m
                q.ready_count -= 1
                q.ready_bytes -= len(body)
                self._unacked[tag] = msg = Message(body, exchange, rk, props, tag, False,
                                                   c.tag, self, None, c)
                msg._queue = q
                msg._qmsg = None  # (as a direct delivery: a QMsg only if it goes back)
                msg._seq = seq
            else:  # a requeued message first, a priority queue, or a QMsg
                head = q.pop()
                assert head is not None  # (ready_count says so)
                if head.redelivered:
                    q.n_redelivered += 1
                self._unacked[tag] = msg = Message(head.body, head.exchange,
                                                   head.routing_key, head.properties, tag,
                                                   head.redelivered, c.tag, self, None, c)
                msg._queue = q
                msg._qmsg = head
            if not q.ready_count:
                c.blocked = 0  # (it took the last one: nobody offered it more)
            sink = c.sink
            sink.items.append(msg)
            if sink.wanted:  # (Sink.push, inlined)
                sink.wanted = False
                sink.cond.notify()
        finally:
            lock.release()

    def basic_nack(self, delivery_tag: int = 0, multiple: bool = False,
                   requeue: bool = True) -> None:
        """Negative ack (``multiple`` as in :meth:`basic_ack`): ``requeue=True`` puts the
        messages back at their original positions, flagged redelivered; ``False`` drops
        them or dead-letters them (``x-dead-letter-exchange``). O(1) per message (a
        requeue O(log r), r requeued messages waiting).

        >>> from inbus import Bus
        >>> ch = Bus().channel(); _ = ch.queue_declare("q")
        >>> ch.basic_publish("", "q", b"a"); ch.basic_publish("", "q", b"b")
        >>> m = ch.basic_get("q"); ch.basic_nack(m.delivery_tag)
        >>> m = ch.basic_get("q"); m.body, m.redelivered       # back at the head
        (b'a', True)
        """
        how = "requeue" if requeue else "reject"
        with self._op():
            if self._tx is not None:  # (held until commit: inbus._tx)
                self._tx_settle_locked(delivery_tag, multiple, how, "basic.nack")
            else:
                self._bus._settle_tags_locked(self, delivery_tag, multiple, how,
                                              "basic.nack")

    def basic_reject(self, delivery_tag: int = 0, requeue: bool = True) -> None:
        """Reject one message: requeue it to its original position (redelivered), or drop
        it / dead-letter it. :meth:`basic_nack` without ``multiple``.

        >>> from inbus import Bus
        >>> ch = Bus().channel(); _ = ch.queue_declare("q")
        >>> ch.basic_publish("", "q", b"poison")
        >>> ch.basic_reject(ch.basic_get("q").delivery_tag, requeue=False)
        >>> ch.queue_declare("q", passive=True).message_count
        0
        """
        how = "requeue" if requeue else "reject"
        with self._op():
            if self._tx is not None:  # (held until commit: inbus._tx)
                self._tx_settle_locked(delivery_tag, False, how, "basic.reject")
            else:
                self._bus._settle_tags_locked(self, delivery_tag, False, how,
                                              "basic.reject")

    def basic_recover(self, requeue: bool = True) -> None:
        """Put every unacked message of this channel back in its queue, at its original
        position, redelivered (``requeue=False`` is 540 NOT_IMPLEMENTED, as in RabbitMQ).

        >>> from inbus import Bus
        >>> ch = Bus().channel(); _ = ch.queue_declare("q")
        >>> ch.basic_publish("", "q", b"a"); _ = ch.basic_get("q")
        >>> ch.basic_recover(); ch.basic_get("q").redelivered
        True
        """
        with self._op():
            if not requeue:
                raise NotImplementedByBus("requeue=false", scope="connection",
                                          method="basic.recover")
            self._recover_locked(requeue=True)

    def flow(self, active: bool = True) -> bool:
        """AMQP channel.flow, as RabbitMQ answers it: ``active=True`` is accepted and
        returned; ``active=False`` (asking the broker to stop sending) is its 540
        NOT_IMPLEMENTED connection error. To pause deliveries use ``basic_qos`` or
        ``basic_cancel``.

        >>> from inbus import Bus, NotImplementedByBus
        >>> ch = Bus().channel(); ch.flow(True)
        True
        >>> try:
        ...     ch.flow(False)
        ... except NotImplementedByBus as e:
        ...     print(e.reply_code, e.reply_text, ch.is_open)
        540 NOT_IMPLEMENTED - active=false False
        """
        with self._op():
            if not active:
                raise NotImplementedByBus("active=false", scope="connection",
                                          method="channel.flow")
            return True

    def _recover_locked(self, requeue: bool) -> None:
        if self._unacked:
            entries = list(self._unacked.values())
            self._unacked.clear()
            self._bus._requeue_locked(self, entries)

    def __enter__(self) -> Channel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "open" if self._open else "closed"
        return f"<inbus.Channel {self.channel_number} vhost={self._vh.name!r} {state}>"


