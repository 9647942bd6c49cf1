"""The Bus: virtual hosts, connections, the broker's delivery rules, and pub/sub.

Theory of operation
-------------------
One ``Bus`` owns one lock (an RLock) guarding every vhost, queue, channel and consumer.
Channel methods take it, ask the pure core (:mod:`inbus._vhost`, :mod:`inbus._queue`)
for decisions and apply them with the ``*_locked`` methods of :class:`inbus._broker.Broker`
(the Bus's mixin): enqueue, deliver, settle, requeue, dead-letter, expire. Callbacks run
outside the lock, from sinks (:mod:`inbus._dispatch`).

Durable changes collected by the vhosts are handed to a group committer (SQLite) after
each operation; with the default in-memory store they are discarded.

Two ``Bus`` objects share nothing: there is no module-level or class-level state.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from ._broker import Broker
from ._channel import Channel
from ._connection import Connection
from ._dispatch import Timer, Worker, new_lock
from ._errors import (
    ConnectionClosed,
    NotAllowed,
    NotFound,
)
from ._message import (
    ReturnedMessage,
    _NoProperties,
)
from ._names import check_short
from ._stats import BusStatistics, ExchangeStatistics, QueueStatistics, VHostStatistics
from ._vhost import VHost

__all__ = ["Bus", "RealClock"]

log = logging.getLogger("inbus")


class RealClock:
    """The default clock: ``monotonic()`` for deadlines, ``time()`` for timestamps."""

    monotonic = staticmethod(time.monotonic)
    time = staticmethod(time.time)


class Bus(Broker):
    """An in-process message bus with RabbitMQ's model and Redis-style pub/sub.

    >>> from inbus import Bus
    >>> with Bus() as bus:
    ...     ch = bus.channel()
    ...     q = ch.queue_declare("tasks").queue
    ...     got = []
    ...     tag = ch.basic_consume(q, lambda m: (got.append(m.body), m.ack()))
    ...     ch.basic_publish("", "tasks", b"job 1")
    ...     bus.run_until_idle()
    ...     got
    1
    [b'job 1']

    ``Bus(background=True)`` runs every channel's callbacks on a worker thread of its own;
    a callback that raises there is logged (logger ``inbus``), kept in ``bus.errors`` and
    passed to ``on_error(exception, message)`` (for a return or cancel callback, what that
    callback got), on the worker thread; the message stays unacked.
    ``Bus(clock=ManualClock())`` makes TTLs and expiry run on virtual time.
    """

    def __init__(self, path: str | None = None, *, clock: Any = None,
                 background: bool = False, store: Any = None,
                 on_error: Callable[[BaseException, Any], Any] | None = None,
                 **store_options: Any) -> None:
        self._lock = new_lock()
        self._clock: Any = clock if clock is not None else RealClock()
        self._manual_clock = clock is not None and hasattr(clock, "advance")
        self._background = background
        self._vhosts: dict[str, VHost] = {"/": VHost("/")}
        self._connections: list[Connection] = []
        self._n_connections = 0  # connections ever opened (numbers them)
        self._closed = False
        self._closing = False  # close() began: its connections' closes are a shutdown
        self._on_error = on_error
        self._errors: list[BaseException] = []
        self._timer: Timer | None = None
        self._workers: list[Worker] = []  # every background channel's worker still alive
        self._hub: Any = None
        self._n_returned = self._n_unroutable = 0
        # (statistics().published is counted per exchange, x.published_in: one counter
        # less per publish; this keeps what deleted vhosts had counted)
        self._n_published_gone = 0
        self._n_callback_errors = 0
        self._no_props = _NoProperties()  # shared by publishes without properties
        self._committer: Any = None
        self._n_submits = 0
        self._ops_held = False  # a tx_commit gathers its storage ops into one batch
        # Dead-lettered messages waiting to be routed while a publish reaches its queues
        # (see Broker._dead_letter_locked); _dl_hold: a publish is under way.
        self._dl_pending: list[tuple[VHost, Any]] = []
        self._dl_hold = False
        self._taps: dict[tuple[str, str], list[ReturnedMessage]] = {}  # testing.capture
        self.path = path
        if self._manual_clock:
            clock._subscribe(self._on_clock_advance)
            self._unsubscribe_clock = clock._unsubscribe
        if path is not None or store is not None:
            from ._persist import open_store
            open_store(self, path, store, store_options)

    # --- clock -------------------------------------------------------------------------

    def _on_clock_advance(self) -> None:
        with self._lock:
            if not self._closed:
                self._expire_due_locked()

    # --- vhosts and connections ----------------------------------------------------------

    def vhost_declare(self, name: str) -> None:
        """Create a virtual host (no-op if it exists). Vhosts share nothing: names,
        entities and consumers are per vhost.

        >>> from inbus import Bus
        >>> bus = Bus(); bus.vhost_declare("tenant-a")
        >>> bus.vhosts
        ['/', 'tenant-a']
        >>> _ = bus.channel("tenant-a").queue_declare("q")
        """
        name = check_short(name, "vhost")
        since = self._n_submits
        with self._lock:
            self._check_open()
            if name not in self._vhosts:
                self._vhosts[name] = VHost(name)
                from ._store import PutVhost
                self._submit([PutVhost(name)])
        self._await_commit(since)  # committed before it returns, as declarations are

    def vhost_delete(self, name: str) -> None:
        """Delete a virtual host: its connections are closed (530) and its entities
        dropped (404 if it does not exist).

        >>> from inbus import Bus
        >>> bus = Bus(); bus.vhost_declare("tmp"); ch = bus.channel("tmp")
        >>> bus.vhost_delete("tmp"); bus.vhosts, ch.is_open
        (['/'], False)
        """
        with self._lock:
            self._check_open()
            vh = self._vhosts.get(name)
            if vh is None:
                raise NotFound(f"no vhost '{name}'", method="vhost.delete")
            conns = [c for c in self._connections if c._vh is vh]
        since = self._n_submits
        for c in conns:
            c._close(NotAllowed(f"vhost '{name}' was deleted", scope="connection",
                                method="vhost.delete"))
        with self._lock:
            gone = self._vhosts.pop(name, None)
            if gone is not None:
                self._n_published_gone += gone.published()
            from ._store import DeleteVhost
            self._submit([DeleteVhost(name)])
        self._await_commit(since)

    @property
    def vhosts(self) -> list[str]:
        """The virtual hosts' names, ``"/"`` first."""
        with self._lock:
            return list(self._vhosts)

    def connection(self, vhost: str = "/", *, background: bool | None = None) -> Connection:
        """Open a connection to ``vhost`` (a missing vhost is a 530 connection error).
        ``background=True``: its channels run their callbacks on worker threads (default:
        the bus's ``background``). A connection owns its exclusive queues and, when
        closed, requeues its channels' unacked messages.

        >>> from inbus import Bus
        >>> bus = Bus(); conn = bus.connection()
        >>> ch = conn.channel(); ch.channel_number, ch.connection is conn
        (1, True)
        >>> conn.close(); ch.is_open
        False
        """
        with self._lock:
            self._check_open()
            vh = self._vhosts.get(vhost)
            if vh is None:
                raise NotAllowed(f"vhost {vhost} not found", scope="connection",
                                 method="connection.open")
            conn = Connection(self, vh, self._background if background is None
                              else background)
            self._connections.append(conn)
            return conn

    def channel(self, vhost: str = "/", *, background: bool | None = None) -> Channel:
        """Shortcut: a new connection to ``vhost`` and a channel on it.

        >>> from inbus import Bus
        >>> Bus().channel()
        <inbus.Channel 1 vhost='/' open>
        """
        return self.connection(vhost, background=background).channel()

    def _forget(self, conn: Connection) -> None:
        try:
            self._connections.remove(conn)
        except ValueError:
            pass

    def _check_open(self) -> None:
        if self._closed:
            raise ConnectionClosed(detail="the bus is closed; create a new Bus() to go on")

    # --- pumping -----------------------------------------------------------------------

    def run_until_idle(self, max_deliveries: int | None = None) -> int:
        """Run every pending callback of every (non-background) connection in this thread,
        including what those callbacks publish, until nothing is left. Returns the number
        of callbacks run. Deterministic: connections in creation order, each in FIFO
        order. An exception from a callback propagates (the message stays unacked).
        ``max_deliveries``: stop after that many callbacks (the rest stay pending).

        >>> from inbus import Bus
        >>> bus = Bus(); ch = bus.channel(); _ = ch.queue_declare("ping")
        >>> _ = ch.queue_declare("pong")
        >>> def ping(m):                     # what a callback publishes runs too
        ...     ch.basic_publish("", "pong", m.body + b"!"); m.ack()
        >>> _ = ch.basic_consume("ping", ping)
        >>> _ = ch.basic_consume("pong", lambda m: print(m.body), auto_ack=True)
        >>> ch.basic_publish("", "ping", b"hi"); bus.run_until_idle()
        b'hi!'
        2
        """
        ran = 0
        lock = self._lock
        while True:
            lock.acquire()  # (not "with": acquire/release is ~50 ns cheaper per call)
            try:
                batches = [(c._sink, c._sink.take()) for c in self._connections
                           if c._sink.items]
            finally:
                lock.release()
            if not batches:
                return ran
            for i, (sink, items) in enumerate(batches):
                if max_deliveries is not None and ran + len(items) > max_deliveries:
                    keep = max_deliveries - ran
                    with self._lock:
                        sink.items.extendleft(reversed(items[keep:]))
                    items = items[:keep]
                try:
                    ran += sink.run(items, self._lock)
                except BaseException:
                    # (sink.run put back the rest of its own batch) the later
                    # connections' batches go back too, ahead of anything newer
                    with self._lock:
                        for later, rest in batches[i + 1:]:
                            later.items.extendleft(reversed(rest))
                    raise
            if max_deliveries is not None and ran >= max_deliveries:
                return ran

    def _callback_error(self, exc: BaseException, arg: Any) -> None:
        with self._lock:
            self._n_callback_errors += 1
            self._errors.append(exc)
            del self._errors[:-100]
        c = getattr(arg, "_consumer", None)
        if c is None:
            what = "a callback"
            fate = ""
        elif c.auto_ack:
            what = f"consumer {c.tag!r} of queue {c.queue.name!r}"
            fate = " (auto-ack: the message was settled on delivery)"
        else:
            what = f"consumer {c.tag!r} of queue {c.queue.name!r}"
            fate = ("; the message stays unacked and returns (redelivered) when its "
                    "channel closes or on basic_recover, or ack / nack it from on_error")
        log.error("inbus: %s raised on a background thread%s", what, fate, exc_info=exc)
        if self._on_error is not None:
            self._on_error(exc, arg)

    # --- persistence hook ----------------------------------------------------------------

    def _flush_ops_locked(self, vh: VHost) -> None:
        if vh.ops and not self._ops_held:
            ops = vh.ops
            vh.ops = []
            self._submit(ops)

    def _submit(self, ops: list[Any], on_done: Any = None) -> None:
        if self._committer is not None and ops:
            self._n_submits += 1
            self._committer.submit(ops, on_done)
        elif on_done is not None:
            on_done(None)

    def _await_commit(self, since: int) -> None:
        """Wait until what was submitted since ``since`` (a reading of ``_n_submits``
        taken before an operation) is committed, if anything was: a durable declaration,
        binding or deletion returns once it is on disk, as RabbitMQ sends declare-ok after
        its commit. Called with no lock held. Not on the committer's own thread (an
        asynchronous confirm callback), which cannot wait for itself; raises
        PersistenceError if the write failed."""
        committer = self._committer
        if committer is not None and self._n_submits != since \
                and not committer.on_writer_thread():
            committer.flush()

    def _count(self, what: str) -> None:
        return None

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every durable change made so far (publishes, acks, declarations)
        is committed to the file. Returns False if ``timeout`` passed first; True at once
        for an in-memory bus. Raises PersistenceError if a write failed.

        >>> import os, tempfile
        >>> from inbus import Bus, BasicProperties
        >>> path = os.path.join(tempfile.mkdtemp(), "app.db")
        >>> with Bus(path) as bus:
        ...     ch = bus.channel(); _ = ch.queue_declare("jobs", durable=True)
        ...     ch.basic_publish("", "jobs", b"keep", BasicProperties(delivery_mode=2))
        ...     bus.flush()
        True
        >>> with Bus(path) as bus:
        ...     bus.channel().basic_get("jobs", auto_ack=True).body
        b'keep'
        """
        committer = self._committer
        if committer is None:
            return True
        return bool(committer.flush(timeout))

    # --- pub/sub (Redis-style) -----------------------------------------------------------

    def _pubsub_hub(self) -> Any:
        with self._lock:
            self._check_open()
            if self._hub is None:
                from .pubsub import PubSubHub
                self._hub = PubSubHub()
            return self._hub

    def publish(self, channel: Any, message: Any) -> int:
        """Redis PUBLISH: send ``message`` to every current subscriber of ``channel``
        (and of every matching pattern); returns the number of deliveries.

        >>> from inbus import Bus
        >>> bus = Bus(); p = bus.pubsub(); p.subscribe("news")
        >>> bus.publish("news", "hello")
        1
        """
        hub = self._hub  # set once, never unset: no bus lock on the hot path
        if hub is None or self._closed:
            hub = self._pubsub_hub()
        n: int = hub.publish(channel, message)
        return n

    def pubsub(self, ignore_subscribe_messages: bool = False, **options: Any) -> Any:
        """A subscriber in redis-py's shape (see :class:`inbus.PubSub`).

        >>> from inbus import Bus
        >>> bus = Bus(); p = bus.pubsub()
        >>> p.psubscribe("news.*"); bus.publish("news.sport", b"goal")
        1
        >>> p.get_message()["type"]           # the psubscribe confirmation first
        'psubscribe'
        >>> m = p.get_message(timeout=1); m["pattern"], m["channel"], m["data"]
        (b'news.*', b'news.sport', b'goal')
        """
        return self._pubsub_hub().pubsub(ignore_subscribe_messages, **options)

    def pubsub_channels(self, pattern: Any = None) -> list[bytes]:
        """Redis PUBSUB CHANNELS: channels with at least one subscriber (``pattern``: only
        the names it matches, as a Redis glob). O(channels).

        >>> from inbus import Bus
        >>> bus = Bus(); p = bus.pubsub(); p.subscribe("a", "b")
        >>> sorted(bus.pubsub_channels()), bus.pubsub_numsub("a", "z"), bus.pubsub_numpat()
        ([b'a', b'b'], [(b'a', 1), (b'z', 0)], 0)
        """
        return list(self._pubsub_hub().pubsub_channels(pattern))

    def pubsub_numsub(self, *channels: Any) -> list[tuple[bytes, int]]:
        """Redis PUBSUB NUMSUB: (channel, subscriber count) pairs."""
        return list(self._pubsub_hub().pubsub_numsub(*channels))

    def pubsub_numpat(self) -> int:
        """Redis PUBSUB NUMPAT: the number of distinct patterns subscribed."""
        return int(self._pubsub_hub().pubsub_numpat())

    def spublish(self, channel: Any, message: Any) -> int:
        """Redis 7 SPUBLISH: send ``message`` to the shard subscribers of ``channel``
        (``PubSub.ssubscribe``); returns how many got it. Shard channels are a namespace of
        their own: ``publish`` does not reach them, nor ``spublish`` channel or pattern
        subscribers.

        >>> from inbus import Bus
        >>> bus = Bus(); p = bus.pubsub(); p.ssubscribe("orders")
        >>> bus.spublish("orders", "o-1"), bus.publish("orders", "o-2")
        (1, 0)
        >>> p.get_message()["type"], p.get_message()["type"]
        ('ssubscribe', 'smessage')
        """
        return int(self._pubsub_hub().spublish(channel, message))

    def pubsub_shardchannels(self, pattern: Any = None) -> list[bytes]:
        """Redis PUBSUB SHARDCHANNELS: shard channels with at least one shard subscriber
        (``pattern``: only the names it matches, as a Redis glob)."""
        return list(self._pubsub_hub().pubsub_shardchannels(pattern))

    def pubsub_shardnumsub(self, *channels: Any) -> list[tuple[bytes, int]]:
        """Redis PUBSUB SHARDNUMSUB: (shard channel, shard subscriber count) pairs."""
        return list(self._pubsub_hub().pubsub_shardnumsub(*channels))

    # --- observability and lifecycle ---------------------------------------------------------

    def statistics(self) -> BusStatistics:
        """An immutable snapshot of every vhost's queues and exchanges, with counters
        (like ``rabbitmqctl list_queues`` / ``list_exchanges``). O(queues + exchanges).

        >>> from inbus import Bus
        >>> bus = Bus(); ch = bus.channel(); _ = ch.queue_declare("q")
        >>> ch.basic_publish("", "q", b"a"); ch.basic_publish("", "q", b"b")
        >>> _ = ch.basic_get("q")
        >>> s = bus.statistics().queue("q")
        >>> s.messages_ready, s.messages_unacknowledged, s.published, s.delivered
        (1, 1, 2, 1)
        """
        with self._lock:
            vhosts = {}
            for vh in self._vhosts.values():
                if any(q.has_ttl and q.ready_count for q in vh.queues.values()):
                    self._expire_due_locked()
                qs = {q.name: QueueStatistics(
                    q.name, q.durable, q.exclusive_owner is not None, q.auto_delete,
                    dict(q.arguments), q.ready_count, q.unacked, q.ready_bytes,
                    len(q.consumers), *q.totals(), q.n_redelivered, q.n_dropped,
                    q.n_dead_lettered)
                    for q in vh.queues.values()}
                xs = {x.name: ExchangeStatistics(
                    x.name, x.type, x.durable, x.auto_delete, x.internal, len(x.bindings),
                    x.published_in, x.routed_out) for x in vh.exchanges.values()}
                vhosts[vh.name] = VHostStatistics(vh.name, qs, xs)
            hub = self._hub
            return BusStatistics(
                vhosts, len(self._connections),
                sum(len(c._channels) for c in self._connections),
                self._n_published_gone + sum(vh.published() for vh in self._vhosts.values()),
                self._n_returned, self._n_unroutable, self._n_callback_errors,
                int(getattr(hub, "published", 0)) if hub is not None else 0)

    def _check(self) -> None:
        """Check every invariant (for stress and stateful tests)."""
        with self._lock:
            for vh in self._vhosts.values():
                vh._check()
                unacked: dict[int, int] = {}
                for conn in self._connections:
                    if conn._vh is not vh:
                        continue
                    for ch in conn._channels.values():
                        held = 0
                        entries = list(ch._unacked.values())
                        if ch._tx is not None:  # (settled by the commit: still unacked)
                            entries += ch._tx.held_entries()
                        for e in entries:
                            q, c = e._queue, e._consumer
                            unacked[id(q)] = unacked.get(id(q), 0) + 1
                            if c is not None:
                                held += 1
                        assert not ch._qos.global_prefetch or \
                            held + ch._qos.skew == ch._qos.unacked, \
                            "channel qos count drifted"
                        tags = list(ch._unacked)
                        assert tags == sorted(tags) and all(t < ch._next_tag for t in tags)
                        assert all(c.live for c in ch._consumers.values())
                        # (no held <= global_prefetch: lowering basic_qos later does not
                        # take back what was delivered, in RabbitMQ as here)
                for q in vh.queues.values():
                    assert q.unacked == unacked.get(id(q), 0), \
                        f"queue {q.name!r}: unacked {q.unacked} != {unacked.get(id(q), 0)}"
                    # Every change of credit dispatches, so ready messages mean nobody
                    # who may take them has credit (_enqueue_locked relies on it).
                    cs = q.consumers
                    if q.ready_count and cs:
                        who = [q.active or cs[0]] if q.single_active else cs
                        assert not any(c.has_credit() for c in who), \
                            f"queue {q.name!r}: ready messages and a consumer with credit"

    @property
    def errors(self) -> list[BaseException]:
        """Exceptions raised by callbacks on background threads (the last 100); each
        also went to the ``on_error`` hook and the ``inbus`` logger."""
        with self._lock:
            return list(self._errors)

    def close(self) -> None:
        """Close every connection (requeueing unacked messages), stop and join every
        thread the bus started, and close the store. Idempotent; a ``with Bus() as bus:``
        block calls it.

        >>> import inbus
        >>> bus = inbus.Bus(background=True); ch = bus.channel()
        >>> bus.close(); bus.is_closed, ch.is_open
        (True, False)
        >>> try:
        ...     bus.channel()
        ... except inbus.ConnectionClosed as e:
        ...     print(e)
        the bus is closed; create a new Bus() to go on
        """
        with self._lock:
            if self._closed:
                return
            self._closing = True
            conns = list(self._connections)
        for c in conns:
            c._close(None)
        with self._lock:
            self._closed = True
            # Every worker, also those of channels closed earlier without a join (from
            # their own callback, or by an error): none is left running after close().
            workers, self._workers = self._workers, []
        for w in workers:
            w.stop()
        with self._lock:
            timer, self._timer = self._timer, None
            hub = self._hub
        if timer is not None:
            timer.stop()
        if hub is not None:
            hub.close()
        if self._committer is not None:
            # (from a confirm callback, on the committer's own thread, the store is
            # closed by that thread once it has committed what is still queued)
            self._committer.close(close_store=True)
        if self._manual_clock:
            self._unsubscribe_clock(self._on_clock_advance)

    @property
    def is_closed(self) -> bool:
        """True once :meth:`close` ran."""
        return self._closed

    def __enter__(self) -> Bus:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        where = self.path or "memory"
        return f"<inbus.Bus {where} vhosts={list(self._vhosts)}>"
