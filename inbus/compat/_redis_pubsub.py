"""redis-py look-alike, part 2: :class:`PubSub` (``redis.client.PubSub``) and its worker
thread, exposed by :mod:`inbus.compat.redis`.

Theory of operation
-------------------
A PubSub wraps a native subscriber (:class:`inbus.pubsub.PubSub`, created lazily, like
redis-py's connection), which stands for its connection: the in-process server queues
there, in order, what Redis would send on it (confirmations, messages, and the replies
of the commands the PubSub sent, see :mod:`inbus.compat._redis_commands`). On top it
keeps redis-py's *client-side* bookkeeping, where it differs from the server:
``subscribe("a", "a")`` sends ``a`` once (redis-py keeps the names in a dict);
``get_message`` returns None while the client believes nothing is subscribed, which hides
the unsubscribe-all confirmation; handlers are looked up in the client's dicts (channels,
patterns, shard channels) and dropped when the unsubscribe confirmation is read;
``close()``/``reset()`` leaves the object reusable. Messages are redis-py's dicts;
``decode_responses=True`` gives ``str``.

Command replies are read as redis-py reads them, through the same code path: with RESP3
(redis-py 8's default) ``PING`` answers ``PONG`` (or its message) even when subscribed,
and ``handle_message`` turns such a bulk reply into a ``pong`` message (with
``decode_responses`` redis-py indexes the ``str`` instead: type ``'P'``, as it does);
with ``protocol=2`` a subscribed connection answers ``["pong", message]`` and refuses
other commands. Health checks are redis-py's: with ``health_check_interval=N`` on the
client, a read (or ``check_health()``) more than N seconds after the last reply sends
``PING redis-py-health-check``, whose reply the next read swallows (returning None).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from inbus import _errors
from inbus._pubsub import Message
from inbus.pubsub import PubSub as NativePubSub
from inbus.pubsub import PubSubHub

from . import _redis_commands as commands
from ._redis_commands import enc as _enc
from .redis_exceptions import PubSubError, ResponseError

__all__ = ["PubSub", "PubSubWorkerThread"]

Handler = Callable[[Message], Any]
_CONTEXT = ("Can't execute '{}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / "
            "RESET are allowed in this context")


def _list_or_args(args: tuple[Any, ...]) -> list[Any]:
    if args and isinstance(args[0], (list, tuple)):
        return [*args[0], *args[1:]]
    return list(args)


def _str_if_bytes(value: Any) -> Any:
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else value


class PubSub:
    """redis-py's ``PubSub``, with its client-side bookkeeping, over a native subscriber."""

    PUBLISH_MESSAGE_TYPES = ("message", "pmessage", "smessage")
    UNSUBSCRIBE_MESSAGE_TYPES = ("unsubscribe", "punsubscribe", "sunsubscribe")
    HEALTH_CHECK_MESSAGE = "redis-py-health-check"

    def __init__(self, hub: PubSubHub, ignore_subscribe_messages: bool = False,
                 decode: bool = False, health_check_interval: float = 0.0,
                 resp3: bool = True) -> None:
        self._hub = hub
        self.ignore_subscribe_messages = ignore_subscribe_messages
        self._decode = decode
        self._resp3 = resp3
        self._native: NativePubSub | None = None
        self.subscribed_event = threading.Event()
        self.health_check_interval = health_check_interval
        self.next_health_check = 0.0
        self.health_check_response_b = self.HEALTH_CHECK_MESSAGE.encode()
        self.health_check_response: list[Any] = (
            ["pong", self.HEALTH_CHECK_MESSAGE] if decode
            else [b"pong", self.health_check_response_b])
        self.reset()

    def reset(self) -> None:
        """Drop the subscriptions at once; the object stays usable (redis-py's reset)."""
        if self._native is not None:
            self._native.close()
            self._native = None
        self.health_check_response_counter = 0
        self.channels: dict[Any, Handler | None] = {}
        self.patterns: dict[Any, Handler | None] = {}
        self.shard_channels: dict[Any, Handler | None] = {}
        self.pending_unsubscribe_channels: set[Any] = set()
        self.pending_unsubscribe_patterns: set[Any] = set()
        self.pending_unsubscribe_shard_channels: set[Any] = set()
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
        """What redis-py believes: set by (p|s)subscribe, cleared when all are confirmed
        gone."""
        return self.subscribed_event.is_set()

    def _conn(self) -> NativePubSub:
        if self._native is None:
            self._native = self._hub.pubsub(decode=self._decode)
            self._replied()  # redis-py's connect reads the handshake's reply
        return self._native

    def _replied(self) -> None:
        if self.health_check_interval:
            self.next_health_check = time.monotonic() + self.health_check_interval

    def _key(self, name: Any) -> Any:
        b = _enc(name)
        return b.decode("utf-8") if self._decode else b

    # -- commands --------------------------------------------------------------------------

    def execute_command(self, *args: Any) -> None:
        """Send a command on the subscriber's connection, as redis-py does: nothing is
        read here; its reply (or Redis's error reply, raised then) comes at a later
        ``get_message`` / ``parse_response``, in order with the messages. The client's
        bookkeeping is not touched: ``execute_command("SUBSCRIBE", "a")`` subscribes on
        the server while ``subscribed`` stays False, as in redis-py. Commands other than
        the pub/sub ones and PING raise ``NotImplementedError`` at once."""
        cmd = commands.argv(args)
        self._conn()
        if not self.subscribed:
            self.clean_health_check_responses()
            if self.health_check_interval and time.monotonic() > self.next_health_check:
                self._replied()  # the connection's own PING, answered before the command
        self._send(cmd)

    def _send(self, cmd: list[bytes]) -> None:
        native = self._conn()
        if native._closed is not None and not native._closed_by_user:
            self._reconnect()
            native = self._conn()
        try:
            fullname = commands.check(cmd)
        except ResponseError as e:
            self._error(str(e))
            return
        if fullname in commands.SUBSCRIPTION_COMMANDS:
            self._hub._change(native, fullname, cmd[1:])
            return
        in_context = not self._resp3 and self._hub._count(native) > 0
        if in_context and fullname != "ping":
            self._error(_CONTEXT.format(fullname))
            return
        try:
            reply = commands.run(self._hub, cmd, fullname)
        except ResponseError as e:
            self._error(str(e))
            return
        if in_context:  # RESP2 in subscribed mode: PING answers as a message
            reply = [b"pong", cmd[1] if len(cmd) > 1 else b""]
        self._queue({"type": "reply", "pattern": None, "channel": None,
                     "data": commands.decode_reply(reply) if self._decode else reply})

    def _error(self, text: str) -> None:
        self._queue({"type": "error", "pattern": None, "channel": None, "data": text})

    def _queue(self, msg: Message) -> None:
        """Queue a reply of the "server" on the subscriber's connection, in order."""
        conn = self._conn()
        with self._hub._lock:
            if conn._closed is not None:
                raise _errors.SubscriberClosed(conn._closed)
            conn._queue.append(msg)
            if conn._waiting:
                conn._wake()

    def ping(self, message: Any = None) -> None:
        """PING on the subscriber's connection; the reply is read later, as a ``pong``
        message (see the module's docstring for its shape)."""
        self.execute_command(*(("PING",) if message is None else ("PING", message)))

    # -- health checks ---------------------------------------------------------------------

    def check_health(self) -> None:
        """redis-py's: with the client's ``health_check_interval`` and that long since the
        last reply, send ``PING redis-py-health-check``; the next read swallows its reply."""
        if self._native is None:
            raise RuntimeError("pubsub connection not set: "
                               "did you forget to call subscribe() or psubscribe()?")
        if self.health_check_interval and time.monotonic() > self.next_health_check:
            self._send([b"PING", self.health_check_response_b])
            self.health_check_response_counter += 1

    def is_health_check_response(self, response: Any) -> bool:
        """The reply to a health-check PING, subscribed (a list) or not (bulk)."""
        bulk = self.HEALTH_CHECK_MESSAGE if self._decode else self.health_check_response_b
        return response in (self.health_check_response, bulk)

    def clean_health_check_responses(self) -> None:
        """Read the health-check replies still pending (before a command sent while not
        subscribed); anything else there is redis-py's ``PubSubError``."""
        ttl = 10
        conn = self._native
        while conn is not None and self.health_check_response_counter > 0 and ttl > 0:
            msg = conn.get_message(timeout=0)
            if msg is not None:
                response = self._raw(msg)
                if not self.is_health_check_response(response):
                    raise PubSubError("A non health check response was cleaned by "
                                      f"execute_command: {response}")
                self.health_check_response_counter -= 1
            ttl -= 1

    # -- subscriptions ---------------------------------------------------------------------

    def _parse(self, args: tuple[Any, ...], kwargs: dict[str, Handler]) -> dict[Any, Any]:
        subs: dict[Any, Handler | None] = dict.fromkeys(_list_or_args(args))
        subs.update(kwargs)
        return subs

    def subscribe(self, *args: Any, **kwargs: Handler) -> None:
        """SUBSCRIBE; a name repeated in one call is sent once, as redis-py does."""
        self._sub("SUBSCRIBE", self._parse(args, kwargs), self.channels,
                  self.pending_unsubscribe_channels)

    def psubscribe(self, *args: Any, **kwargs: Handler) -> None:
        """PSUBSCRIBE; a name repeated in one call is sent once, as redis-py does."""
        self._sub("PSUBSCRIBE", self._parse(args, kwargs), self.patterns,
                  self.pending_unsubscribe_patterns)

    def ssubscribe(self, *args: Any, target_node: Any = None, **kwargs: Handler) -> None:
        """SSUBSCRIBE (Redis 7 shard channels), as redis-py; ``target_node`` (a cluster
        option) is accepted, unused. Its messages are ``smessage``\\ s."""
        self._sub("SSUBSCRIBE", self._parse(args, kwargs), self.shard_channels,
                  self.pending_unsubscribe_shard_channels)

    def _sub(self, command: str, new: dict[Any, Handler | None],
             table: dict[Any, Handler | None], pending: set[Any]) -> None:
        # An empty call is sent anyway: Redis's error reply is raised by the next read,
        # and redis-py believes it is subscribed meanwhile.
        self.execute_command(command, *new)
        normal = {self._key(k): h for k, h in new.items()}
        table.update(normal)
        if not self.subscribed:
            self.subscribed_event.set()
            self.health_check_response_counter = 0
        pending.difference_update(normal)

    def unsubscribe(self, *args: Any) -> None:
        """UNSUBSCRIBE; no names means all channels."""
        self._unsub("UNSUBSCRIBE", args, self.channels, self.pending_unsubscribe_channels)

    def punsubscribe(self, *args: Any) -> None:
        """PUNSUBSCRIBE; no names means all patterns."""
        self._unsub("PUNSUBSCRIBE", args, self.patterns, self.pending_unsubscribe_patterns)

    def sunsubscribe(self, *args: Any, target_node: Any = None) -> None:
        """SUNSUBSCRIBE; no names means all shard channels (none held: Redis confirms
        once with channel None, which redis-py's ``get_message`` hides once nothing is
        subscribed)."""
        self._unsub("SUNSUBSCRIBE", args, self.shard_channels,
                    self.pending_unsubscribe_shard_channels)

    def _unsub(self, command: str, args: tuple[Any, ...], held: dict[Any, Any],
               pending: set[Any]) -> None:
        names = _list_or_args(args)
        pending.update([self._key(n) for n in names] if names else list(held))
        self.execute_command(command, *names)

    # -- reading ---------------------------------------------------------------------------

    def parse_response(self, block: bool = True, timeout: float = 0) -> Any:
        """The next raw reply, e.g. ``[b"message", b"chan", b"data"]``, or a command's
        reply (``b"PONG"``, an int...); None when none came, or for a health check's."""
        if self._native is None:
            raise RuntimeError("pubsub connection not set: "
                               "did you forget to call subscribe() or psubscribe()?")
        msg = self._read(None if block else timeout)
        return None if msg is None else self._raw(msg)

    def _raw(self, msg: Message) -> Any:
        if msg["type"] == "reply":
            return msg["data"]
        kind: Any = msg["type"].encode() if not self._decode else msg["type"]
        if msg["type"] == "pmessage":
            return [kind, msg["pattern"], msg["channel"], msg["data"]]
        return [kind, msg["channel"], msg["data"]]

    def get_message(self, ignore_subscribe_messages: bool = False,
                    timeout: float | None = 0.0) -> Any:
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
        return self.handle_message(msg["data"] if msg["type"] == "reply" else msg,
                                   ignore_subscribe_messages)

    get_sharded_message = get_message

    def _read(self, timeout: float | None) -> Message | None:
        """The next message from the subscriber (health check first, as redis-py's
        parse_response); an error reply is raised, a health check's reply swallowed."""
        assert self._native is not None
        if self.health_check_interval:
            self.check_health()
        try:
            msg = self._native.get_message(timeout=timeout)
        except _errors.SubscriberClosed:
            if self._native._closed_by_user:
                raise
            self._reconnect()
            msg = self._native.get_message(timeout=timeout)
        if msg is None:
            return None
        if self.health_check_interval:
            self._replied()
        kind = msg["type"]
        if kind == "error":
            raise ResponseError(msg["data"])
        if kind == "reply" and self.is_health_check_response(msg["data"]):
            self.health_check_response_counter -= 1
            return None
        return msg

    def _reconnect(self) -> None:
        """The "server" dropped this subscriber (its buffer overflowed): redis-py
        reconnects and subscribes again (its on_connect); what was pending is lost."""
        self._native = None
        self.pending_unsubscribe_channels.clear()
        self.pending_unsubscribe_patterns.clear()
        self.pending_unsubscribe_shard_channels.clear()
        conn = self._conn()
        if self.channels:
            conn.subscribe(*map(_enc, self.channels))
        if self.patterns:
            conn.psubscribe(*map(_enc, self.patterns))
        if self.shard_channels:
            conn.ssubscribe(*map(_enc, self.shard_channels))

    def handle_message(self, message: Any, ignore_subscribe_messages: bool = False) -> Any:
        """redis-py's bookkeeping for one message: pending unsubscribes, handlers, ignore.
        ``message`` is a message dict or, as redis-py takes it, a raw reply from
        :meth:`parse_response` (None gives None)."""
        if message is None:
            return None
        if not isinstance(message, dict):
            message = self._from_reply(message)
        kind = message["type"]
        if kind in self.UNSUBSCRIBE_MESSAGE_TYPES:
            name = message["channel"]
            table, pending = {
                "unsubscribe": (self.channels, self.pending_unsubscribe_channels),
                "punsubscribe": (self.patterns, self.pending_unsubscribe_patterns),
                "sunsubscribe": (self.shard_channels,
                                 self.pending_unsubscribe_shard_channels)}[kind]
            if name in pending:
                pending.remove(name)
                table.pop(name, None)
            if not self.channels and not self.patterns and not self.shard_channels:
                self.subscribed_event.clear()
        if kind in self.PUBLISH_MESSAGE_TYPES:
            handler = (self.patterns.get(message["pattern"]) if kind == "pmessage"
                       else self.shard_channels.get(message["channel"]) if kind == "smessage"
                       else self.channels.get(message["channel"]))
            if handler:
                handler(message)
                return None
        elif kind != "pong" and (ignore_subscribe_messages or self.ignore_subscribe_messages):
            return None
        return message

    def _from_reply(self, response: Any) -> Message:
        """A raw reply as a message dict, by redis-py's code: a bulk reply is a PING's
        (``b"PONG"`` has data ``b""``); anything else is indexed as a list (so a decoded
        ``"PONG"`` reads as type ``'P'`` and an int raises ``TypeError``, as in redis-py)."""
        if isinstance(response, bytes):
            response = [b"pong", response] if response != b"PONG" else [b"pong", b""]
        kind = _str_if_bytes(response[0])
        if kind == "pmessage":
            return {"type": kind, "pattern": response[1], "channel": response[2],
                    "data": response[3]}
        if kind == "pong":
            return {"type": kind, "pattern": None, "channel": None, "data": response[1]}
        return {"type": kind, "pattern": None, "channel": response[1], "data": response[2]}

    def listen(self) -> Iterator[Any]:
        """Yield messages while subscribed (blocking)."""
        while self.subscribed:
            msg = self._read(None)
            if msg is not None:
                out = self.handle_message(msg["data"] if msg["type"] == "reply" else msg)
                if out is not None:
                    yield out

    def run_in_thread(self, sleep_time: float = 0.0, daemon: bool = False,
                      exception_handler: Callable[..., Any] | None = None,
                      pubsub: Any = None, sharded_pubsub: bool = False,
                      ) -> PubSubWorkerThread:
        """Dispatch to handlers in a new thread; every subscription needs a handler.
        (``pubsub`` and ``sharded_pubsub`` are redis-py's cluster options: accepted,
        unused: one subscriber reads every kind of message.)"""
        for name, handler in self.channels.items():
            if handler is None:
                raise PubSubError(f"Channel: '{name}' has no handler registered")
        for name, handler in self.patterns.items():
            if handler is None:
                raise PubSubError(f"Pattern: '{name}' has no handler registered")
        for name, handler in self.shard_channels.items():
            if handler is None:
                raise PubSubError(f"Shard Channel: '{name}' has no handler registered")
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
