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

:class:`PubSub` (in :mod:`inbus.compat._redis_pubsub`) wraps a native subscriber and
adds redis-py's *client-side* bookkeeping; ``execute_command`` is in
:mod:`inbus.compat._redis_commands`. Replies have redis-py 8's default protocol, RESP3
(``protocol=2`` gives RESP2's where they differ: a subscribed connection's PING reply, and
its refusal of other commands). Sharded pub/sub (``spublish``, ``ssubscribe``...) is a
namespace of its own, as on a non-cluster Redis 7.

Only pub/sub and ``ping`` are provided; other methods raise ``AttributeError``, other
commands given to ``execute_command`` ``NotImplementedError``.
"""

from __future__ import annotations

import threading
from typing import Any
from urllib.parse import unquote, urlparse

from inbus.pubsub import PubSubHub

from . import _redis_commands as commands
from . import redis_exceptions as exceptions
from ._redis_commands import enc as _enc
from ._redis_pubsub import PubSub, PubSubWorkerThread
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

__all__ = ["Redis", "StrictRedis", "PubSub", "PubSubWorkerThread", "from_url", "reset", "servers", "Servers",
           "exceptions", "AuthenticationError", "BusyLoadingError", "ConnectionError",
           "DataError", "InvalidResponse", "PubSubError", "ReadOnlyError", "RedisError",
           "ResponseError", "TimeoutError", "WatchError"]

_LOCAL = {"localhost", "127.0.0.1", "::1", "[::1]"}


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
        self._resp3 = str(options.get("protocol") or 3) != "2"
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

    def spublish(self, shard_channel: Any, message: Any) -> int:
        """SPUBLISH (Redis 7): the number of shard subscribers (``ssubscribe``) that got
        it; channel and pattern subscribers are not reached, as on a non-cluster Redis."""
        return self._hub.spublish(_enc(shard_channel), _enc(message))

    def pubsub(self, **kwargs: Any) -> PubSub:
        """A new :class:`PubSub` (``ignore_subscribe_messages=`` as in redis-py; the
        client's ``health_check_interval=`` applies to it)."""
        return PubSub(self._hub, ignore_subscribe_messages=bool(
            kwargs.get("ignore_subscribe_messages", False)), decode=self.decode_responses,
            health_check_interval=float(self.options.get("health_check_interval") or 0),
            resp3=self._resp3)

    def execute_command(self, *args: Any, **options: Any) -> Any:
        """Run a pub/sub command as redis-py does: ``execute_command("PUBLISH", "c", "m")``,
        ``("PUBSUB NUMSUB", "c")`` (tuples, redis-py's callback) or ``("PUBSUB", "NUMSUB",
        "c")`` (the flat reply), ``("PING")``... Redis's error replies are
        ``ResponseError``; other commands (SUBSCRIBE included: use :meth:`pubsub`) raise
        ``NotImplementedError`` naming the command.

        >>> r = Redis(port=7002); r.execute_command("PUBSUB NUMSUB", "a"), r.execute_command("PING")
        ([(b'a', 0)], True)
        >>> reset()
        """
        cmd = commands.argv(args)
        fullname = commands.check(cmd)
        if fullname in commands.SUBSCRIPTION_COMMANDS:
            raise NotImplementedError(
                f"inbus.compat.redis: {fullname.upper()} through Redis.execute_command "
                "(redis-py reads its reply as a command's and then times out): subscribe "
                "with pubsub()")
        reply = commands.run(self._hub, cmd, fullname)
        return commands.reply_for_client(args[0], reply, self.decode_responses)

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

    def pubsub_shardchannels(self, pattern: Any = "*", **kwargs: Any) -> list[Any]:
        """PUBSUB SHARDCHANNELS pattern: shard channels with a shard subscriber."""
        return [self._out(c) for c in self._hub.pubsub_shardchannels(_enc(pattern))]

    def pubsub_shardnumsub(self, *args: Any, **kwargs: Any) -> list[tuple[Any, int]]:
        """PUBSUB SHARDNUMSUB: ``(shard channel, count)`` tuples."""
        return [(self._out(c), n) for c, n in self._hub.pubsub_shardnumsub(*map(_enc, args))]

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
