"""Redis-style publish/subscribe: the threaded shell around :mod:`inbus._pubsub`.

Theory of operation
-------------------
A :class:`PubSubHub` (one per Bus) owns one lock and one :class:`~inbus._pubsub.Registry`.
``publish`` encodes its arguments, asks the registry for the deliveries and appends each
message dict to its subscriber's deque, all under the hub lock, so every subscriber sees
concurrent publishes in the same order, as Redis's single thread gives them. No user
code ever runs under the hub lock: handlers run in the thread that reads
(:meth:`PubSub.get_message`, :meth:`PubSub.listen`, or the thread of
:meth:`PubSub.run_in_thread`), exactly where redis-py runs them.

A :class:`PubSub` is one subscriber (one Redis client in subscribed mode). Its pending
messages wait in a deque; a reader pops without any lock and only sleeps on the
subscriber's own condition when the deque is empty (the publisher notifies only when a
reader waits). The native API follows the *server*: a name repeated in one call is
confirmed twice, and ``get_message`` returns the unsubscribe-all confirmation even
though nothing is subscribed any more. (``inbus.compat.redis`` adds redis-py's client
bookkeeping on top.)

Slow subscribers: like Redis's ``client-output-buffer-limit pubsub 32mb``, each
subscriber's pending buffer is bounded: at most ``max_pending`` messages (default
100_000) and ``max_pending_bytes`` bytes of payload (default 32 MiB). A publish that
would pass either bound disconnects the subscriber, as Redis does: it is closed, its
subscriptions are dropped at once, its pending messages are discarded, and its next read
raises :class:`inbus.SubscriberClosed`. The publish still counts that delivery (Redis
counts it too). Memory is therefore never unbounded.

Sharded pub/sub (Redis 7's SSUBSCRIBE / SPUBLISH, ``smessage``) lives in
:mod:`inbus._shard`, mixed into both classes; the reader thread in
:mod:`inbus._pubsub_worker`.

Values are bytes, as redis-py returns them: ``str`` is encoded as UTF-8, ``int`` and
``float`` become their decimal text (``repr``), ``bool`` and other types are refused with
``TypeError``. ``decode=True`` returns ``str`` values instead.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from inbus._errors import PubSubError, SubscriberClosed
from inbus._pubsub import Message, Registry, _names, encode
from inbus._pubsub_worker import PubSubWorkerThread
from inbus._shard import ShardedHub, ShardedSubscriber

__all__ = ["PubSubHub", "PubSub", "PubSubWorkerThread", "encode"]

Handler = Callable[[Message], Any]
DEFAULT_MAX_PENDING = 100_000
DEFAULT_MAX_PENDING_BYTES = 32 * 1024 * 1024
_JOIN_TIMEOUT = 5.0


class _Worker(Protocol):
    """A reader thread the hub must stop and join on close()."""

    def stop(self) -> None: ...
    def is_alive(self) -> bool: ...
    def join(self, timeout: float | None = None) -> None: ...


def _decode(msg: Message) -> Message:
    out = dict(msg)
    for key in ("pattern", "channel", "data"):
        v = out[key]
        if isinstance(v, bytes):
            out[key] = v.decode("utf-8")
    return out


class PubSubHub(ShardedHub):
    """Every subscriber of one Bus, with its lock. The Bus forwards to it.

    >>> hub = PubSubHub()
    >>> p = hub.pubsub(ignore_subscribe_messages=True)
    >>> p.subscribe("news")
    >>> hub.publish("news", "hi")
    1
    >>> p.get_message() is None  # the subscribe confirmation, ignored
    True
    >>> p.get_message()["data"]
    b'hi'
    >>> hub.close()
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._registry: Registry[PubSub] = Registry()
        self._by_channel = self._registry.by_channel
        self._by_pattern = self._registry.by_pattern
        self._open: weakref.WeakSet[PubSub] = weakref.WeakSet()
        self._threads: set[_Worker] = set()
        self._closed = False

    def publish(self, channel: object, message: object) -> int:
        """Send ``message`` to ``channel``; return the number of deliveries. O(receivers).

        A subscriber on the channel and on a matching pattern counts twice.

        >>> PubSubHub().publish("nobody-listens", b"x")
        0
        """
        ch = channel if type(channel) is bytes else encode(channel, "channel")
        data = message if type(message) is bytes else encode(message, "message")
        size = len(data)
        over: list[PubSub] = []
        with self._lock:
            if self._closed:
                raise PubSubError("publish on a closed bus")
            n = 0
            subs = self._by_channel.get(ch)
            if subs:  # the hot path, inline: one dict per delivery, appended to a deque
                for sub in subs:
                    n += 1
                    q = sub._queue
                    if len(q) < sub._max_pending and \
                            sub._bytes_in - sub._bytes_out + size <= sub._max_bytes:
                        q.append({"type": "message", "pattern": None, "channel": ch,
                                  "data": data})
                        sub._bytes_in += size
                        if sub._waiting:
                            sub._wake()
                    else:
                        over.append(sub)
            if self._by_pattern:
                for pat, psubs in self._registry.pattern_matches(ch):
                    for sub in psubs:
                        n += 1
                        if not sub._push({"type": "pmessage", "pattern": pat, "channel": ch,
                                          "data": data}, size):
                            over.append(sub)
            if over:
                self._overflowed_locked(over)
            return n

    def _overflowed_locked(self, over: list[PubSub]) -> None:
        for sub in over:
            self._disconnect_locked(sub, "its pending buffer overflowed "
                                    f"(max_pending={sub._max_pending}, "
                                    f"max_pending_bytes={sub._max_bytes})")

    def pubsub(self, ignore_subscribe_messages: bool = False, *,
               max_pending: int = DEFAULT_MAX_PENDING,
               max_pending_bytes: int = DEFAULT_MAX_PENDING_BYTES,
               decode: bool = False) -> PubSub:
        """A new subscriber (a Redis client in subscribed mode).

        >>> hub = PubSubHub(); p = hub.pubsub(); p.subscribed
        False
        """
        if max_pending < 1 or max_pending_bytes < 1:
            raise ValueError("max_pending and max_pending_bytes must be at least 1")
        p = PubSub(self, ignore_subscribe_messages, max_pending, max_pending_bytes, decode)
        with self._lock:
            if self._closed:
                raise PubSubError("pubsub() on a closed bus")
            self._open.add(p)
        return p

    def pubsub_channels(self, pattern: object = None) -> list[bytes]:
        """PUBSUB CHANNELS: channels with at least one subscriber; patterns not counted.

        >>> PubSubHub().pubsub_channels("*")
        []
        """
        pat = None if pattern is None else encode(pattern, "pattern")
        with self._lock:
            return self._registry.channels(pat)

    def pubsub_numsub(self, *channels: object) -> list[tuple[bytes, int]]:
        """PUBSUB NUMSUB: ``(channel, subscribers)`` pairs; pattern subscribers not counted.

        >>> PubSubHub().pubsub_numsub("a")
        [(b'a', 0)]
        """
        names = [encode(c, "channel") for c in _names(channels, "channel")]
        with self._lock:
            return self._registry.numsub(names)

    def pubsub_numpat(self) -> int:
        """PUBSUB NUMPAT: distinct patterns subscribed over all subscribers.

        >>> PubSubHub().pubsub_numpat()
        0
        """
        with self._lock:
            return self._registry.numpat()

    def close(self) -> None:
        """Close every subscriber and join every worker thread started from this hub.

        >>> hub = PubSubHub(); hub.close(); hub.close()
        """
        with self._lock:
            self._closed = True
            subs = list(self._open)
            threads = list(self._threads)
        for t in threads:
            t.stop()
        for sub in subs:
            sub._shut("the bus was closed", by_user=True)
        me: object = threading.current_thread()
        for t in threads:
            if t is not me and t.is_alive():
                t.join(_JOIN_TIMEOUT)

    # -- used by PubSub (each takes the hub lock) ------------------------------------------

    def _change(self, sub: PubSub, op: str, names: list[bytes]) -> None:
        with self._lock:
            if sub._closed is not None:
                raise SubscriberClosed(sub._closed)
            confirmations = getattr(self._registry, op)(sub, names)
            q = sub._queue
            for msg in confirmations:
                if len(q) >= sub._max_pending:
                    self._disconnect_locked(sub, "its pending buffer overflowed")
                    return
                q.append(msg)
            if sub._waiting:
                sub._wake()

    def _disconnect_locked(self, sub: PubSub, why: str) -> None:
        self._registry.drop(sub)
        sub._shut(f"subscriber disconnected by the bus: {why}", by_user=False)

    def _close_sub(self, sub: PubSub) -> None:
        with self._lock:
            self._registry.drop(sub)
            self._open.discard(sub)

    def _held(self, sub: PubSub) -> tuple[list[bytes], list[bytes], list[bytes]]:
        with self._lock:
            return self._registry.subscriptions(sub)

    def _count(self, sub: PubSub) -> int:
        with self._lock:
            return self._registry.count(sub)

    def _add_thread(self, t: _Worker) -> None:
        with self._lock:
            if self._closed:
                raise PubSubError("run_in_thread() on a closed bus")
            self._threads.add(t)

    def _remove_thread(self, t: _Worker) -> None:
        with self._lock:
            self._threads.discard(t)


class PubSub(ShardedSubscriber):
    """One subscriber, in redis-py's shape. Create it with ``bus.pubsub()``.

    >>> hub = PubSubHub()
    >>> with hub.pubsub() as p:
    ...     p.psubscribe("n*")
    ...     p.get_message()["type"], hub.publish("news", 1), p.get_message()["data"]
    ('psubscribe', 1, b'1')
    """

    def __init__(self, hub: PubSubHub, ignore_subscribe_messages: bool, max_pending: int,
                 max_pending_bytes: int, decode: bool) -> None:
        self._hub = hub
        self.ignore_subscribe_messages = ignore_subscribe_messages
        self.decode = decode
        self._queue: deque[Message] = deque()
        self._cond = threading.Condition(threading.Lock())
        self._waiting = 0
        self._interrupted = False
        self._bytes_in = 0
        self._bytes_out = 0
        self._max_pending = max_pending
        self._max_bytes = max_pending_bytes
        self._closed: str | None = None
        self._closed_by_user = False
        self._ch_handlers: dict[bytes, Handler | None] = {}
        self._pat_handlers: dict[bytes, Handler | None] = {}
        self._shard_handlers: dict[bytes, Handler | None] = {}
        self._pending_unsub: set[bytes] = set()
        self._pending_punsub: set[bytes] = set()
        self._pending_sunsub: set[bytes] = set()
        self._fast = not decode  # no handler and no decoding: get_message's fast path

    def _push(self, msg: Message, size: int) -> bool:
        """Under the hub lock: queue one delivery, or False when over a bound."""
        q = self._queue
        if len(q) >= self._max_pending or \
                self._bytes_in - self._bytes_out + size > self._max_bytes:
            return False
        q.append(msg)
        self._bytes_in += size
        if self._waiting:
            self._wake()
        return True

    def _refresh_fast(self) -> None:
        self._fast = not self.decode and not any(self._ch_handlers.values()) and \
            not any(self._pat_handlers.values()) and not any(self._shard_handlers.values())

    # -- subscriptions ---------------------------------------------------------------------

    def subscribe(self, *channels: object, **handlers: Handler) -> None:
        """SUBSCRIBE; ``name=handler`` keywords route that channel's messages to a handler.

        >>> p = PubSubHub().pubsub(); p.subscribe("a", "a", b=print)
        >>> [p.get_message()["data"] for _ in range(3)]
        [1, 1, 2]
        """
        self._sub("subscribe", channels, handlers, self._ch_handlers, self._pending_unsub)

    def psubscribe(self, *patterns: object, **handlers: Handler) -> None:
        """PSUBSCRIBE to Redis glob patterns (compiled once, here).

        >>> p = PubSubHub().pubsub(); p.psubscribe("news.*"); p.get_message()["channel"]
        b'news.*'
        """
        self._sub("psubscribe", patterns, handlers, self._pat_handlers, self._pending_punsub)

    def _sub(self, op: str, args: tuple[object, ...], handlers: dict[str, Handler],
             table: dict[bytes, Handler | None], pending: set[bytes]) -> None:
        pairs: list[tuple[bytes, Handler | None]] = [
            (encode(n, "channel"), None) for n in _names(args, "channel")]
        pairs += [(encode(k, "channel"), h) for k, h in handlers.items()]
        if not pairs:
            raise TypeError(f"{op}() needs at least one name")
        self._hub._change(self, op, [n for n, _ in pairs])
        for name, handler in pairs:
            table[name] = handler
            pending.discard(name)
        self._refresh_fast()

    def unsubscribe(self, *channels: object) -> None:
        """UNSUBSCRIBE from the channels; none given means all of them.

        >>> p = PubSubHub().pubsub(); p.unsubscribe(); p.get_message()
        {'type': 'unsubscribe', 'pattern': None, 'channel': None, 'data': 0}
        """
        names = [encode(n, "channel") for n in _names(channels, "channel")]
        self._pending_unsub.update(names or self._ch_handlers)
        self._hub._change(self, "unsubscribe", names)

    def punsubscribe(self, *patterns: object) -> None:
        """PUNSUBSCRIBE from the patterns, taken literally (none given means all).

        >>> p = PubSubHub().pubsub(); p.psubscribe("a*"); p.punsubscribe("a?")
        >>> [m["channel"] for m in (p.get_message(), p.get_message())]
        [b'a*', b'a?']
        """
        names = [encode(n, "pattern") for n in _names(patterns, "pattern")]
        self._pending_punsub.update(names or self._pat_handlers)
        self._hub._change(self, "punsubscribe", names)

    @property
    def subscribed(self) -> bool:
        """True while the bus holds a channel, pattern or shard channel for this subscriber."""
        return self._closed is None and self._hub._count(self) > 0

    @property
    def channels(self) -> dict[bytes, Handler | None]:
        """The channels held now, each with its handler (or None)."""
        held = self._hub._held(self)[0]
        return {c: self._ch_handlers.get(c) for c in held}

    @property
    def patterns(self) -> dict[bytes, Handler | None]:
        """The patterns held now, each with its handler (or None)."""
        held = self._hub._held(self)[1]
        return {c: self._pat_handlers.get(c) for c in held}

    # -- reading ---------------------------------------------------------------------------

    def get_message(self, ignore_subscribe_messages: bool = False,
                    timeout: float | None = 0.0) -> Message | None:
        """The next message dict, or None after ``timeout`` seconds (None: wait forever).

        Messages for a channel or pattern with a handler go to the handler (called here,
        in this thread) and None is returned, as in redis-py.

        >>> p = PubSubHub().pubsub(); p.get_message(timeout=0.01) is None
        True
        """
        try:
            msg = self._queue.popleft()
        except IndexError:
            got = self._wait(timeout)
            if got is None:
                return None
            msg = got
        kind = msg["type"]
        if self._fast and (kind == "message" or kind == "pmessage" or kind == "smessage"):
            self._bytes_out += len(msg["data"])
            return msg
        return self._handle(msg, kind, ignore_subscribe_messages)

    def _handle(self, msg: Message, kind: str, ignore_subscribe_messages: bool
                ) -> Message | None:
        if kind == "message" or kind == "pmessage" or kind == "smessage":
            data: bytes = msg["data"]
            self._bytes_out += len(data)
            if kind == "message":
                handler = self._ch_handlers.get(msg["channel"]) if self._ch_handlers else None
            elif kind == "pmessage":
                handler = self._pat_handlers.get(msg["pattern"])
            else:
                handler = self._shard_handlers.get(msg["channel"])
            if handler is not None:
                handler(_decode(msg) if self.decode else msg)
                return None
            return _decode(msg) if self.decode else msg
        if kind == "unsubscribe" or kind == "punsubscribe" or kind == "sunsubscribe":
            pending, table = {"unsubscribe": (self._pending_unsub, self._ch_handlers),
                              "punsubscribe": (self._pending_punsub, self._pat_handlers),
                              "sunsubscribe": (self._pending_sunsub, self._shard_handlers),
                              }[kind]
            name = msg["channel"]
            if name in pending:
                pending.discard(name)
                table.pop(name, None)
                self._refresh_fast()
        if ignore_subscribe_messages or self.ignore_subscribe_messages:
            return None
        return _decode(msg) if self.decode else msg

    def _wait(self, timeout: float | None) -> Message | None:
        if self._closed is not None and not self._queue:
            raise SubscriberClosed(self._closed)
        if timeout is not None and timeout <= 0:
            return None
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            self._waiting += 1
            try:
                while True:
                    if self._queue:
                        return self._queue.popleft()
                    if self._closed is not None:
                        raise SubscriberClosed(self._closed)
                    if self._interrupted:
                        self._interrupted = False
                        return None
                    if deadline is None:
                        self._cond.wait()
                    else:
                        left = deadline - time.monotonic()
                        if left <= 0:
                            return None
                        self._cond.wait(left)
            finally:
                self._waiting -= 1

    def _wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def _interrupt(self) -> None:
        with self._cond:
            self._interrupted = True
            self._cond.notify_all()

    def listen(self) -> Iterator[Message]:
        """Yield messages while subscribed (and until the pending ones are read).

        Ends when nothing is subscribed and nothing is pending, or when closed by you;
        raises :class:`~inbus.SubscriberClosed` if the bus disconnected the subscriber.

        >>> hub = PubSubHub(); p = hub.pubsub(); p.subscribe("a"); _ = hub.publish("a", "x")
        >>> p.unsubscribe(); [m["type"] for m in p.listen()]
        ['subscribe', 'message', 'unsubscribe']
        """
        while self._queue or (self._closed is None and self._hub._count(self) > 0) or (
                self._closed is not None and not self._closed_by_user):
            try:
                msg = self.get_message(timeout=None)
            except SubscriberClosed:
                if self._closed_by_user:
                    return
                raise
            if msg is not None:
                yield msg

    def run_in_thread(self, sleep_time: float = 0.0, daemon: bool = False,
                      exception_handler: Callable[[BaseException, PubSub,
                                                   PubSubWorkerThread], Any] | None = None,
                      ) -> PubSubWorkerThread:
        """Read (and dispatch to handlers) in a new thread; ``.stop()`` ends it.

        Every subscription needs a handler (``PubSubError`` otherwise), as in redis-py.
        ``sleep_time`` is the longest the thread waits per read; ``stop()`` wakes it at
        once either way, and ``close()`` of the bus joins it.

        >>> import threading; got = threading.Event(); hub = PubSubHub(); p = hub.pubsub()
        >>> p.subscribe(a=lambda m: got.set()); t = p.run_in_thread(sleep_time=0.01)
        >>> _ = hub.publish("a", "x"); got.wait(5), t.stop(), t.join(5)
        (True, None, None)
        """
        chans, pats, shards = self._hub._held(self)
        for name in chans:
            if self._ch_handlers.get(name) is None:
                raise PubSubError(f"Channel: {name!r} has no handler registered")
        for name in pats:
            if self._pat_handlers.get(name) is None:
                raise PubSubError(f"Pattern: {name!r} has no handler registered")
        for name in shards:
            if self._shard_handlers.get(name) is None:
                raise PubSubError(f"Shard Channel: {name!r} has no handler registered")
        t = PubSubWorkerThread(self, sleep_time, daemon=daemon,
                               exception_handler=exception_handler)
        self._hub._add_thread(t)
        t.start()
        return t

    # -- closing ---------------------------------------------------------------------------

    def close(self) -> None:
        """Drop every subscription at once and discard pending messages. Idempotent.

        >>> hub = PubSubHub(); p = hub.pubsub(); p.subscribe("a"); p.close()
        >>> hub.pubsub_numsub("a")
        [(b'a', 0)]
        """
        self._hub._close_sub(self)
        self._shut("subscriber is closed", by_user=True)

    def _shut(self, why: str, *, by_user: bool) -> None:
        with self._cond:
            if self._closed is None:
                self._closed = why
                self._closed_by_user = by_user
                self._queue.clear()
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        """True once closed by you, by the bus's close(), or by a buffer overflow."""
        return self._closed is not None

    def __enter__(self) -> PubSub:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
