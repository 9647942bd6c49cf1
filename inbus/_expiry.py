"""When messages and queues expire, the timer thread that wakes for it, and where dead
messages go (a mixin of :class:`inbus._broker.Broker`, so of :class:`inbus.Bus`).

Theory of operation
-------------------
Only ready messages expire, and only at the head of their queue, as in RabbitMQ: a
queue's next deadline is its head's (``Queue.next_expiry``). A queue with ``x-expires``
is deleted once it has been unused (no consumers, no ``basic_get``, no redeclare) that
long. On a :class:`inbus.testing.ManualClock` nothing runs by itself: ``advance()``
calls :meth:`Expiry._expire_due_locked`. On the real clock one :class:`inbus._dispatch.Timer`
thread sleeps until the earliest deadline of the whole bus (:meth:`_next_deadline`) and
is poked when a deadline may have moved earlier (:meth:`_arm_timer`): when a head is
taken (:meth:`_new_head_locked`: expired new heads go at once), a message is requeued, or a
queue becomes unused. Every method expects the bus lock held, except ``_fire_timer``.

A message that expires, overflows, is rejected without requeue or passes its delivery
limit is dead-lettered (:meth:`Expiry._dead_letter_locked`: to the queue's dead-letter
exchange with an ``x-death`` entry, or dropped), after the publish that caused it has
reached all its queues, as in RabbitMQ.
"""

from __future__ import annotations

from typing import Any

from ._dispatch import Timer
from ._queue import QMsg, Queue
from ._vhost import VHost

__all__ = ["Expiry"]


class Expiry:
    """Expiry of messages and queues, and dead-lettering (state lives on the Bus)."""

    _clock: Any
    _manual_clock: bool
    _closed: bool
    _timer: Timer | None
    _vhosts: dict[str, VHost]
    _lock: Any
    _dl_pending: list[tuple[VHost, Any]]
    _dl_hold: bool

    def _now(self) -> float:
        return float(self._clock.monotonic())

    # (the broker's and the bus's)
    def _flush_ops_locked(self, vh: VHost) -> None:
        raise NotImplementedError

    def _enqueue_locked(self, vh: VHost, q: Queue, content: Any) -> bool:
        raise NotImplementedError

    def _delete_queue_locked(self, vh: VHost, q: Queue) -> None:
        raise NotImplementedError

    def _queue_touched(self, q: Queue) -> None:
        if q.expires is not None:
            self._arm_timer()

    def _new_head_locked(self, vh: VHost, q: Queue, now: float) -> None:
        """The head of ``q`` (which may hold expiring messages) was taken: delivered,
        fetched or dropped. As RabbitMQ, expired messages now at the head go at once, and
        the timer, which watches heads only, learns the next head's deadline."""
        e = q.next_expiry()
        if e is None:
            return
        if e <= now:
            for m in q.expire(now):
                self._dead_letter_locked(vh, q, m, "expired")
            e = q.next_expiry() if q.ready_count else None
            if e is None:
                return
        timer = self._timer
        if timer is None or timer.waiting_until is None or e < timer.waiting_until:
            self._arm_timer(e)

    def _expire_queue_locked(self, vh: VHost, q: Queue) -> None:
        for m in q.expire(self._now()):
            self._dead_letter_locked(vh, q, m, "expired")

    def _next_deadline(self) -> float | None:
        best: float | None = None
        for vh in self._vhosts.values():
            for q in vh.queues.values():
                e = q.next_expiry() if q.has_ttl and q.ready_count else None
                if q.expires is not None and not q.consumers:
                    d = q.last_used + q.expires
                    e = d if e is None or d < e else e
                if e is not None and (best is None or e < best):
                    best = e
        return best

    def _expire_due_locked(self) -> None:
        now = self._now()
        for vh in list(self._vhosts.values()):
            for q in list(vh.queues.values()):
                if q.has_ttl and q.ready_count:
                    for m in q.expire(now):
                        self._dead_letter_locked(vh, q, m, "expired")
                if (q.expires is not None and not q.consumers
                        and q.last_used + q.expires <= now and not q.deleted):
                    self._delete_queue_locked(vh, q)
            if vh.ops:
                self._flush_ops_locked(vh)

    def _fire_timer(self) -> None:
        with self._lock:
            if not self._closed:
                self._expire_due_locked()

    def _arm_timer(self, deadline: float | None = None) -> None:
        """Make sure the timer thread wakes by ``deadline`` (None: recompute)."""
        if self._manual_clock or self._closed:
            return
        if self._timer is None:
            self._timer = Timer(self._lock, self._next_deadline, self._fire_timer,
                                self._clock.monotonic)
        else:
            self._timer.poke(deadline)

    # --- dead-lettering -------------------------------------------------------------------

    def _trim_to_limit_locked(self, vh: VHost, q: Queue, now: float) -> None:
        """Drop from the head of ``q`` (dead-letter, reason ``maxlen``) while it is over
        its x-max-length / x-max-length-bytes; a new head may expire at once."""
        dropped = False
        while q.over_limit():
            d = q.drop_head_for_overflow()
            if d is None:
                break
            self._dead_letter_locked(vh, q, d, "maxlen")
            dropped = True
        if dropped and q.has_ttl and q.ready_count:
            self._new_head_locked(vh, q, now)

    def _dead_letter_locked(self, vh: VHost, q: Queue, m: QMsg, reason: str,
                            persisted: bool = True) -> None:
        """Dead-letter ``m`` leaving ``q`` (or drop it when ``q`` has no DLX).

        As in RabbitMQ, where the channel hands a message to all its queues before any of
        them can react, a message reaches every queue it was routed to before what those
        queues dead-letter on its arrival (overflow, TTL 0) is routed: while a publish is
        under way (``_dl_hold``) dead letters wait in ``_dl_pending``, and a dead letter
        likewise reaches all its queues before their own dead letters move on."""
        if persisted and q.durable and m.persistent:
            vh.persist_remove(q, m)
        res = vh.dead_letter(q, m, reason, self._clock.time())
        if res is None:
            q.n_dropped += 1
            return
        q.n_dead_lettered += 1
        self._dl_pending.append((vh, res))
        if not self._dl_hold:
            self._hold_dead_letters()
            self._release_dead_letters()

    def _hold_dead_letters(self) -> bool:
        self._dl_hold = True
        return True

    def _release_dead_letters(self) -> None:
        """Route the dead letters held back, breadth first, then stop holding them."""
        pending = self._dl_pending
        try:
            i = 0
            while i < len(pending):
                vh, (x, rks, content) = pending[i]
                i += 1
                for target in vh.route_keys(x, rks, content.properties.headers):
                    if not vh.is_cycle(target, content):
                        self._enqueue_locked(vh, target, content)
        finally:
            pending.clear()
            self._dl_hold = False
