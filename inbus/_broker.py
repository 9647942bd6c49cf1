"""The broker's delivery rules, applied under the bus lock (a mixin of :class:`Bus`).

Theory of operation
-------------------
Channel methods take the bus lock, ask the pure core (:mod:`inbus._vhost`,
:mod:`inbus._queue`) for decisions and apply them with the ``*_locked`` methods here:

- publish: route, then enqueue into each queue (overflow: drop-head / reject-publish /
  reject-publish-dlx; persistence ops; a fast path straight to a consumer with credit
  when nothing is queued, and one onto the backlog of a plain queue);
- deliver: a delivery tag from the consumer's channel and one read-only ``Message``,
  which is both the channel's unacked record and the consumer's sink item;
- settle (ack, or reject = dead-letter or drop) and requeue (original position,
  redelivered=True; ``x-delivery-limit``) are the :class:`inbus._settle.Settling`
  mixin's; dead-lettering (``x-death``; fully automatic cycles dropped; after the
  publish reached all its queues) and expiry (at the head, by the manual clock or the
  timer thread) are the :class:`inbus._expiry.Expiry` mixin's, under it;
- consumers come and go (auto-delete queues, ``x-expires``, cancel notifications).

Nothing here runs a callback or blocks; every method expects the lock held.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ._args import header_routes, invalid_message, parse_expiration
from ._errors import AccessRefused, NotFound
from ._message import (
    BasicProperties,
    Content,
    Message,
    ReturnedMessage,
    RoutedContent,
)
from ._queue import Consumer, QMsg, Queue, stored
from ._settle import Settling
from ._vhost import VHost

if TYPE_CHECKING:
    from ._channel import Channel

__all__ = ["Broker"]


class Broker(Settling):
    """The ``*_locked`` half of :class:`inbus.Bus` (state lives on the Bus)."""

    _taps: dict[tuple[str, str], list[ReturnedMessage]]
    _n_returned: int
    _no_props: BasicProperties
    _n_unroutable: int
    _n_submits: int
    _dl_pending: list[tuple[VHost, Any]]
    _dl_hold: bool
    _lock: Any

    # --- publishing and delivery (lock held) -----------------------------------------------

    def _publish_locked(self, ch: Channel, exchange: str, rk: str, body: bytes,
                        props: BasicProperties, mandatory: bool,
                        tx_held: list[Any] | None = None
                        ) -> tuple[ReturnedMessage | None, bool, bool] | None:
        """Route and enqueue one message: (returned, nacked, wrote-to-storage), or None
        for the common outcome (None, False, False) (no tuple to build and unpack).

        ``tx_held``: a transaction's publishes (inbus._tx): the message is checked and routed
        now, and ``(exchange, content, queue names, mandatory)`` appended there instead
        of enqueued; the commit delivers it."""
        vh = ch._vh
        x = vh.exchanges.get(exchange)
        if x is None:
            raise NotFound(f"no exchange '{exchange}' in vhost '{vh.name}'",
                           method="basic.publish")
        if x.internal:
            raise AccessRefused(f"cannot publish to internal exchange '{exchange}' in "
                                f"vhost '{vh.name}'", method="basic.publish")
        # The stored form, made only when a queue keeps the message (or a tap or a return
        # needs it): a message handed straight to consumers needs none.
        content: Content | None
        ttl: float | None
        keys: list[str] | None
        if props is self._no_props:  # (published without properties: the common case)
            ttl = keys = headers = content = None
            simple = True
        else:
            ttl = None
            if props.expiration is not None:
                ttl = parse_expiration(props.expiration)
            headers = props.headers
            keys = content = None
            if headers and ("CC" in headers or "BCC" in headers):
                keys = [rk] + header_routes(headers)
                if "BCC" in headers:
                    props = props.copy(headers={k: v for k, v in headers.items()
                                                if k != "BCC"})
                content = RoutedContent(body, exchange, rk, props, ttl, keys)
            # (CC / BCC: never direct, its unacked entry must keep the RoutedContent)
            dm = props.delivery_mode
            if dm is not None and dm != 2 and dm != 1:  # RabbitMQ: 1, 2 or none
                raise invalid_message(f"{{delivery_mode_unknown,{dm}}}")
            simple = ttl is None and dm != 2 and keys is None
        queues: Sequence[Queue] | None
        if keys is None:
            queues = x.routes.get(rk)  # vh.route's cache, looked up inline
            if queues is None:
                queues = vh.route(x, rk, headers)
        else:
            queues = vh.route_keys(x, keys, headers)
        if tx_held is not None:
            tx_held.append((x, content or Content(body, exchange, rk, props, ttl),
                         [q.name for q in queues], mandatory))
            return None
        if self._taps:
            tap = self._taps.get((vh.name, exchange))
            if tap is not None:
                content = content or Content(body, exchange, rk, props, ttl)
                tap.append(ReturnedMessage(0, "published", content))
        x.published_in += 1
        if not queues:
            self._n_unroutable += 1
            x.unroutable += 1
            if mandatory:
                self._n_returned += 1
                content = content or Content(body, exchange, rk, props, ttl)
                return ReturnedMessage(312, "NO_ROUTE", content), False, False
            return None
        nacked = False
        held = False  # (see _dead_letter_locked)
        before = self._n_submits
        for q in queues:
            expires: float | None = None
            # Fast path (the hot one): nothing waits and no feature applies, so a consumer
            # with credit takes the message at once, exactly as push + dispatch would;
            # inlined because it runs once per queue per publish.
            c = q.solo  # the only consumer of a plain queue, if that is what q has
            if c is not None:
                if not simple or q.ready_count:
                    c = None
                elif not c.auto_ack and (c.prefetch or c.qos.global_prefetch):
                    if not c.has_credit():
                        q.block(c)
                        c = None
            elif not q.ready_count and simple and q.consumers and q.plain and not q.has_ttl:
                c = q.next_consumer()
            if c is None:
                if simple and q.plain and q.simple:
                    # Queue.push and _enqueue_locked, inlined for what a backlog is mostly
                    # made of: one lane, no length limit or TTL, nothing to store; and no
                    # Content or QMsg, a Fresh tuple is the one object per queued message.
                    seq = q.next_seq
                    q.next_seq = seq + 1
                    q.lanes[0].tail.append((seq, body, exchange, rk, props))
                    q.ready_count += 1
                    q.ready_bytes += len(body)
                    q.n_published += 1
                    # With nothing ready before, the lines above found no consumer with
                    # credit, unless q.has_ttl skipped them: then look, as _enqueue_locked.
                    if q.has_ttl and q.ready_count == 1 and q.consumers:
                        held = held or self._hold_dead_letters()
                        self._dispatch_queue_locked(vh, q)
                    continue
                if (not q.ready_count and q.consumers and keys is None
                        and props.delivery_mode != 2 and q.max_length is None
                        and q.max_length_bytes is None and (q.has_ttl or ttl is not None)):
                    # A TTL (of the queue or the message) and nothing ready: a consumer
                    # with credit takes the message at once too, as push + dispatch would
                    # (even at TTL 0, as RabbitMQ); only a message that goes back to the
                    # queue can expire, so its unacked record keeps the expiry (a QMsg).
                    c = q.next_consumer()
                if c is None:
                    if content is None:
                        content = Content(body, exchange, rk, props, ttl)
                    held = held or self._hold_dead_letters()
                    try:
                        if not self._enqueue_locked(vh, q, content):
                            nacked = True
                    except BaseException:
                        self._release_dead_letters()
                        raise
                    continue
                t = q.message_ttl
                if ttl is not None and (t is None or ttl < t):
                    t = ttl
                if t is not None:
                    expires = self._now() + t
                    q.has_ttl = True  # (sticky, as Queue.push: it may come back)
                    q.solo = None
            cch: Channel = c.channel
            tag = cch._next_tag
            cch._next_tag = tag + 1
            if c.auto_ack:  # settled on delivery: the queue keeps nothing
                q.n_direct_auto += 1  # (published, delivered and acked)
                msg = Message(body, exchange, rk, props, tag, False, c.tag, cch, None, c)
            else:
                q.n_direct += 1  # (published and delivered)
                seq = q.next_seq
                q.next_seq = seq + 1
                c.unacked += 1
                if c.qos.global_prefetch:  # (counted only under a global limit: ChannelQos)
                    c.qos.unacked += 1
                q.unacked += 1
                # (the delivered message is the unacked record, see Unacked)
                cch._unacked[tag] = msg = Message(body, exchange, rk, props, tag, False,
                                                  c.tag, cch, None, c)
                msg._queue = q
                msg._qmsg = (None if expires is None
                             else QMsg(seq, body, exchange, rk, props, expires))
                msg._seq = seq
                if not q.simple:  # its priority lane, decided as it entered
                    msg._prio = props.priority or 0
            sink = c.sink
            sink.items.append(msg)
            if sink.wanted:  # (Sink.push, inlined)
                sink.wanted = False
                sink.cond.notify()
        if held:
            self._release_dead_letters()
        if vh.ops:
            self._flush_ops_locked(vh)
        if nacked or self._n_submits != before:
            return None, nacked, self._n_submits != before
        return None

    def _enqueue_locked(self, vh: VHost, q: Queue, content: Content) -> bool:
        """Put ``content`` in ``q`` (overflow, persistence, dispatch). False = refused.

        (``_publish_locked`` inlines the fast path for a queue with nothing ready.)"""
        now = self._now() if (q.has_ttl or content.ttl is not None or q.expires) else 0.0
        if q.max_length is not None or q.max_length_bytes is not None:
            if q.overflow != "drop-head" and q.would_overflow(content.size):
                if q.overflow == "reject-publish-dlx":
                    self._dead_letter_locked(vh, q, stored(0, content, None), "maxlen",
                                             persisted=False)
                else:
                    q.n_dropped += 1
                return False
        m = q.push(content, now)
        q.n_published += 1
        if content.persistent and q.durable:
            wall = None
            if m.expires_at is not None:
                wall = self._clock.time() + (m.expires_at - now)
            vh.persist_push(q, m, wall)
        # As RabbitMQ: a consumer with credit takes the message first (so a TTL 0 or a
        # max-length 0 queue still delivers to a waiting consumer), then what is over the
        # limit is dropped, then a TTL 0 message that nobody took expires at once.
        # Messages were ready before this one: then no consumer has credit (every change
        # of credit dispatches; Bus._check asserts it), so only the first ready message
        # looks for one (a backlog behind busy consumers costs no scan per publish).
        if q.consumers and q.ready_count == 1:
            self._dispatch_queue_locked(vh, q, now, fresh=m)
        if q.max_length is not None or q.max_length_bytes is not None:
            self._trim_to_limit_locked(vh, q, now)
        # (Messages are ready, so no consumer took this one: had one taken it, it was the
        # only ready message, and nothing would be left.)
        if m.expires_at is not None and q.ready_count:
            if m.expires_at <= now:
                self._expire_queue_locked(vh, q)
            else:
                self._arm_timer(m.expires_at)
        return True

    def _dispatch_queue_locked(self, vh: VHost, q: Queue, now: float | None = None,
                               acked: Consumer | None = None,
                               fresh: QMsg | None = None) -> None:
        """Hand ready messages of ``q`` to its consumers with credit (round-robin, or the
        consumer-priority / single-active rules of ``Queue.next_consumer``): a delivery
        tag, the unacked entry and a sink item each. Messages found expired at the head
        on the way (deadline <= now: RabbitMQ's ``Now >= Exp``) are dead-lettered.

        ``acked``: the consumer whose ack (of one message) is the only change since ``q``
        was last dispatched, so the only one of ``q``'s consumers that may have credit.
        ``fresh``: the message being published, which a waiting consumer takes even at
        its deadline (TTL 0), as RabbitMQ's attempt_delivery does before queueing it."""
        cs = q.consumers
        if not q.ready_count or not cs:
            return
        dead: list[QMsg] | None = None
        t = 0.0
        if q.has_ttl:
            t = now or self._now()
            dead = []
        # The only manual-ack consumer of the queue (an ack just freed its credit) skips
        # next_consumer(): the hot case, so the loop is inlined here.
        solo = cs[0] if len(cs) == 1 else None
        if solo is not None and (solo.auto_ack or solo.qos.global_prefetch):
            solo = None
        elif (acked is not None and acked.live and acked.prefetch and q.round_robin
              and not acked.qos.global_prefetch):
            # So does the consumer whose ack freed a credit when it is one of several of
            # equal priority: nobody else has credit (ready messages and no credit go
            # together, see _enqueue_locked), so next_consumer() would pick it after a
            # scan of every consumer, and scan them all again to find nobody.
            solo = acked
            q.served = acked  # (next_consumer() continues after it, see Queue.served)
        while q.ready_count:
            if solo is not None:
                if solo.prefetch and solo.unacked >= solo.prefetch:
                    q.block(solo)
                    break
                c = solo
            else:
                nc = q.next_consumer()
                if nc is None:
                    break
                c = nc
            m = q.pop()
            if m is None:  # pragma: no cover - ready_count says otherwise
                break
            if (dead is not None and m.expires_at is not None and m.expires_at <= t
                    and m is not fresh):
                dead.append(m)
                continue
            ch: Channel = c.channel
            tag = ch._next_tag
            ch._next_tag = tag + 1
            if c.auto_ack:
                msg = Message(m.body, m.exchange, m.routing_key, m.properties, tag,
                              m.redelivered, c.tag, ch, None, c)
                q.n_acked += 1
                if q.durable and m.persistent:
                    vh.persist_remove(q, m)
            else:
                c.unacked += 1
                c.qos.unacked += 1
                q.unacked += 1
                ch._unacked[tag] = msg = Message(m.body, m.exchange, m.routing_key,
                                                 m.properties, tag, m.redelivered, c.tag,
                                                 ch, None, c)
                msg._queue = q
                msg._qmsg = m
            q.n_delivered += 1
            if m.redelivered:
                q.n_redelivered += 1
            sink = c.sink
            sink.items.append(msg)
            if sink.wanted:  # (Sink.push, inlined)
                sink.wanted = False
                sink.cond.notify()
        if dead:
            for m in dead:
                self._dead_letter_locked(vh, q, m, "expired")
        if dead is not None and q.ready_count:
            # The head moved: it may be expired already, or expire before the timer wakes
            # (_new_head_locked); checked inline for one lane, as this runs per delivery.
            e = q.lanes[0].head_expires() if q.simple else t
            if e is not None:
                w = self._timer.waiting_until if self._timer is not None else None
                if e <= t or w is None or e < w:
                    self._new_head_locked(vh, q, t)
        if vh.ops:
            self._flush_ops_locked(vh)

    def _mark_delivered(self, vh: VHost, q: Queue, m: QMsg) -> None:
        if q.exclusive_owner is None:
            from ._store import MarkDelivered
            vh.ops.append(MarkDelivered(vh.name, q.name, m.seq, getattr(m, "returns", 0)))

    def _dispatch_channel_locked(self, ch: Channel) -> None:
        """Credit came back on ``ch``: dispatch its consumers' queues. Under a global
        limit the queues share that credit; RabbitMQ's limiter resumes them starting
        at a random one, so that none is starved. Here, deterministically, each resume
        starts one queue further (in the order of the channel's consumers)."""
        self._unblock_channel_locked(ch)
        queues = list({id(c.queue): c.queue for c in ch._consumers.values()}.values())
        qos = ch._qos
        if qos.global_prefetch and len(queues) > 1:
            k = qos.rotation % len(queues)
            qos.rotation += 1
            queues = queues[k:] + queues[:k]
        for q in queues:
            self._dispatch_queue_locked(ch._vh, q)

    def _get_locked(self, ch: Channel, name: str, auto_ack: bool) -> Message | None:
        vh = ch._vh
        q = vh.get_queue(name, "basic.get", ch._conn)
        now = self._now() if (q.has_ttl or q.expires) else 0.0
        q.last_used = now
        while True:
            m = q.pop()
            if m is None:
                return None
            if m.expires_at is not None and m.expires_at <= now:
                self._dead_letter_locked(vh, q, m, "expired")
                continue
            break
        if q.has_ttl and q.ready_count:
            # As RabbitMQ's fetch: expired messages now at the head go before the count.
            self._new_head_locked(vh, q, now)
        tag = ch._next_tag
        ch._next_tag = tag + 1
        msg = Message(m.body, m.exchange, m.routing_key, m.properties, tag,
                      m.redelivered, None, ch, q.ready_count)
        msg._queue = q
        msg._qmsg = m
        q.n_delivered += 1
        if m.redelivered:
            q.n_redelivered += 1
        if auto_ack:
            q.n_acked += 1
            vh.persist_remove(q, m)
        else:
            ch._unacked[tag] = msg
            q.unacked += 1
        self._flush_ops_locked(vh)
        return msg

    # --- consumers ---------------------------------------------------------------------

    def _add_consumer_locked(self, q: Queue, c: Consumer) -> None:
        q.add_consumer(c)
        self._dispatch_queue_locked(c.channel._vh, q)

    def _remove_consumer_locked(self, c: Consumer, notify: bool, putback: bool = False,
                                dispatch: bool = True) -> None:
        q = c.queue
        ch: Channel = c.channel
        c.live = False
        if c in q.consumers:
            q.remove_consumer(c)
        if putback and not c.auto_ack and c.sink.items:
            mine = c.sink.remove_deliveries(lambda m: m._consumer is c)
            if mine:
                # As RabbitMQ + a client that rejects what it had not dispatched: they
                # go back to their positions flagged redelivered (DESIGN §1).
                back = []
                for msg in mine:
                    entry = ch._unacked.pop(msg._tag, None)
                    if entry is not None:
                        back.append(entry)
                if ch._tx is not None:  # that reject is held by the transaction
                    ch._tx_hold_locked("requeue", back)
                else:
                    self._requeue_locked(ch, back)
        if notify:
            for cb in ch._cancel_callbacks:
                ch._sink.push((cb, c.tag))
        if q.expires is not None and not q.consumers:
            q.last_used = self._now()  # x-expires counts from when it became unused
            self._arm_timer()
        if q.auto_delete and not q.consumers and q.had_consumer and not q.deleted:
            self._delete_queue_locked(ch._vh, q)
        elif dispatch and (q.single_active or q.exclusive_owner is None):
            self._dispatch_queue_locked(ch._vh, q)

    def _delete_queue_locked(self, vh: VHost, q: Queue) -> None:
        vh.remove_queue(q)
        self._after_queue_removed_locked(vh, q)

    def _after_queue_removed_locked(self, vh: VHost, q: Queue) -> None:
        # (RabbitMQ's channel cancels a queue's consumers in the order of their tags)
        for c in sorted(q.consumers, key=lambda c: c.tag.encode()):
            ch: Channel = c.channel
            ch._consumers.pop(c.tag, None)
            c.live = False
            q.remove_consumer(c)
            for cb in ch._cancel_callbacks:
                ch._sink.push((cb, c.tag))
        q.deleted = True
        self._flush_ops_locked(vh)

