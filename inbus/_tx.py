"""AMQP transactions (tx.select / tx.commit / tx.rollback): a mixin of Channel.

Theory of operation
-------------------
``tx_select()`` gives the channel a :class:`_Tx`, and from then on the channel is
transactional for good (as in RabbitMQ, a commit or a rollback starts the next
transaction; there is no way back). The rules, as RabbitMQ 3.10's ``rabbit_channel``
applies them (each one checked against the real server):

- ``basic_publish`` is checked at once (exchange missing: 404; internal: 403; a bad
  ``delivery_mode`` or ``expiration``: 406; ``immediate``: 540) and *routed* at once, but
  held: it reaches its queues, and only those of them that still exist, at commit, in
  publish order. A binding made or removed between the publish and the commit does not
  change where it goes; a mandatory message that reaches no queue then is returned (312
  NO_ROUTE) at commit; what the queues dead-letter on arrival (overflow, TTL 0) is
  routed after the commit's last publish, and last settle. A rollback or a close
  discards the held publishes. A queue that refuses one at commit (``x-overflow``
  reject-publish / reject-publish-dlx) makes the commit a 406 "partial tx completion"
  once the rest of it is applied: the channel closes (its unacked messages are requeued).
- ``basic_ack`` / ``basic_nack`` / ``basic_reject`` check their tags at once (an unknown
  or already settled tag is the usual 406) and take them off the channel's unacked
  record, but the messages stay unacked in their queues (and their consumers' prefetch
  credit stays used) until the commit settles them, after the publishes: settles of one
  kind in a row form one run (RabbitMQ's ``ack_cons``), applied per queue in name order,
  within a queue per consumer tag (basic_get messages first), in delivery-tag order
  (RabbitMQ's ``foreach_per_queue``). What they dead-letter is routed after the last
  settle (RabbitMQ's queues do it on their own, once the channel has handed them the
  whole commit; as they work in parallel, several queues' dead letters reach a shared
  target queue by queue usually, not always). A global limit set meanwhile did not count
  them; as RabbitMQ's limiter, whose count does not go below 0, their run then gives
  it nothing back. A channel its global limit held resumes once the whole commit is
  settled (RabbitMQ's limiter usually resumes the queues after the commit reached
  them): requeued messages first. A rollback puts the tags back, still unacked: they
  may be settled again. A close (or a ``basic_recover``, for what it covers) requeues
  them with the rest.
- ``basic_get``, consuming (auto-ack too), ``basic_recover`` and declarations are not
  transactional. ``tx_commit`` / ``tx_rollback`` on a channel without ``tx_select`` and
  ``confirm_delivery`` <-> ``tx_select`` are 406s that close the channel.

The hooks in :class:`inbus.Channel` are one test each: ``basic_publish`` folds it into its
confirm-mode branch (``_confirm`` is true in a transaction too), ``basic_ack`` and
``basic_nack`` / ``basic_reject`` send a transactional settle to
:meth:`Transactions._tx_settle_locked`.

Persistence: while a commit applies its publishes and settles, the bus holds back the
storage operations they make (``Bus._ops_held``) and then submits them as one batch, so
they reach SQLite in one transaction; ``tx_commit`` returns once that is durable, as
RabbitMQ sends commit-ok. Everything runs under the bus lock; callbacks (returns,
deliveries) run later from the sinks, with no lock held, and may call the tx methods.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._errors import NotImplementedByBus, PreconditionFailed
from ._message import BasicProperties, Content, ReturnedMessage

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    from ._bus import Bus
    from ._consumers import ChannelQos
    from ._dispatch import Sink
    from ._exchanges import Exchange
    from ._queue import Unacked
    from ._vhost import VHost

__all__ = ["Transactions"]


def _settle_order(entry: Unacked) -> tuple[str, int, str, int]:
    """RabbitMQ's foreach_per_queue: per queue (by name), then per consumer tag (a
    basic_get's is its delivery tag, an integer: before any consumer's), in tag order."""
    c = entry._consumer
    return (entry._queue.name, 1, c.tag, entry._tag) if c is not None else \
        (entry._queue.name, 0, "", entry._tag)


class _Tx:
    """What the current transaction holds: routed publishes and taken-off settles."""

    __slots__ = ("publishes", "settles")

    def __init__(self) -> None:
        # (exchange, content, names of the queues it was routed to, mandatory)
        self.publishes: list[tuple[Exchange, Content, list[str], bool]] = []
        # (how: "ack" | "reject" | "requeue", the unacked entries it settles)
        self.settles: list[tuple[str, list[Unacked]]] = []

    def held_entries(self) -> list[Unacked]:
        """The unacked entries whose settling waits for the commit (for Bus._check)."""
        return [e for _, entries in self.settles for e in entries]


class Transactions:
    """The transactional half of a Channel (state lives on the Channel)."""

    _bus: Bus
    _vh: VHost
    _tx: _Tx | None
    _confirm: bool
    _unacked: dict[int, Unacked]
    _qos: ChannelQos
    _consumers: dict[str, Any]
    _return_callbacks: list[Any]
    _sink: Sink

    def _op(self) -> AbstractContextManager[None]:
        raise NotImplementedError

    def tx_select(self) -> None:
        """Make the channel transactional: from now on its publishes and its acks, nacks
        and rejects wait for :meth:`tx_commit` (or are dropped by :meth:`tx_rollback`).
        Selecting again does nothing; a channel in confirm mode refuses (406, closed).
        O(1).

        >>> from inbus import Bus
        >>> bus = Bus(); ch = bus.channel(); _ = ch.queue_declare("q")
        >>> ch.tx_select()
        >>> ch.basic_publish("", "q", b"held")
        >>> ch.queue_declare("q", passive=True).message_count   # not routed yet
        0
        >>> ch.tx_commit()
        >>> ch.queue_declare("q", passive=True).message_count
        1
        """
        with self._op():
            if self._tx is None:
                if self._confirm:
                    raise PreconditionFailed("cannot switch from confirm to tx mode",
                                             method="tx.select")
                self._tx = _Tx()
                self._confirm = True  # (basic_publish's slow path, see the module doc)

    def tx_commit(self) -> None:
        """Route the held publishes to their queues, in publish order, then apply the
        held acks, nacks and rejects; the channel stays transactional. On a durable Bus
        it returns once the persistent messages and settles it wrote are committed to
        disk, all in one SQLite transaction. Without :meth:`tx_select`: 406
        PRECONDITION_FAILED, and the channel closes. O(held publishes x queues + settles).

        >>> import inbus
        >>> bus = inbus.Bus(); ch = bus.channel(); _ = ch.queue_declare("q")
        >>> ch.basic_publish("", "q", b"a"); m = ch.basic_get("q")
        >>> ch.tx_select(); m.ack()                 # held: m is still unacked
        >>> ch.basic_publish("", "q", b"b"); ch.tx_commit()
        >>> ch.basic_get("q", auto_ack=True).body
        b'b'
        >>> ch2 = bus.channel()
        >>> try:
        ...     ch2.tx_commit()
        ... except inbus.PreconditionFailed as e:
        ...     print(e.reply_text, ch2.is_open)
        PRECONDITION_FAILED - channel is not transactional False
        """
        bus = self._bus
        since = bus._n_submits
        try:
            with self._op():
                tx = self._tx
                if tx is None:
                    raise PreconditionFailed("channel is not transactional",
                                             method="tx.commit")
                publishes, settles = tx.publishes, tx.settles
                tx.publishes, tx.settles = [], []
                vh = self._vh
                refused = False
                bus._ops_held = True  # (one storage batch for the whole commit)
                try:
                    # As RabbitMQ's channel, which hands every publish and settle of the
                    # commit to its queues before any of them can react: what they
                    # dead-letter (overflow, TTL 0 on arrival, rejects) is routed after
                    # the last publish and the last settle.
                    bus._hold_dead_letters()
                    try:
                        for x, content, names, mandatory in publishes:
                            if not self._tx_route_locked(x, content, names, mandatory):
                                refused = True
                        self._tx_settle_runs_locked(settles)
                    finally:
                        bus._release_dead_letters()
                finally:
                    if self._qos.resume_later:
                        self._qos.resume_later = False
                        if self._qos.global_prefetch and self._consumers:
                            bus._dispatch_channel_locked(self)  # type: ignore[arg-type]
                    bus._ops_held = False
                    bus._flush_ops_locked(vh)
                if refused:
                    # As RabbitMQ: a queue refused a publish (x-overflow reject-publish or
                    # reject-publish-dlx); the rest of the commit stands, but the channel
                    # closes with this error (its unacked messages are requeued).
                    raise PreconditionFailed("partial tx completion", method="tx.commit")
        finally:
            bus._await_commit(since)

    def _tx_settle_runs_locked(self, settles: list[tuple[str, list[Unacked]]]) -> None:
        """Apply a commit's held settles, run by run (see the module docstring)."""
        bus = self._bus
        qos = self._qos
        qos.resume_later = bool(settles)  # (tx_commit resumes the channel at the end)
        for how, entries in settles:
            entries.sort(key=_settle_order)
            if qos.global_prefetch and qos.unacked == 0:
                # RabbitMQ's limiter takes nothing off a count of 0 (Volume == 0 -> 0): a
                # global limit set while these were held did not count them, so their run
                # gives it nothing back.
                k = sum(e._consumer is not None for e in entries)
                qos.unacked += k
                qos.skew += k
            if how == "requeue":
                bus._requeue_locked(self, entries)  # type: ignore[arg-type]
            else:
                for e in entries:
                    bus._settle_locked(self, e, how)  # type: ignore[arg-type]

    def tx_rollback(self) -> None:
        """Drop the held publishes; the held acks, nacks and rejects are forgotten and
        their messages stay unacked (settle them again, or they return on close). The
        channel stays transactional. Without :meth:`tx_select`: 406, channel closed.
        O(held publishes + unacked).

        >>> from inbus import Bus
        >>> bus = Bus(); ch = bus.channel(); _ = ch.queue_declare("q")
        >>> ch.basic_publish("", "q", b"a"); m = ch.basic_get("q")
        >>> ch.tx_select(); m.ack(); ch.basic_publish("", "q", b"b")
        >>> ch.tx_rollback()
        >>> ch.queue_declare("q", passive=True).message_count   # b was dropped
        0
        >>> m.ack(); ch.tx_commit()                            # a is acked now
        """
        with self._op():
            if self._tx is None:
                raise PreconditionFailed("channel is not transactional",
                                         method="tx.rollback")
            self._tx_rollback_locked()

    # --- hooks (lock held) ---------------------------------------------------------------

    def _tx_rollback_locked(self) -> None:
        """Forget the held publishes; put the held settles' tags back in the channel's
        unacked record, in tag order (a close then requeues them)."""
        tx = self._tx
        assert tx is not None
        tx.publishes = []
        if tx.settles:
            back = {e._tag: e for e in tx.held_entries()}
            tx.settles = []
            un = self._unacked
            back.update(un)
            un.clear()
            un.update(sorted(back.items()))

    def _tx_publish(self, exchange: str, rk: str, body: bytes, props: BasicProperties,
                    mandatory: bool, immediate: bool) -> None:
        """basic_publish in a transaction: checked and routed now by
        Broker._publish_locked, which holds it in the transaction; delivered at commit."""
        with self._op():
            if immediate:
                raise NotImplementedByBus("immediate=true", scope="connection",
                                          method="basic.publish")
            assert self._tx is not None
            self._bus._publish_locked(self, exchange, rk, body, props,  # type: ignore[arg-type]
                                      mandatory, self._tx.publishes)

    def _tx_route_locked(self, x: Exchange, content: Content, names: list[str],
                         mandatory: bool) -> bool:
        """Deliver one held publish at commit to the queues it was routed to that still
        exist (looked up by name, as RabbitMQ does). False: a queue refused it
        (x-overflow reject-publish / reject-publish-dlx)."""
        bus = self._bus
        vh = self._vh
        if bus._taps:
            tap = bus._taps.get((vh.name, x.name))
            if tap is not None:
                tap.append(ReturnedMessage(0, "published", content))
        x.published_in += 1
        queues = [q for q in map(vh.queues.get, names) if q is not None]
        if not queues:
            bus._n_unroutable += 1
            x.unroutable += 1
            if mandatory:
                bus._n_returned += 1
                returned = ReturnedMessage(312, "NO_ROUTE", content)
                for cb in self._return_callbacks:
                    self._sink.push((cb, returned))
            return True
        accepted = True
        for q in queues:  # (dead letters held by tx_commit)
            if not bus._enqueue_locked(vh, q, content):
                accepted = False
        return accepted

    def _tx_settle_locked(self, tag: int, multiple: bool, how: str, method: str) -> None:
        """ack / reject / requeue in a transaction: the tags are checked and taken off the
        unacked record now (the rule of Broker._settle_tags_locked), settled at commit."""
        self._tx_hold_locked(how, self._bus._take_unacked_locked(
            self, tag, multiple, method))  # type: ignore[arg-type]

    def _tx_hold_locked(self, how: str, entries: list[Unacked]) -> None:
        """Hold a settle until the commit. As RabbitMQ's ack_cons, a settle of the same
        kind as the one before joins its group; the commit applies each group per queue
        and consumer, in tag order (so rejects dead-letter their messages in that order,
        not call order)."""
        assert self._tx is not None
        settles = self._tx.settles
        if settles and settles[-1][0] == how:
            settles[-1][1].extend(entries)
        else:
            settles.append((how, entries))
