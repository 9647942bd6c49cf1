"""A queue: ready messages in order, consumers with credit, and the delivery decision.

Theory of operation
-------------------
Every message entering a queue gets the next sequence number ``seq``. Ready messages sit
in *lanes* (one lane, or one per priority level for ``x-max-priority`` queues). A lane is
a deque (the tail, in arrival order) plus a heap of requeued messages keyed by ``seq``.
Delivery always takes the head, so every unacked message has a lower ``seq`` than every
message in the tail: a requeued message therefore goes back to exactly its original
position by entering the heap, which is always drained before the deque. Requeue never
goes through the exchange again.

``next_consumer()`` decides who gets the next ready message among the consumers that
have credit, round-robin (highest consumer priority first; with
``x-single-active-consumer`` only the first consumer). A consumer has credit when it is
auto-ack, or when it holds fewer unacked messages than its prefetch *and* its channel
holds fewer than the channel's global prefetch (0 = no limit). The broker's dispatch loop
(``Broker._dispatch_queue_locked``) pops, counts the credit and makes the delivery; it is
inlined there because it runs once per delivery. ``solo`` names the only consumer of a
plain queue (no TTL or length limit), which the publisher's fast path serves without
asking; the dispatch loop serves the only consumer of any queue so, and, after an ack,
the consumer that acked (ready messages mean nobody else has credit).

The round robin is RabbitMQ's (rabbit_queue_consumers): the consumers whose turn may come
form a circle read from ``rr``; the one served goes to the back; a new one joins at the
back; one that is offered a message without credit leaves the circle (it is *blocked*,
``Consumer.blocked``) and rejoins at the back when credit comes back to it
(``Queue.unblock``): at once when its own prefetch held it (an ack, a nack, a recover),
or, when its channel's global limit held it, once that channel has settled and
dispatched (``Broker._dispatch_channel_locked``). A refusal by the global limit also
suspends the channel at the queue (``ChannelQos.suspended``): its consumers there are
refused until it resumes. So once everyone has credit again, the next messages follow
the order of those acks. With consumer priorities the list itself is that order per
priority (``rr`` stays 0); ``x-single-active-consumer`` has no circle.

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


class ChannelQos:
    """The per-channel part of prefetch: the global limit and what the channel holds.

    ``unacked`` (the channel's consumer deliveries not yet settled) is exact only while
    ``global_prefetch`` is set, the only time it is read: the hot paths skip it otherwise,
    and ``basic_qos`` recounts it when a global limit is set."""

    __slots__ = ("prefetch_count", "global_prefetch", "unacked", "suspended")

    def __init__(self) -> None:
        self.prefetch_count = 0  # per-consumer limit given to consumers created later
        self.global_prefetch = 0  # shared by the channel's consumers (global_qos=True)
        self.unacked = 0
        # The queues where the global limit refused one of the channel's consumers: there
        # every consumer of the channel is refused until the channel resumes, when credit
        # comes back (RabbitMQ's limiter suspends the channel at the queue; see
        # Broker._unblock_channel_locked)
        self.suspended: set[Any] = set()


class Consumer:
    """A subscription of one channel to one queue."""

    __slots__ = ("tag", "queue", "channel", "callback", "auto_ack", "exclusive", "prefetch",
                 "unacked", "priority", "arguments", "qos", "sink", "live", "blocked")

    def __init__(self, tag: str, queue: Queue, channel: Any, callback: Any, auto_ack: bool,
                 exclusive: bool, qos: ChannelQos, priority: int = 0,
                 arguments: dict[str, Any] | None = None, sink: Any = None) -> None:
        self.tag = tag
        self.queue = queue
        self.channel = channel
        self.callback = callback
        # False once cancelled or detached (it left its channel's consumers): the pump
        # then puts its pending deliveries back instead of running the callback
        self.live = True
        self.auto_ack = auto_ack
        self.exclusive = exclusive
        self.qos = qos
        self.prefetch = qos.prefetch_count
        self.unacked = 0
        self.priority = priority
        self.arguments = arguments or {}
        self.sink = sink
        # Not 0: the queue offered it a message when it had no credit, so it left the
        # round robin (RabbitMQ's blocked consumers); it rejoins at the back when credit
        # comes back (Queue.unblock). The number orders the consumers that rejoin together.
        self.blocked = 0

    def has_credit(self) -> bool:
        if self.auto_ack:
            return True
        if self.prefetch and self.unacked >= self.prefetch:
            return False
        q = self.qos
        return not q.global_prefetch or (q.unacked < q.global_prefetch and not (
            q.suspended and self.queue in q.suspended))


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


class Queue:
    """A queue of one vhost. The vhost validates arguments before creating one."""

    # Slots: a queue has more attributes than CPython's shared-key instance dicts hold
    # (30), and without them every attribute access on the publish and ack paths was a
    # dict lookup (2-4% of a manual-ack delivery, A/B).
    __slots__ = ("vhost", "name", "durable", "exclusive_owner", "auto_delete", "arguments",
                 "max_priority", "lanes", "ready_count", "ready_bytes", "unacked",
                 "next_seq", "consumers", "solo", "round_robin", "rr", "served", "had_consumer",
                 "exclusive_consumer", "active", "message_ttl", "expires", "max_length",
                 "max_length_bytes", "overflow", "dlx", "dlrk", "single_active",
                 "delivery_limit", "last_used", "deleted", "has_ttl", "simple", "plain",
                 "n_published", "n_delivered", "n_acked", "n_redelivered", "n_dropped",
                 "n_dead_lettered", "n_direct", "n_direct_auto", "n_blocks")

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
        self.consumers: list[Consumer] = []
        # The only consumer of a plain queue that never held an expiring message: the
        # publisher's fast path hands it messages without looking further (else None).
        self.solo: Consumer | None = None
        self.round_robin = False  # see _update_solo()
        self.rr = 0  # round-robin: the index in consumers whose turn is next
        # ...or, when not None, the consumer whose turn just passed (an ack hand-off knows
        # the consumer, not its index: looking it up in the list on every delivery cost
        # ~6% with 4 consumers; _resolve_rr() does it when rr is next needed)
        self.served: Consumer | None = None
        self.n_blocks = 0  # numbers Consumer.blocked
        self.had_consumer = False
        self.exclusive_consumer = False
        self.active: Consumer | None = None  # x-single-active-consumer's current one
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
        """Remove expired messages at the head of each lane. O(expired)."""
        dead: list[QMsg] = []
        for lane in self.lanes:
            while lane.tail or lane.front:
                e = lane.head_expires()
                if e is None or e > now:
                    break
                m = lane.pop()
                self.ready_count -= 1
                self.ready_bytes -= len(m.body)
                dead.append(m)
        return dead

    def next_expiry(self) -> float | None:
        """The earliest head expiry, for the shell's timer."""
        best: float | None = None
        for lane in self.lanes:
            if lane.tail or lane.front:
                e = lane.head_expires()
                if e is not None and (best is None or e < best):
                    best = e
        return best

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

    # --- consumers ---------------------------------------------------------------------

    def add_consumer(self, c: Consumer) -> None:
        """A new consumer joins at the back of the round robin (of its priority)."""
        self._resolve_rr()
        cs = self.consumers
        if cs and not self.single_active and all(x.priority == c.priority for x in cs):
            # (round robin: the back is just before the consumer whose turn is next)
            i = self.rr
            cs.insert(i, c)
            self.rr = i + 1
        else:
            if self.rr:  # (leaving the round robin: the turns from rr on become the order)
                cs[:] = cs[self.rr:] + cs[:self.rr]
                self.rr = 0
            i = len(cs)  # keep the list sorted by priority, highest first, stable
            while i > 0 and cs[i - 1].priority < c.priority:
                i -= 1
            cs.insert(i, c)
        self.had_consumer = True
        if c.exclusive:
            self.exclusive_consumer = True
        if self.single_active and self.active is None:
            self.active = c  # the first one stays active whatever later priorities
        self._update_solo()

    def _update_solo(self) -> None:
        cs = self.consumers
        self.solo = cs[0] if len(cs) == 1 and self.plain and not self.has_ttl else None
        # Plain round-robin (several consumers, one priority, no single active one):
        # next_consumer() tries the one whose turn it is before anything else.
        self.round_robin = (len(cs) > 1 and not self.single_active
                            and cs[0].priority == cs[-1].priority)

    def _resolve_rr(self) -> None:
        """Turn ``served`` into ``rr`` (before the consumer list changes or rr is read)."""
        s = self.served
        if s is not None:
            self.served = None
            cs = self.consumers
            self.rr = (cs.index(s) + 1) % len(cs)

    def block(self, c: Consumer) -> None:
        """``c`` was offered a message without credit: it leaves the round robin (and, if
        its channel's global limit refused it, that channel is suspended here)."""
        if not c.blocked:
            self.n_blocks += 1
            c.blocked = self.n_blocks
        qos = c.qos
        if qos.global_prefetch and not (c.prefetch and c.unacked >= c.prefetch):
            qos.suspended.add(self)

    def unblock(self, c: Consumer) -> None:
        """``c`` (blocked) has credit again: it rejoins at the back of the round robin, as
        in RabbitMQ (rabbit_queue_consumers: unblocked consumers join the end of the
        active queue; with priorities, the end of their priority's group). O(consumers)."""
        c.blocked = 0
        if self.single_active:
            return
        self._resolve_rr()
        cs = self.consumers
        j = cs.index(c)
        del cs[j]
        if self.round_robin:
            rr = self.rr - 1 if j < self.rr else self.rr
            cs.insert(rr, c)
            self.rr = (rr + 1) % len(cs)
        else:  # (consumer priorities: the list is the order; rr stays 0)
            k = len(cs)
            while k > 0 and cs[k - 1].priority < c.priority:
                k -= 1
            cs.insert(k, c)

    def remove_consumer(self, c: Consumer) -> None:
        c.blocked = 0
        self._resolve_rr()
        cs = self.consumers
        i = cs.index(c)
        del cs[i]
        if i < self.rr:
            self.rr -= 1
        if self.rr >= len(cs):
            self.rr = 0
        if c.exclusive:
            self.exclusive_consumer = False
        if c is self.active:
            # RabbitMQ 3.10: the next active one is the highest priority, then oldest.
            self.active = cs[0] if cs else None
        self._update_solo()

    def next_consumer(self) -> Consumer | None:
        """The consumer that gets the next message, or None if nobody has credit."""
        cs = self.consumers
        n = len(cs)
        if self.round_robin:
            # Plain round-robin from the consumer whose turn it is (most often it has
            # credit: one pass of the loop). c.has_credit(), inlined: this runs for
            # every delivery.
            if self.served is not None:
                self._resolve_rr()
            i = start = self.rr
            while True:
                c = cs[i]
                i = i + 1 if i + 1 < n else 0
                if not c.blocked:  # (a blocked one is out of the round robin)
                    if c.auto_ack or ((not (p := c.prefetch) or c.unacked < p) and (
                            not (g := c.qos).global_prefetch
                            or g.unacked < g.global_prefetch and self not in g.suspended)):
                        self.rr = i
                        return c
                    self.block(c)
                if i == start:
                    return None
        if n == 1:
            c = cs[0]
            if c.auto_ack or c.has_credit():
                return c
            self.block(c)
            return None
        if not n:
            return None
        if self.single_active:
            c = self.active or cs[0]
            return c if c.has_credit() else None
        # Consumer priorities (the only case left, see _update_solo): the highest
        # priority group with credit wins; within a group, round-robin (the chosen one
        # moves to the end of its group).
        i = 0
        while i < n:
            p = cs[i].priority
            j = i
            while j < n and cs[j].priority == p:
                c = cs[j]
                if not c.blocked:
                    if c.has_credit():
                        k = j + 1
                        while k < n and cs[k].priority == p:
                            k += 1
                        if k - 1 != j:
                            del cs[j]
                            cs.insert(k - 1, c)
                        return c
                    self.block(c)
                j += 1
            i = j
        return None

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
        cs = self.consumers
        assert self.solo is (cs[0] if len(cs) == 1 and self.plain and not self.has_ttl
                             else None), f"queue {self.name!r}: solo consumer drifted"
        assert self.round_robin == (len(cs) > 1 and not self.single_active
                                    and cs[0].priority == cs[-1].priority), \
            f"queue {self.name!r}: round_robin flag drifted"
        assert not cs or 0 <= self.rr < len(cs), f"queue {self.name!r}: rr out of range"
        assert self.round_robin or self.rr == 0, f"queue {self.name!r}: rr outside round robin"
        assert self.served is None or self.round_robin and self.served in cs, \
            f"queue {self.name!r}: served consumer is not one of its round-robin consumers"
        for c in cs:  # credit that came back always unblocks (or nobody takes the next)
            assert not (c.blocked and not self.single_active and c.has_credit()), \
                f"queue {self.name!r}: consumer {c.tag} blocked with credit"
        for c in self.consumers:
            if c.prefetch and not c.auto_ack:
                assert c.unacked <= c.prefetch, f"consumer {c.tag} over prefetch"
