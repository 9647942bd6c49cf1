"""Settling and requeueing delivered messages under the bus lock: ack, reject (dead-letter
or drop) and requeue by entry or by delivery tag, and the credit a settle gives back (a
mixin of :class:`inbus._broker.Broker`, so of :class:`inbus.Bus`; state lives on the Bus).

Theory of operation
-------------------
A channel's unacked record maps delivery tags to entries (the delivered
:class:`inbus.Message` itself, or an ``Unacked``). Settling one takes it off the record
(:meth:`Settling._take_unacked_locked` applies RabbitMQ 3.10's tag rule: an unknown tag,
or a ``multiple`` one that is not itself outstanding, is 406 and takes nothing), then:

- ack: the message is gone (and removed from storage if persistent in a durable queue);
- reject without requeue: dead-lettered or dropped (:class:`inbus._expiry.Expiry`);
- requeue: back at its original position, flagged redelivered, unless
  ``x-delivery-limit`` sends it to be dead-lettered instead.

Each returns its consumer's prefetch credit (:meth:`Settling._release_credit`), so the
queue, and any channel a global limit had suspended, dispatch again. Nothing here runs a
callback or blocks; every method expects the lock held.
"""

from __future__ import annotations

from operator import attrgetter
from typing import TYPE_CHECKING

from ._errors import PreconditionFailed
from ._expiry import Expiry
from ._queue import Consumer, QMsg, Queue, Unacked, unacked_entry

if TYPE_CHECKING:
    from ._channel import Channel
    from ._vhost import VHost

__all__ = ["Settling"]


class Settling(Expiry):
    """The settle half of the broker (see the module docstring)."""

    # (the broker's)
    def _dispatch_queue_locked(self, vh: VHost, q: Queue, now: float | None = None,
                               acked: Consumer | None = None,
                               fresh: QMsg | None = None) -> None:
        raise NotImplementedError

    def _dispatch_channel_locked(self, ch: Channel) -> None:
        raise NotImplementedError

    def _mark_delivered(self, vh: VHost, q: Queue, m: QMsg) -> None:
        raise NotImplementedError

    def _release_credit(self, ch: Channel, q: Queue, c: Consumer | None) -> None:
        q.unacked -= 1
        if c is not None:
            c.unacked -= 1
            qos = ch._qos
            qos.unacked -= 1
            if qos.suspended and not ch._consumers:
                qos.suspended.clear()  # (resumes: nobody to resume later, see below)
            if c.blocked:
                if not qos.global_prefetch:
                    if c.has_credit():
                        c.queue.unblock(c)
                elif c.prefetch and c.unacked == c.prefetch - 1:
                    # Its own limit held it (RabbitMQ checks that one first): it rejoins
                    # now, whatever the channel's, and so do the channel's other consumers
                    # there that their own limits do not hold, in the order they left (as
                    # RabbitMQ's unblock of the channel at the queue). Otherwise they
                    # rejoin later, in _dispatch_channel_locked: after the queue has
                    # settled and dispatched what was requeued, as the channel resumes.
                    q = c.queue
                    _rejoin([x for x in ch._consumers.values() if x.queue is q and x.blocked
                             and not (x.prefetch and x.unacked >= x.prefetch)])

    def _unblock_channel_locked(self, ch: Channel) -> None:
        """Credit came back on ``ch`` (a global limit): its blocked consumers that may take
        a message again rejoin their queues' round robins, in the order they left."""
        qos = ch._qos
        if qos.suspended and (not qos.global_prefetch or qos.unacked < qos.global_prefetch):
            qos.suspended.clear()  # (the channel resumes)
        _rejoin([c for c in ch._consumers.values() if c.blocked and c.has_credit()])

    def _settle_locked(self, ch: Channel, entry: Unacked, how: str) -> None:
        q, m, c = unacked_entry(entry)
        self._release_credit(ch, q, c)
        vh = ch._vh
        if c is not None and ch._qos.global_prefetch and ch._consumers:
            # Channel-wide credit came back: any of the channel's consumers may use it,
            # whatever queue (even a deleted one) this message came from.
            if not q.deleted:
                self._settle_in_queue_locked(vh, q, m, how)
            if not ch._qos.resume_later:
                self._dispatch_channel_locked(ch)
            elif not q.deleted and q.ready_count and q.consumers:
                # (tx_commit resumes the channel once all is settled; a consumer its own
                # limit held may take the next message now, as RabbitMQ's queue lets it)
                self._dispatch_queue_locked(vh, q)
            return
        if q.deleted:
            return
        self._settle_in_queue_locked(vh, q, m, how)
        if q.ready_count and q.consumers:
            self._dispatch_queue_locked(vh, q)
        if vh.ops:
            self._flush_ops_locked(vh)

    def _settle_in_queue_locked(self, vh: VHost, q: Queue, m: QMsg, how: str) -> None:
        if how == "ack":
            q.n_acked += 1
            if q.durable and m.persistent:
                vh.persist_remove(q, m)
        else:
            self._dead_letter_locked(vh, q, m, "rejected")
        if vh.ops:
            self._flush_ops_locked(vh)

    @staticmethod
    def _take_unacked_locked(ch: Channel, tag: int, multiple: bool, method: str
                             ) -> list[Unacked]:
        """Take the entries ``tag`` (and ``multiple``) names off ``ch``'s unacked record, in
        tag order; an unknown tag is 406 and takes nothing. O(unacked) with ``multiple``."""
        un = ch._unacked
        if multiple:
            if tag == 0:
                tags = list(un)
            else:
                if tag not in un:  # RabbitMQ 3.10: the tag itself must be outstanding
                    raise PreconditionFailed(f"unknown delivery tag {tag}", method=method)
                tags = [t for t in un if t <= tag]
        else:
            if tag not in un:
                raise PreconditionFailed(f"unknown delivery tag {tag}", method=method)
            tags = [tag]
        return [un.pop(t) for t in tags]

    def _settle_tags_locked(self, ch: Channel, tag: int, multiple: bool, how: str,
                            method: str) -> None:
        """ack / reject / requeue by delivery tag (``multiple``: every outstanding tag up to
        ``tag``; tag 0 with multiple: all). An unknown tag is 406, as in RabbitMQ 3.10."""
        entries = self._take_unacked_locked(ch, tag, multiple, method)
        if how == "requeue":
            self._requeue_locked(ch, entries)
        else:
            for e in entries:
                self._settle_locked(ch, e, how)

    def _requeue_locked(self, ch: Channel, entries: list[Unacked]) -> None:
        vh = ch._vh
        touched: dict[int, Queue] = {}
        now: float | None = None
        for q, m, c in map(unacked_entry, entries):
            self._release_credit(ch, q, c)
            if q.deleted:
                continue
            touched[id(q)] = q  # credit came back: dispatch q even if m goes elsewhere
            expired = False
            if m.expires_at is not None:
                if now is None:
                    now = self._now()
                # Expired meanwhile, it goes back all the same: as RabbitMQ, expired
                # messages go at the head only (below), not wherever they are requeued.
                expired = m.expires_at <= now
            if q.delivery_limit is not None and not expired:
                m.returns = n = getattr(m, "returns", 0) + 1
                if n > q.delivery_limit:  # a poison message: stop redelivering it
                    self._dead_letter_locked(vh, q, m, "delivery_limit")
                    continue
            q.requeue(m)
            if q.durable and m.persistent:
                # Stored as delivered once it is back in the queue (a clean restart then
                # reports it redelivered; after a crash every message is).
                self._mark_delivered(vh, q, m)
        for q in touched.values():
            if q.overflow == "drop-head" and (q.max_length is not None
                                              or q.max_length_bytes is not None):
                # RabbitMQ drops from the head after a requeue too (maybe_drop_head).
                while q.over_limit():
                    d = q.drop_head_for_overflow()
                    if d is None:
                        break
                    self._dead_letter_locked(vh, q, d, "maxlen")
            if q.has_ttl and q.ready_count:
                self._new_head_locked(vh, q, self._now() if now is None else now)
            self._dispatch_queue_locked(vh, q)
            if q.has_ttl:
                self._arm_timer()
        if ch._qos.global_prefetch and ch._consumers and not ch._qos.resume_later:
            # Credit freed on the channel wakes its consumers of other queues too.
            self._dispatch_channel_locked(ch)
        if vh.ops:
            self._flush_ops_locked(vh)


def _rejoin(blocked: list[Consumer]) -> None:
    """Blocked consumers rejoin their queues' round robins, in the order they left."""
    blocked.sort(key=attrgetter("blocked"))
    for c in blocked:
        c.queue.unblock(c)
