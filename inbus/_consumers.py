"""Consumers of a queue: credit, and who gets the next message (a part of Queue).

Theory of operation
-------------------
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

Pure: no locks, threads, time or I/O. :class:`Consumers` is the consumer half of
:class:`inbus._queue.Queue`: it owns the consumer slots (the list, ``solo``, the round
robin's state) and reads a few of the queue's (``plain``, ``has_ttl``, ``single_active``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._queue import Queue

__all__ = ["ChannelQos", "Consumer", "Consumers"]


class ChannelQos:
    """The per-channel part of prefetch: the global limit and what the channel holds.

    ``unacked`` (RabbitMQ's limiter volume: the channel's consumer deliveries not yet
    settled, plus the ``skew`` it started with) is exact only while ``global_prefetch`` is
    set, the only time it is read: the hot paths skip it otherwise, and ``basic_qos``
    recounts it when a global limit is set."""

    __slots__ = ("prefetch_count", "global_prefetch", "unacked", "skew", "suspended",
                 "resume_later", "rotation")

    def __init__(self) -> None:
        self.prefetch_count = 0  # per-consumer limit given to consumers created later
        self.global_prefetch = 0  # shared by the channel's consumers (global_qos=True)
        self.unacked = 0
        # unacked minus the consumer deliveries the channel holds, fixed when the global
        # limit is set (basic_get messages counted, held settles not: Bus._check)
        self.skew = 0
        # The queues where the global limit refused one of the channel's consumers: there
        # every consumer of the channel is refused until the channel resumes, when credit
        # comes back (RabbitMQ's limiter suspends the channel at the queue; see
        # Broker._unblock_channel_locked)
        self.suspended: set[Any] = set()
        # True while a tx_commit settles: the channel resumes once, after its last settle
        # (as RabbitMQ's limiter, whose resume reaches the queues after the commit's casts)
        self.resume_later = False
        # Which of the channel's queues a resume dispatches first (Broker.
        # _dispatch_channel_locked): one further each time, so that none starves
        self.rotation = 0


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


class Consumers:
    """The consumer half of :class:`inbus._queue.Queue` (its state lives on the Queue)."""

    __slots__ = ("consumers", "solo", "round_robin", "rr", "served", "n_blocks",
                 "had_consumer", "exclusive_consumer", "active")
    name: str  # (the Queue's, read here)
    single_active: bool
    plain: bool
    has_ttl: bool

    def _init_consumers(self) -> None:
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

    def _check_consumers(self) -> None:
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
