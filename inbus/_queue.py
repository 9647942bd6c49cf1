"""A queue: ready messages in order (its consumers: :mod:`inbus._consumers`).

Theory of operation
-------------------
Every message entering a queue gets the next sequence number ``seq``. Ready messages sit
in *lanes* (one lane, or one per priority level for ``x-max-priority`` queues). A lane is
a deque (the tail, in arrival order) plus a heap of requeued messages keyed by ``seq``.
Delivery always takes the head, so every unacked message has a lower ``seq`` than every
message in the tail: a requeued message therefore goes back to exactly its original
position by entering the heap, which is always drained before the deque. Requeue never
goes through the exchange again.

Who gets the next message (consumers, credit, RabbitMQ's round robin) is
:class:`inbus._consumers.Consumers`, a part of :class:`Queue` in its own module.

Expiry (``x-message-ttl``, per-message ``expiration``) is decided at the head only, as in
RabbitMQ; ``expire(now)`` returns what died so the vhost can dead-letter it. The caller
passes ``now``; this module never reads a clock.

A message the publisher appended to the backlog of a plain one-lane queue without
anything special about it (no TTL, not persistent, no CC / BCC) is kept as a bare tuple
:data:`Fresh` ``(seq, body, exchange, routing_key, properties)``: a work queue's backlog
is mostly made of these, and a tuple costs a fifth of a QMsg to make. Only the tails of
lanes hold them; the lane and queue methods hand out QMsgs (:func:`as_qmsg`), except
the broker's ack hand-off, which delivers a fresh one as it is.

Pure: no locks, threads, time or I/O. Complexity: push O(1); pop O(1) (O(log r) with r
requeued messages; O(P) lanes for a priority queue); requeue O(log r).
"""

from __future__ import annotations

import heapq
from collections import deque
from typing import Any, NamedTuple

from ._consumers import ChannelQos, Consumer, Consumers
from ._message import BasicProperties, Content, Message, RoutedContent

__all__ = ["ChannelQos", "Consumer", "DeclareResult", "Fresh", "QMsg", "Queue", "RoutedQMsg",
           "as_qmsg", "stored"]


class DeclareResult(NamedTuple):
    """What ``queue_declare`` returns: the name (server-named if ""), and counts."""

    queue: str
    message_count: int
    consumer_count: int


class QMsg:
    """A message in one queue: what was published (body, exchange, routing key and
    properties, never changed; shared, not copied, with the other queues it reached) and
    this queue's state of it.

    One object per queued message, not a QMsg pointing at a shared Content: a message is
    mostly routed to one queue, where the second object cost ~100 bytes, an allocation
    and one more object for the garbage collector to track (a fanout copies 4 pointers
    per queue instead)."""

    # "returns" (requeues so far) is set only on x-delivery-limit queues.
    __slots__ = ("body", "exchange", "routing_key", "properties", "persistent", "priority",
                 "seq", "expires_at", "redelivered", "returns")
    returns: int

    def __init__(self, seq: int, body: bytes, exchange: str, routing_key: str,
                 properties: BasicProperties, expires_at: float | None,
                 redelivered: bool = False) -> None:
        self.body = body
        self.exchange = exchange
        self.routing_key = routing_key
        self.properties = properties
        # Decided once, as it entered: the properties object is the one consumers get,
        # and one changed in place must not change where the message is stored or kept.
        self.persistent = properties.delivery_mode == 2
        self.priority = properties.priority or 0  # None (not published) counts as 0
        self.seq = seq
        self.expires_at = expires_at
        self.redelivered = redelivered

    def __lt__(self, other: QMsg) -> bool:
        return self.seq < other.seq


class RoutedQMsg(QMsg):
    """A queued message published with ``CC`` / ``BCC`` keys (see RoutedContent)."""

    __slots__ = ("routing_keys",)

    def __init__(self, seq: int, content: RoutedContent, expires_at: float | None,
                 redelivered: bool = False) -> None:
        super().__init__(seq, content.body, content.exchange, content.routing_key,
                         content.properties, expires_at, redelivered)
        self.routing_keys = content.routing_keys


# A fresh message in a lane's tail: (seq, body, exchange, routing_key, properties), as a
# QMsg with expires_at None, redelivered False, not persistent, priority 0.
Fresh = tuple[int, bytes, str, str, BasicProperties]


def as_qmsg(m: QMsg | Fresh) -> QMsg:
    """``m`` as a QMsg (a fresh tuple becomes one)."""
    if type(m) is tuple:
        seq, body, exchange, rk, props = m
        q = QMsg(seq, body, exchange, rk, props, None)
        q.persistent = False  # (as it entered, whatever was done to the properties since)
        return q
    return m  # type: ignore[return-value]


def stored(seq: int, content: Content, expires_at: float | None,
           redelivered: bool = False) -> QMsg:
    """The queued form of ``content`` (which may be shared by several queues)."""
    if isinstance(content, RoutedContent):
        return RoutedQMsg(seq, content, expires_at, redelivered)
    return QMsg(seq, content.body, content.exchange, content.routing_key,
                content.properties, expires_at, redelivered)


# An unacked delivery, kept by its channel until it is settled, is the delivered Message
# itself (read-only, one object per delivery): its ``_queue``, its ``_consumer`` (None for
# basic_get) and its ``_qmsg`` in the queue. A message the publisher handed straight to a
# manual-ack consumer without a deadline, or one an ack handed off from a Fresh tuple,
# has no QMsg (``_qmsg`` None), only its position ``_seq`` (and on a priority queue its
# priority as it entered, ``_prio``), and gets one only if it goes back (most are
# acked). Such a message is never persistent and has no TTL and no CC / BCC keys.
Unacked = Message


def unacked_entry(e: Unacked) -> tuple[Queue, QMsg, Consumer | None]:
    """``e`` as (queue, QMsg, consumer), making the QMsg of a direct delivery."""
    m = e._qmsg
    if m is None:
        m = as_qmsg((e._seq, e._body, e._exchange, e._routing_key, e._properties))
        # (its priority as it entered, whatever a consumer did to the properties since)
        m.priority = getattr(e, "_prio", 0)  # (set on priority queues only)
    return e._queue, m, e._consumer


class _Lane:
    __slots__ = ("tail", "front")

    def __init__(self) -> None:
        self.tail: deque[QMsg | Fresh] = deque()  # arrival order; see Fresh
        self.front: list[QMsg] = []  # heap of requeued messages, by seq

    def __len__(self) -> int:
        return len(self.tail) + len(self.front)

    def head_expires(self) -> float | None:
        """The head's deadline (None: it does not expire). O(1), makes nothing."""
        m = self.front[0] if self.front else self.tail[0]
        return None if type(m) is tuple else m.expires_at  # type: ignore[union-attr]

    def pop(self) -> QMsg:
        return heapq.heappop(self.front) if self.front else as_qmsg(self.tail.popleft())

    def in_order(self) -> list[QMsg]:
        return sorted(self.front) + [as_qmsg(m) for m in self.tail]


class Queue(Consumers):
    """A queue of one vhost. The vhost validates arguments before creating one."""

    # Slots: a queue has more attributes than CPython's shared-key instance dicts hold
    # (30), and without them every attribute access on the publish and ack paths was a
    # dict lookup (2-4% of a manual-ack delivery, A/B).
    __slots__ = ("vhost", "name", "durable", "exclusive_owner", "auto_delete", "arguments",
                 "max_priority", "lanes", "ready_count", "ready_bytes", "unacked",
                 "next_seq", "message_ttl", "expires", "max_length",
                 "max_length_bytes", "overflow", "dlx", "dlrk", "single_active",
                 "delivery_limit", "last_used", "deleted", "has_ttl", "simple", "plain",
                 "n_published", "n_delivered", "n_acked", "n_redelivered", "n_dropped",
                 "n_dead_lettered", "n_direct", "n_direct_auto")

    def __init__(self, vhost: str, name: str, durable: bool = False,
                 exclusive_owner: Any = None, auto_delete: bool = False,
                 arguments: dict[str, Any] | None = None, now: float = 0.0) -> None:
        self.vhost = vhost
        self.name = name
        self.durable = durable
        self.exclusive_owner = exclusive_owner  # the owning connection, or None
        self.auto_delete = auto_delete
        self.arguments: dict[str, Any] = dict(arguments or {})
        args = self.arguments
        self.max_priority: int = int(args.get("x-max-priority") or 0)
        self.lanes = [_Lane() for _ in range(self.max_priority + 1)]
        self.ready_count = 0
        self.ready_bytes = 0
        self.unacked = 0
        self.next_seq = 1
        ttl = args.get("x-message-ttl")
        self.message_ttl: float | None = ttl / 1000.0 if ttl is not None else None
        exp = args.get("x-expires")
        self.expires: float | None = exp / 1000.0 if exp is not None else None
        self.max_length: int | None = args.get("x-max-length")
        self.max_length_bytes: int | None = args.get("x-max-length-bytes")
        self.overflow: str = args.get("x-overflow") or "drop-head"
        dlx = args.get("x-dead-letter-exchange")
        self.dlx: str | None = dlx if isinstance(dlx, str) else None
        self.dlrk: str | None = args.get("x-dead-letter-routing-key")
        self.single_active = bool(args.get("x-single-active-consumer"))
        self._init_consumers()
        # x-delivery-limit (RabbitMQ: quorum queues only): a message returned more than
        # this many times is dead-lettered with reason "delivery_limit".
        self.delivery_limit: int | None = args.get("x-delivery-limit")
        self.last_used = now
        self.deleted = False
        self.has_ttl = self.message_ttl is not None  # sticky: may hold expiring messages
        self.simple = self.max_priority == 0
        # No queue TTL or length limit: when nothing is ready, the publisher may hand a
        # message straight to a consumer with credit instead of through the lanes. A
        # priority queue too: with nothing ready, the message would be the head anyway
        # (and it goes back to its priority's lane if it is requeued).
        self.plain = (self.message_ttl is None and self.max_length is None
                      and self.max_length_bytes is None)
        # counters for statistics() (see totals())
        self.n_published = self.n_delivered = self.n_acked = self.n_redelivered = 0
        self.n_dropped = self.n_dead_lettered = 0
        # Messages the publisher's fast path handed straight to a consumer, each counted
        # once here instead of in n_published + n_delivered (+ n_acked when auto-ack).
        self.n_direct = self.n_direct_auto = 0

    def totals(self) -> tuple[int, int, int]:
        """(published, delivered, acked) since the queue was declared."""
        d, a = self.n_direct, self.n_direct_auto
        return self.n_published + d + a, self.n_delivered + d + a, self.n_acked + a

    # --- messages ----------------------------------------------------------------------

    def expiry_for(self, content: Content, now: float) -> float | None:
        ttl = self.message_ttl
        if content.ttl is not None and (ttl is None or content.ttl < ttl):
            ttl = content.ttl
        return None if ttl is None else now + ttl

    def push(self, content: Content, now: float) -> QMsg:
        """Append a message at the tail (of its priority lane). O(1)."""
        seq = self.next_seq
        self.next_seq = seq + 1
        exp = None
        if self.has_ttl or content.ttl is not None:
            exp = self.expiry_for(content, now)
            if exp is not None:
                self.has_ttl = True
                self.solo = None
        m = stored(seq, content, exp)
        if self.simple:
            self.lanes[0].tail.append(m)
        else:
            p = content.priority
            self.lanes[p if p <= self.max_priority else self.max_priority].tail.append(m)
        self.ready_count += 1
        self.ready_bytes += content.size
        return m

    def restore(self, m: QMsg) -> None:
        """Put back a message recovered from storage (in seq order)."""
        lane = self._lane_of(m)
        lane.tail.append(m)
        self.ready_count += 1
        self.ready_bytes += len(m.body)
        if m.seq >= self.next_seq:
            self.next_seq = m.seq + 1

    def _lane_of(self, m: QMsg) -> _Lane:
        if self.simple:
            return self.lanes[0]
        p = m.priority
        return self.lanes[p if p <= self.max_priority else self.max_priority]

    def requeue(self, m: QMsg) -> None:
        """Return an unacked message to its original position, flagged redelivered."""
        m.redelivered = True
        heapq.heappush(self._lane_of(m).front, m)
        self.ready_count += 1
        self.ready_bytes += len(m.body)

    def _head_lane(self) -> _Lane | None:
        if self.simple:
            lane = self.lanes[0]
            return lane if lane.tail or lane.front else None
        for lane in reversed(self.lanes):
            if lane.tail or lane.front:
                return lane
        return None

    def pop(self) -> QMsg | None:
        """Take the head message (highest priority first). O(1)."""
        if self.simple:  # (one lane: _head_lane() and _Lane.pop() inlined, once per delivery)
            lane = self.lanes[0]
            if lane.front:
                m = heapq.heappop(lane.front)
            elif lane.tail:
                m = as_qmsg(lane.tail.popleft())
            else:
                return None
        else:
            head = self._head_lane()
            if head is None:
                return None
            m = head.pop()
        self.ready_count -= 1
        self.ready_bytes -= len(m.body)
        return m

    def drop_head_for_overflow(self) -> QMsg | None:
        """drop-head: remove the head, the message that would be delivered next. On a
        priority queue that is the oldest of the highest priority, as RabbitMQ does
        (checked on 3.10: priorities 5, 1, 9 into x-max-length 2 keep 5 and 1)."""
        return self.pop()

    def expire(self, now: float) -> list[QMsg]:
        """Remove the expired messages at the head. On a priority queue the head is the
        highest non-empty lane's: as RabbitMQ's priority queue (dropwhile lane by lane),
        a lower lane is looked at only once the lanes above it are empty, so an expired
        low-priority message waits behind a live higher-priority one. O(expired)."""
        dead: list[QMsg] = []
        for lane in reversed(self.lanes):
            while lane.tail or lane.front:
                e = lane.head_expires()
                if e is None or e > now:
                    return dead
                m = lane.pop()
                self.ready_count -= 1
                self.ready_bytes -= len(m.body)
                dead.append(m)
        return dead

    def next_expiry(self) -> float | None:
        """The head's expiry (None: it does not expire), for the shell's timer."""
        lane = self._head_lane()
        return None if lane is None else lane.head_expires()

    def purge(self) -> tuple[int, bool]:
        """Remove every ready message (unacked ones stay). Returns how many, and whether
        any of them was persistent (always False for a transient queue, which stores
        nothing). O(n)."""
        n = self.ready_count
        persistent = False
        for lane in self.lanes:
            persistent = persistent or self.durable and (
                any(m.persistent for m in lane.front) or any(
                    type(m) is not tuple and m.persistent for m in lane.tail))  # type: ignore[union-attr]
            lane.tail.clear()
            lane.front.clear()
        self.ready_count = 0
        self.ready_bytes = 0
        return n, persistent

    def ready_messages(self) -> list[QMsg]:
        """Ready messages in delivery order (for inspection and tests). O(n log n)."""
        out: list[QMsg] = []
        for lane in reversed(self.lanes):
            out.extend(lane.in_order())
        return out

    def over_limit(self) -> bool:
        ml = self.max_length
        if ml is not None and self.ready_count > ml:
            return True
        mb = self.max_length_bytes
        return mb is not None and self.ready_bytes > mb

    def would_overflow(self, size: int) -> bool:
        ml = self.max_length
        if ml is not None and self.ready_count >= ml:
            return True
        mb = self.max_length_bytes
        return mb is not None and self.ready_bytes + size > mb

    def _check(self) -> None:
        """Invariants, for stress and stateful tests."""
        n = sum(len(lane) for lane in self.lanes)
        assert n == self.ready_count, (n, self.ready_count)
        assert sum(len(m.body) for lane in self.lanes for m in lane.in_order()) == \
            self.ready_bytes
        for lane in self.lanes:
            seqs = [m.seq for m in lane.in_order()]
            assert seqs == sorted(seqs), f"queue {self.name!r}: lane out of order"
            assert len(set(seqs)) == len(seqs)
        assert self.unacked >= 0
        self._check_consumers()
