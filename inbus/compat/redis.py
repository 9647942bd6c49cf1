"""A drop-in look-alike of redis-py's publish/subscribe surface, in process.

Theory of operation
-------------------
``from inbus.compat import redis`` and keep the code: ``redis.Redis(host=..., port=...)``,
``redis.StrictRedis``, ``redis.from_url("redis://host:port/0")``. Clients naming the same
host and port share one in-process :class:`~inbus.pubsub.PubSubHub` ("the server"), kept
by :data:`servers`, a :class:`Servers` registry object. It is the one piece of
module-level state in inbus, on purpose (a real Redis is shared too); tests call
:func:`reset` to close every hub and start afresh. ``localhost``, ``127.0.0.1`` and
``::1`` count as the same host. The database number is ignored, as Redis's pub/sub
ignores it.

:class:`PubSub` wraps a native subscriber (created lazily, like redis-py's connection)
and adds redis-py's *client-side* bookkeeping, where it differs from the server:
``subscribe("a", "a")`` sends ``a`` once (redis-py keeps the names in a dict);
``get_message`` returns None while the client believes nothing is subscribed, which hides
the unsubscribe-all confirmation; handlers are looked up in the client's dicts and
dropped when the unsubscribe confirmation is read; ``close()``/``reset()`` leaves the
object reusable. Messages are redis-py's dicts; ``decode_responses=True`` gives ``str``.

Only pub/sub and ``ping`` are provided; other commands raise ``AttributeError``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import unquote, urlparse

from inbus import _errors
from inbus._pubsub import Message
from inbus.pubsub import PubSub as NativePubSub
from inbus.pubsub import PubSubHub, encode

from . import redis_exceptions as exceptions
from .redis_exceptions import (
    AuthenticationError,
    BusyLoadingError,
    ConnectionError,  # noqa: A004 - redis-py's name
    DataError,
    InvalidResponse,
    PubSubError,
    ReadOnlyError,
    RedisError,
    ResponseError,
    TimeoutError,  # noqa: A004 - redis-py's name
    WatchError,
)

__all__ = ["Redis", "StrictRedis", "PubSub", "from_url", "reset", "servers", "Servers",
           "exceptions", "AuthenticationError", "BusyLoadingError", "ConnectionError",
           "DataError", "InvalidResponse", "PubSubError", "ReadOnlyError", "RedisError",
           "ResponseError", "TimeoutError", "WatchError"]

Handler = Callable[[Message], Any]
_LOCAL = {"localhost", "127.0.0.1", "::1", "[::1]"}


def _enc(value: object) -> bytes:
    try:
        return encode(value)
    except TypeError:
        raise DataError(f"Invalid input of type: '{type(value).__name__}'. Convert to a "
                        "bytes, string, int or float first.") from None


class Servers:
    """The in-process "Redis servers": one hub per (host, port). Thread-safe.

    >>> s = Servers(); s.hub("localhost", 6379) is s.hub("127.0.0.1", 6379)
    True
    >>> s.reset()
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._hubs: dict[tuple[str, int], PubSubHub] = {}

    def hub(self, host: str = "localhost", port: int = 6379) -> PubSubHub:
        """The hub standing for the Redis server at ``host:port`` (created on first use)."""
        key = ("localhost" if host.lower() in _LOCAL else host.lower(), int(port))
        with self._lock:
            hub = self._hubs.get(key)
            if hub is None:
                hub = self._hubs[key] = PubSubHub()
            return hub

    def reset(self) -> None:
        """Close every hub (their subscribers and worker threads) and forget them."""
        with self._lock:
            hubs = list(self._hubs.values())
            self._hubs.clear()
        for hub in hubs:
            hub.close()


servers = Servers()


def reset() -> None:
    """Forget every in-process server: close all hubs, subscribers and worker threads."""
    servers.reset()


class Redis:
    """The pub/sub part of ``redis.Redis``; other connection options are accepted, unused.

    >>> r = Redis(port=7001); p = r.pubsub(); p.subscribe("news")
    >>> r.publish("news", "hi"), r.pubsub_numsub("news")
    (1, [(b'news', 1)])
    >>> reset()
    """

    def __init__(self, host: str = "localhost", port: int = 6379, db: int = 0,
                 password: str | None = None, *, decode_responses: bool = False,
                 encoding: str = "utf-8", **options: Any) -> None:
        if encoding.lower().replace("-", "") != "utf8":
            raise ValueError("inbus.compat.redis supports encoding='utf-8' only")
        self.host, self.port, self.db = host, int(port), int(db)
        self.decode_responses = decode_responses
        self.options = options
        self._hub = servers.hub(host, self.port)

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> Redis:
        """``redis://[[user]:password@]host[:port][/db]`` (``rediss://`` too).

        >>> Redis.from_url("redis://localhost:6380/2").port
        6380
        """
        u = urlparse(url)
        if u.scheme not in ("redis", "rediss"):
            raise ValueError(f"url scheme must be redis:// or rediss://, not {u.scheme!r}")
        path = u.path.lstrip("/")
        opts: dict[str, Any] = {"host": u.hostname or "localhost", "port": u.port or 6379,
                                "db": int(path) if path else 0}
        if u.password:
            opts["password"] = unquote(u.password)
        opts.update(kwargs)
        return cls(**opts)

    def publish(self, channel: Any, message: Any, **kwargs: Any) -> int:
        """PUBLISH: the number of deliveries (channel + pattern subscriptions)."""
        return self._hub.publish(_enc(channel), _enc(message))

    def pubsub(self, **kwargs: Any) -> PubSub:
        """A new :class:`PubSub` (``ignore_subscribe_messages=`` as in redis-py)."""
        return PubSub(self._hub, ignore_subscribe_messages=bool(
            kwargs.get("ignore_subscribe_messages", False)), decode=self.decode_responses)

    def _out(self, value: bytes) -> Any:
        return value.decode("utf-8") if self.decode_responses else value

    def pubsub_channels(self, pattern: Any = "*", **kwargs: Any) -> list[Any]:
        """PUBSUB CHANNELS pattern (redis-py's default pattern is ``*``)."""
        return [self._out(c) for c in self._hub.pubsub_channels(_enc(pattern))]

    def pubsub_numsub(self, *args: Any, **kwargs: Any) -> list[tuple[Any, int]]:
        """PUBSUB NUMSUB: ``(channel, count)`` tuples."""
        return [(self._out(c), n) for c, n in self._hub.pubsub_numsub(*map(_enc, args))]

    def pubsub_numpat(self, **kwargs: Any) -> int:
        """PUBSUB NUMPAT."""
        return self._hub.pubsub_numpat()

    def ping(self, **kwargs: Any) -> bool:
        """Always True: the in-process server is up."""
        return True

    def close(self) -> None:
        """Nothing to release (subscribers are closed through their PubSub)."""

    def __enter__(self) -> Redis:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<inbus.compat.redis.Redis(host={self.host!r}, port={self.port}, db={self.db})>"


StrictRedis = Redis


def from_url(url: str, **kwargs: Any) -> Redis:
    """Module-level ``redis.from_url``.

    >>> from_url("redis://127.0.0.1:6379").host
    '127.0.0.1'
    """
    return Redis.from_url(url, **kwargs)


def _list_or_args(args: tuple[Any, ...]) -> list[Any]:
    if args and isinstance(args[0], (list, tuple)):
        return [*args[0], *args[1:]]
    return list(args)


class PubSub:
    """redis-py's ``PubSub``, with its client-side bookkeeping, over a native subscriber."""

    PUBLISH_MESSAGE_TYPES = ("message", "pmessage")
    UNSUBSCRIBE_MESSAGE_TYPES = ("unsubscribe", "punsubscribe")

    def __init__(self, hub: PubSubHub, ignore_subscribe_messages: bool = False,
                 decode: bool = False) -> None:
        self._hub = hub
        self.ignore_subscribe_messages = ignore_subscribe_messages
        self._decode = decode
        self._native: NativePubSub | None = None
        self.subscribed_event = threading.Event()
        self.reset()

    def reset(self) -> None:
        """Drop the subscriptions at once; the object stays usable (redis-py's reset)."""
        if self._native is not None:
            self._native.close()
            self._native = None
        self.channels: dict[Any, Handler | None] = {}
        self.patterns: dict[Any, Handler | None] = {}
        self.pending_unsubscribe_channels: set[Any] = set()
        self.pending_unsubscribe_patterns: set[Any] = set()
        self.subscribed_event.clear()

    close = reset

    def __enter__(self) -> PubSub:
        return self

    def __exit__(self, *exc: object) -> None:
        self.reset()

    @property
    def connection(self) -> NativePubSub | None:
        """None until the first command and after close()/reset(), as redis-py's
        (here the native subscriber standing for the connection)."""
        return self._native

    @property
    def subscribed(self) -> bool:
        """What redis-py believes: set by (p)subscribe, cleared when all are confirmed gone."""
        return self.subscribed_event.is_set()

    def _conn(self) -> NativePubSub:
        if self._native is None:
            self._native = self._hub.pubsub(decode=self._decode)
        return self._native

    def _key(self, name: Any) -> Any:
        b = _enc(name)
        return b.decode("utf-8") if self._decode else b

    def _parse(self, args: tuple[Any, ...], kwargs: dict[str, Handler]) -> dict[Any, Any]:
        subs: dict[Any, Handler | None] = dict.fromkeys(_list_or_args(args))
        subs.update(kwargs)
        return subs

    def subscribe(self, *args: Any, **kwargs: Handler) -> None:
        """SUBSCRIBE; a name repeated in one call is sent once, as redis-py does."""
        self._sub(self._parse(args, kwargs), pattern=False)

    def psubscribe(self, *args: Any, **kwargs: Handler) -> None:
        """PSUBSCRIBE; a name repeated in one call is sent once, as redis-py does."""
        self._sub(self._parse(args, kwargs), pattern=True)

    def _sub(self, new: dict[Any, Handler | None], *, pattern: bool) -> None:
        conn = self._conn()
        names = [_enc(k) for k in new]
        if not names:
            # redis-py sends the command anyway; Redis's error reply is read (and raised)
            # by the next read, and redis-py believes it is subscribed meanwhile.
            self._reply({"type": "error", "pattern": None, "channel": None,
                         "data": "wrong number of arguments for "
                                 f"'{'psubscribe' if pattern else 'subscribe'}' command"})
            self.subscribed_event.set()
            return
        (conn.psubscribe if pattern else conn.subscribe)(*names)
        normal = {self._key(k): h for k, h in new.items()}
        (self.patterns if pattern else self.channels).update(normal)
        self.subscribed_event.set()
        pending = self.pending_unsubscribe_patterns if pattern else \
            self.pending_unsubscribe_channels
        pending.difference_update(normal)

    def unsubscribe(self, *args: Any) -> None:
        """UNSUBSCRIBE; no names means all channels."""
        self._unsub(args, pattern=False)

    def punsubscribe(self, *args: Any) -> None:
        """PUNSUBSCRIBE; no names means all patterns."""
        self._unsub(args, pattern=True)

    def _unsub(self, args: tuple[Any, ...], *, pattern: bool) -> None:
        names = _list_or_args(args)
        held = self.patterns if pattern else self.channels
        keys = [self._key(n) for n in names] if names else list(held)
        (self.pending_unsubscribe_patterns if pattern
         else self.pending_unsubscribe_channels).update(keys)
        conn = self._conn()
        (conn.punsubscribe if pattern else conn.unsubscribe)(*map(_enc, names))

    def parse_response(self, block: bool = True, timeout: float = 0) -> list[Any] | None:
        """The next raw reply as a list, e.g. ``[b"message", b"chan", b"data"]``."""
        if self._native is None:
            raise RuntimeError("pubsub connection not set: "
                               "did you forget to call subscribe() or psubscribe()?")
        msg = self._read(None if block else timeout)
        if msg is None:
            return None
        kind: Any = msg["type"].encode() if not self._decode else msg["type"]
        if msg["type"] == "pmessage":
            return [kind, msg["pattern"], msg["channel"], msg["data"]]
        if msg["type"] == "pong":
            return [kind, msg["data"]]
        return [kind, msg["channel"], msg["data"]]

    def get_message(self, ignore_subscribe_messages: bool = False,
                    timeout: float | None = 0.0) -> Message | None:
        """The next message, None if none in ``timeout`` or while nothing is subscribed."""
        if not self.subscribed:
            start = time.monotonic()
            if not self.subscribed_event.wait(timeout):
                return None
            if timeout is not None:
                timeout = max(0.0, timeout - (time.monotonic() - start))
        msg = self._read(timeout)
        if msg is None:
            return None
        return self.handle_message(msg, ignore_subscribe_messages)

    def _read(self, timeout: float | None) -> Message | None:
        """The next message from the subscriber; an error reply is raised."""
        assert self._native is not None
        try:
            msg = self._native.get_message(timeout=timeout)
        except _errors.SubscriberClosed:
            if self._native._closed_by_user:
                raise
            self._reconnect()
            msg = self._native.get_message(timeout=timeout)
        if msg is not None and msg["type"] == "error":
            raise ResponseError(msg["data"])
        return msg

    def _reconnect(self) -> None:
        """The "server" dropped this subscriber (its buffer overflowed): redis-py
        reconnects and subscribes again (its on_connect); what was pending is lost."""
        self._native = None
        self.pending_unsubscribe_channels.clear()
        self.pending_unsubscribe_patterns.clear()
        conn = self._conn()
        if self.channels:
            conn.subscribe(*map(_enc, self.channels))
        if self.patterns:
            conn.psubscribe(*map(_enc, self.patterns))

    def _reply(self, msg: Message) -> None:
        """Queue a reply of the "server" on the subscriber's connection, in order."""
        conn = self._conn()
        with self._hub._lock:
            if conn._closed is not None:
                raise _errors.SubscriberClosed(conn._closed)
            conn._queue.append(msg)
            if conn._waiting:
                conn._wake()

    def ping(self, message: Any = None) -> None:
        """PING on the subscriber's connection: the reply is read as a message
        ``{"type": "pong", "pattern": None, "channel": None, "data": b""}`` (``data``:
        the message given, if any), which ``ignore_subscribe_messages`` does not hide."""
        data = b"" if message is None else _enc(message)
        self._reply({"type": "pong", "pattern": None, "channel": None, "data": data})

    def handle_message(self, message: Message | list[Any] | None,
                       ignore_subscribe_messages: bool = False) -> Message | None:
        """redis-py's bookkeeping for one message: pending unsubscribes, handlers, ignore.
        ``message`` is a message dict or, as redis-py takes it, a raw reply from
        :meth:`parse_response` (None gives None)."""
        if message is None:
            return None
        if isinstance(message, list):
            message = self._from_reply(message)
        kind = message["type"]
        if kind in self.UNSUBSCRIBE_MESSAGE_TYPES:
            name = message["channel"]
            if kind == "punsubscribe":
                if name in self.pending_unsubscribe_patterns:
                    self.pending_unsubscribe_patterns.remove(name)
                    self.patterns.pop(name, None)
            elif name in self.pending_unsubscribe_channels:
                self.pending_unsubscribe_channels.remove(name)
                self.channels.pop(name, None)
            if not self.channels and not self.patterns:
                self.subscribed_event.clear()
        if kind in self.PUBLISH_MESSAGE_TYPES:
            handler = (self.patterns.get(message["pattern"]) if kind == "pmessage"
                       else self.channels.get(message["channel"]))
            if handler:
                handler(message)
                return None
        elif kind != "pong" and (ignore_subscribe_messages or self.ignore_subscribe_messages):
            return None
        return message

    def _from_reply(self, reply: list[Any]) -> Message:
        """A raw reply (``[b"message", b"chan", b"data"]``...) as a message dict."""
        kind = reply[0].decode() if isinstance(reply[0], bytes) else str(reply[0])
        if kind == "pmessage":
            return {"type": kind, "pattern": reply[1], "channel": reply[2], "data": reply[3]}
        if kind == "pong":
            return {"type": kind, "pattern": None, "channel": None, "data": reply[1]}
        return {"type": kind, "pattern": None, "channel": reply[1], "data": reply[2]}

    def listen(self) -> Iterator[Message]:
        """Yield messages while subscribed (blocking)."""
        while self.subscribed:
            msg = self._read(None)
            if msg is not None:
                out = self.handle_message(msg)
                if out is not None:
                    yield out

    def run_in_thread(self, sleep_time: float = 0.0, daemon: bool = False,
                      exception_handler: Callable[..., Any] | None = None,
                      pubsub: Any = None, sharded_pubsub: bool = False,
                      ) -> PubSubWorkerThread:
        """Dispatch to handlers in a new thread; every subscription needs a handler.
        (``pubsub`` and ``sharded_pubsub`` are redis-py's cluster options: accepted,
        unused.)"""
        for name, handler in self.channels.items():
            if handler is None:
                raise PubSubError(f"Channel: '{name}' has no handler registered")
        for name, handler in self.patterns.items():
            if handler is None:
                raise PubSubError(f"Pattern: '{name}' has no handler registered")
        t = PubSubWorkerThread(self, sleep_time, daemon=daemon,
                               exception_handler=exception_handler)
        self._hub._add_thread(t)
        t.start()
        return t


class PubSubWorkerThread(threading.Thread):
    """redis-py's worker: reads with ``ignore_subscribe_messages=True`` until ``stop()``."""

    _POLL = 0.05  # longest wait per read; stop() wakes a blocked read at once

    def __init__(self, pubsub: PubSub, sleep_time: float, *, daemon: bool,
                 exception_handler: Callable[..., Any] | None) -> None:
        super().__init__(name="inbus-compat-redis-worker", daemon=daemon)
        self.pubsub = pubsub
        self.sleep_time = sleep_time
        self.exception_handler = exception_handler
        self._running = threading.Event()
        self._running.set()

    def run(self) -> None:
        p = self.pubsub
        wait = self.sleep_time if 0 < self.sleep_time < self._POLL else self._POLL
        try:
            while self._running.is_set():
                try:
                    p.get_message(ignore_subscribe_messages=True, timeout=wait)
                except BaseException as exc:
                    if isinstance(exc, _errors.SubscriberClosed) and (
                            not self._running.is_set() or "bus was closed" in str(exc)):
                        break  # stopped, or reset() closed the hub: a normal end
                    if self.exception_handler is None:
                        raise
                    self.exception_handler(exc, p, self)
                    if isinstance(exc, _errors.SubscriberClosed):
                        break
        finally:
            p.close()
            p._hub._remove_thread(self)

    def stop(self) -> None:
        """Trip the flag; the loop ends, closes the PubSub and returns."""
        self._running.clear()
        native = self.pubsub._native
        if native is not None:
            native._interrupt()
