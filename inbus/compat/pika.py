"""A drop-in look-alike of pika 1.x's BlockingConnection API on top of an in-process Bus.

Swap the import and existing pika code talks to inbus::

    from inbus.compat import pika          # instead of: import pika
    conn = pika.BlockingConnection(pika.ConnectionParameters("localhost"))
    ch = conn.channel()
    ch.queue_declare("hello")
    ch.basic_publish("", "hello", b"Hello World!")
    method, properties, body = ch.basic_get("hello", auto_ack=True)

Theory of operation
-------------------
- Connections whose parameters name the same ``(host, port)`` reach the same
  :class:`inbus.Bus` (created on first use; :func:`get_bus` returns it, :func:`reset`
  closes and forgets them all). The parameters' ``virtual_host`` is a vhost of that bus;
  a missing one fails as pika reports RabbitMQ's 530 (``ProbableAccessDeniedError``).
- A :class:`BlockingChannel` wraps one native :class:`inbus.Channel` and reshapes what
  goes in and out the way pika does: methods return frames (``.method.queue``...),
  callbacks get ``(channel, method, properties, body)``, ``basic_get`` returns
  ``(method, properties, body)`` or ``(None, None, None)``.
- Errors become pika's: a channel error is ``ChannelClosedByBroker(code, text)``, a
  connection error ``ConnectionClosedByBroker``, use of a closed channel
  ``ChannelWrongStateError``. As on the wire, errors of *asynchronous* methods
  (basic_publish outside confirm mode, basic_ack / nack / reject) do not raise there:
  they close the channel and surface on the channel's next synchronous call.
- Callbacks run in the thread that calls ``process_data_events`` / ``start_consuming`` /
  ``consume()`` / ``sleep``, as with pika.
- What pika does on the client side is imitated here: consumer tags ``ctag<n>.<hex>``
  invented when not given, ``DuplicateConsumerTag``, ``ShortStringTooLong`` for names
  over 255 bytes, deliveries not yet dispatched are put back on ``basic_cancel``. What
  RabbitMQ does but a bus has no notion of is imitated too: ``user_id`` must match the
  connection's user (406). Properties are copied on publish (headers deep-copied), as a
  round trip through the wire would.
- pika 0.x signatures (``basic_consume(callback, queue=..., no_ack=...)``,
  ``exchange_declare(exchange=..., type=...)``, ``basic_get(queue, no_ack=...)``) are
  accepted with a ``DeprecationWarning``.
"""

from __future__ import annotations

import copy
import enum
import threading
import time
import uuid
import warnings
from collections import deque
from collections.abc import Callable, Generator, Sequence
from typing import Any
from urllib.parse import unquote, urlparse

from .. import _errors as _e
from .._bus import Bus
from .._channel import Channel as _NativeChannel
from .._channel import Connection as _NativeConnection
from .._message import BasicProperties, Message
from .._message import ReturnedMessage as _NativeReturned
from . import pika_exceptions as exceptions

__all__ = [
    "BasicProperties",
    "BlockingChannel",
    "BlockingConnection",
    "ConnectionParameters",
    "DeliveryMode",
    "ExchangeType",
    "PlainCredentials",
    "URLParameters",
    "exceptions",
    "frame",
    "get_bus",
    "reset",
    "spec",
]

__version__ = "1.3.2+inbus"

# --------------------------------------------------------------------------- spec


class _Method:
    """An AMQP method as pika shows it: named attributes, ``NAME``, equality by value."""

    NAME = ""
    _fields: tuple[str, ...] = ()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        for name, value in zip(self._fields, args, strict=False):
            setattr(self, name, value)
        for name in self._fields[len(args):]:
            setattr(self, name, kwargs.pop(name, None))
        if kwargs:
            raise TypeError(f"{self.NAME}: unexpected fields {sorted(kwargs)}")

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and vars(other) == vars(self)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={getattr(self, k)!r}" for k in self._fields)
        return f"<{self.NAME}([{inner}])>"


def _method(name: str, *fields: str, **defaults: Any) -> type[_Method]:
    def init(self: _Method, *args: Any, **kwargs: Any) -> None:
        positional = fields[:len(args)]
        merged = {k: v for k, v in defaults.items() if k not in positional}
        merged.update(kwargs)
        _Method.__init__(self, *args, **merged)

    return type(name.split(".")[1], (_Method,), {"NAME": name, "_fields": fields,
                                                 "__init__": init})


class _Basic:
    Deliver = _method("Basic.Deliver", "consumer_tag", "delivery_tag", "redelivered",
                      "exchange", "routing_key", redelivered=False, delivery_tag=None)
    GetOk = _method("Basic.GetOk", "delivery_tag", "redelivered", "exchange",
                    "routing_key", "message_count", redelivered=False)
    GetEmpty = _method("Basic.GetEmpty", "cluster_id")
    Return = _method("Basic.Return", "reply_code", "reply_text", "exchange", "routing_key",
                     reply_text="")
    ConsumeOk = _method("Basic.ConsumeOk", "consumer_tag")
    Cancel = _method("Basic.Cancel", "consumer_tag", "nowait", nowait=False)
    CancelOk = _method("Basic.CancelOk", "consumer_tag")
    QosOk = _method("Basic.QosOk")
    RecoverOk = _method("Basic.RecoverOk")
    Ack = _method("Basic.Ack", "delivery_tag", "multiple", delivery_tag=0, multiple=False)
    Nack = _method("Basic.Nack", "delivery_tag", "multiple", "requeue", delivery_tag=0,
                   multiple=False, requeue=True)


class _Queue:
    DeclareOk = _method("Queue.DeclareOk", "queue", "message_count", "consumer_count")
    DeleteOk = _method("Queue.DeleteOk", "message_count")
    PurgeOk = _method("Queue.PurgeOk", "message_count")
    BindOk = _method("Queue.BindOk")
    UnbindOk = _method("Queue.UnbindOk")


class _Exchange:
    DeclareOk = _method("Exchange.DeclareOk")
    DeleteOk = _method("Exchange.DeleteOk")
    BindOk = _method("Exchange.BindOk")
    UnbindOk = _method("Exchange.UnbindOk")


class _Confirm:
    SelectOk = _method("Confirm.SelectOk")


class spec:  # noqa: N801 - mirrors the module name ``pika.spec``
    """``pika.spec``: method classes with pika's attribute names, and BasicProperties."""

    Basic = _Basic
    Queue = _Queue
    Exchange = _Exchange
    Confirm = _Confirm
    BasicProperties = BasicProperties
    TRANSIENT_DELIVERY_MODE = 1
    PERSISTENT_DELIVERY_MODE = 2


class Method:
    """``pika.frame.Method``: what synchronous channel methods return."""

    frame_type = 1

    def __init__(self, channel_number: int, method: _Method) -> None:
        self.channel_number = channel_number
        self.method = method

    def __repr__(self) -> str:
        return f"<METHOD(['channel_number={self.channel_number}', 'method={self.method!r}'])>"


class frame:  # noqa: N801 - mirrors the module name ``pika.frame``
    Method = Method


class DeliveryMode(enum.Enum):
    Transient = 1
    Persistent = 2


class ExchangeType(str, enum.Enum):
    direct = "direct"
    fanout = "fanout"
    headers = "headers"
    topic = "topic"


class ReturnedMessage:
    """What UnroutableError / NackError carry: ``.method .properties .body``."""

    def __init__(self, method: _Method, properties: BasicProperties, body: bytes) -> None:
        self.method = method
        self.properties = properties
        self.body = body

    def __repr__(self) -> str:
        return f"ReturnedMessage(method={self.method!r}, body={self.body[:40]!r})"


# --------------------------------------------------------------------------- parameters


class PlainCredentials:
    TYPE = "PLAIN"

    def __init__(self, username: str, password: str, erase_on_connect: bool = False) -> None:
        self.username = username
        self.password = password
        self.erase_on_connect = erase_on_connect

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, PlainCredentials) and other.username == self.username
                and other.password == self.password)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"<PlainCredentials username={self.username!r}>"


class ConnectionParameters:
    """pika's ConnectionParameters: host, port, virtual_host and credentials matter here;
    every other pika option (heartbeat, ssl_options, ...) is accepted and kept."""

    DEFAULT_HOST = "localhost"
    DEFAULT_PORT = 5672
    DEFAULT_VIRTUAL_HOST = "/"
    DEFAULT_USERNAME = "guest"
    DEFAULT_PASSWORD = "guest"

    def __init__(self, host: str | None = None, port: int | None = None,
                 virtual_host: str | None = None,
                 credentials: PlainCredentials | None = None, **options: Any) -> None:
        self.host = host if host is not None else self.DEFAULT_HOST
        self.port = int(port) if port is not None else self.DEFAULT_PORT
        self.virtual_host = virtual_host if virtual_host is not None \
            else self.DEFAULT_VIRTUAL_HOST
        self.credentials = credentials if credentials is not None else PlainCredentials(
            self.DEFAULT_USERNAME, self.DEFAULT_PASSWORD)
        self.options = options
        for k, v in options.items():
            setattr(self, k, v)

    def __repr__(self) -> str:
        return (f"<{type(self).__name__} host={self.host} port={self.port} "
                f"virtual_host={self.virtual_host}>")


class URLParameters(ConnectionParameters):
    """``amqp://user:password@host:port/vhost`` (vhost URL-encoded: ``%2F`` is "/")."""

    def __init__(self, url: str) -> None:
        parts = urlparse(url)
        if parts.scheme not in ("amqp", "amqps"):
            raise ValueError(f"url must start with amqp:// or amqps://, not {url!r}")
        path = parts.path[1:] if parts.path.startswith("/") else parts.path
        vhost = unquote(path) if path else "/"
        creds = None
        if parts.username is not None:
            creds = PlainCredentials(unquote(parts.username), unquote(parts.password or ""))
        port = parts.port or (5671 if parts.scheme == "amqps" else 5672)
        super().__init__(host=parts.hostname or self.DEFAULT_HOST, port=port,
                         virtual_host=vhost, credentials=creds)
        self.url = url


# --------------------------------------------------------------------------- buses

_buses: dict[tuple[str, int], Bus] = {}
_buses_lock = threading.Lock()


def get_bus(parameters: ConnectionParameters | None = None) -> Bus:
    """The in-process Bus that connections with these parameters' host and port reach
    (created on first use)."""
    p = parameters if parameters is not None else ConnectionParameters()
    key = (p.host, p.port)
    with _buses_lock:
        bus = _buses.get(key)
        if bus is None or bus.is_closed:
            bus = _buses[key] = Bus()
        return bus


def reset() -> None:
    """Close and forget every bus (for tests)."""
    with _buses_lock:
        buses = list(_buses.values())
        _buses.clear()
    for bus in buses:
        bus.close()


# --------------------------------------------------------------------------- helpers


def _short(value: Any, what: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, not {type(value).__name__}")
    if len(value) > 63 and len(value.encode("utf-8")) > 255:
        raise exceptions.ShortStringTooLong(value.encode("utf-8"))
    return value


def _translate(err: _e.AMQPError) -> exceptions.AMQPError:
    if err.scope == "connection":
        return exceptions.ConnectionClosedByBroker(err.reply_code, err.reply_text)
    return exceptions.ChannelClosedByBroker(err.reply_code, err.reply_text)


def _deprecated(old: str, new: str) -> None:
    warnings.warn(f"pika 0.x signature {old} is deprecated; use {new}",
                  DeprecationWarning, stacklevel=3)


def _copy_props(p: BasicProperties | None) -> BasicProperties | None:
    """A copy, as a trip through the wire makes one: every publish and every delivery
    has properties (and headers) of its own."""
    if p is None:
        return None
    if not isinstance(p, BasicProperties):
        raise TypeError(f"properties must be a BasicProperties, not {type(p).__name__}")
    return p.copy(headers=copy.deepcopy(p.headers)) if p.headers else p.copy()


class _ConsumerInfo:
    __slots__ = ("tag", "callback", "auto_ack", "cancelled")

    def __init__(self, tag: str, callback: Callable[..., Any], auto_ack: bool) -> None:
        self.tag = tag
        self.callback = callback
        self.auto_ack = auto_ack
        self.cancelled = False


class _Generator:
    __slots__ = ("params", "tag", "pending", "auto_ack")

    def __init__(self, params: tuple[Any, ...], auto_ack: bool) -> None:
        self.params = params
        self.tag = ""
        self.auto_ack = auto_ack
        self.pending: deque[tuple[Any, BasicProperties, bytes]] = deque()


# --------------------------------------------------------------------------- connection


class BlockingConnection:
    """pika's BlockingConnection over an in-process bus (see the module docstring)."""

    def __init__(self, parameters: ConnectionParameters | Sequence[ConnectionParameters]
                 | None = None, _impl_class: Any = None) -> None:
        if isinstance(parameters, (list, tuple)):
            if not parameters:
                raise ValueError("parameters must not be an empty sequence")
            parameters = parameters[0]
        params = parameters if isinstance(parameters, ConnectionParameters) \
            else ConnectionParameters()
        self._params = params
        self._bus = get_bus(params)
        try:
            self._native: _NativeConnection = self._bus.connection(params.virtual_host,
                                                                   background=False)
        except _e.AMQPError as err:
            raise exceptions.ProbableAccessDeniedError(
                f"ConnectionClosedByBroker: ({err.reply_code}) {err.reply_text!r}") from None
        self._user = getattr(params.credentials, "username", "guest")
        self._channels: list[BlockingChannel] = []
        self._timers: dict[int, tuple[float, Callable[[], Any]]] = {}
        self._next_timer = 1
        self._closed_by_client = False

    # state ---------------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        return self._native.is_open

    @property
    def is_closed(self) -> bool:
        return not self._native.is_open

    @property
    def bus(self) -> Bus:
        """The in-process bus behind this connection (not in pika)."""
        return self._bus

    def _check_open(self) -> None:
        if not self._native.is_open:
            raise exceptions.ConnectionWrongStateError(
                "BlockingConnection is closed" if self._closed_by_client
                else "BlockingConnection was closed by the broker")

    # channels --------------------------------------------------------------------------

    def channel(self, channel_number: int | None = None) -> BlockingChannel:
        """Open a channel."""
        self._check_open()
        try:
            native = self._native.channel(channel_number, background=False)
        except _e.ConnectionClosed:
            raise exceptions.ConnectionWrongStateError("BlockingConnection is closed") from None
        ch = BlockingChannel(self, native)
        self._channels = [c for c in self._channels if c.is_open]
        self._channels.append(ch)
        return ch

    def close(self, reply_code: int = 200, reply_text: str = "Normal shutdown") -> None:
        """Close every channel (putting back undispatched deliveries) and the connection."""
        if self.is_closed:
            raise exceptions.ConnectionWrongStateError(
                f"BlockingConnection.close({reply_code}, {reply_text!r}) called on closed "
                "connection.")
        for ch in list(self._channels):
            if ch.is_open:
                ch._cancel_all_consumers()
        self._closed_by_client = True
        self._native.close()
        self._channels.clear()
        self._timers.clear()

    def __enter__(self) -> BlockingConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.is_open:
            self.close()

    # events ----------------------------------------------------------------------------

    def _run_timers(self) -> int:
        if not self._timers:
            return 0
        now = time.monotonic()
        due = sorted((d, tid) for tid, (d, _cb) in self._timers.items() if d <= now)
        ran = 0
        for _d, tid in due:
            entry = self._timers.pop(tid, None)
            if entry is not None:
                entry[1]()
                ran += 1
        return ran

    def _pump(self, wait: float) -> int:
        """Run what is pending; if nothing was, wait up to ``wait`` for work."""
        ran = self._run_timers() + self._native.process_data_events(0)
        if ran or wait <= 0 or not self._native.is_open:
            return ran
        if self._timers:
            wait = min(wait, max(0.0, min(d for d, _ in self._timers.values())
                                 - time.monotonic()))
        return self._native.process_data_events(min(wait, 0.01))

    def process_data_events(self, time_limit: float | None = 0) -> None:
        """Dispatch pending callbacks (consumers, returns, cancels, threadsafe callbacks,
        timers). ``time_limit=0`` returns at once; a positive limit waits up to that long
        and returns once something was dispatched; ``None`` waits until something was."""
        self._check_open()
        deadline = None if time_limit is None else time.monotonic() + time_limit
        while True:
            left = 0.01 if deadline is None else deadline - time.monotonic()
            if self._pump(left) or left <= 0 or not self._native.is_open:
                return

    def sleep(self, duration: float) -> None:
        """Process events for ``duration`` seconds."""
        self._check_open()
        deadline = time.monotonic() + duration
        while self._native.is_open:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self._pump(left)

    def add_callback_threadsafe(self, callback: Callable[[], Any]) -> None:
        """Run ``callback()`` in the thread that processes this connection's events
        (may be called from any thread)."""
        if not callable(callback):
            raise TypeError("callback must be callable")
        try:
            self._native.add_callback_threadsafe(callback)
        except _e.ConnectionClosed:
            raise exceptions.ConnectionWrongStateError(
                "BlockingConnection.add_callback_threadsafe() called on closed or closing "
                "connection.") from None

    def call_later(self, delay: float, callback: Callable[[], Any]) -> int:
        """Run ``callback()`` after ``delay`` seconds, from process_data_events."""
        self._check_open()
        tid = self._next_timer
        self._next_timer += 1
        self._timers[tid] = (time.monotonic() + delay, callback)
        return tid

    def remove_timeout(self, timeout_id: int) -> None:
        self._timers.pop(timeout_id, None)

    def update_secret(self, new_secret: str, reason: str) -> None:
        self._check_open()

    @property
    def basic_nack_supported(self) -> bool:
        return True

    @property
    def consumer_cancel_notify_supported(self) -> bool:
        return True

    @property
    def exchange_exchange_bindings_supported(self) -> bool:
        return True

    @property
    def publisher_confirms_supported(self) -> bool:
        return True

    publisher_confirms = publisher_confirms_supported
    basic_nack = basic_nack_supported
    consumer_cancel_notify = consumer_cancel_notify_supported
    exchange_exchange_bindings = exchange_exchange_bindings_supported

    def __repr__(self) -> str:
        return f"<BlockingConnection {'OPEN' if self.is_open else 'CLOSED'} {self._params!r}>"


# --------------------------------------------------------------------------- channel


class BlockingChannel:
    """pika's BlockingChannel over a native :class:`inbus.Channel`."""

    def __init__(self, connection: BlockingConnection, native: _NativeChannel) -> None:
        self._connection = connection
        self._native = native
        self._pending: exceptions.AMQPError | None = None
        self._consumers: dict[str, _ConsumerInfo] = {}
        self._return_callbacks: list[Callable[..., Any]] = []
        self._cancel_callbacks: list[Callable[..., Any]] = []
        self._gen: _Generator | None = None
        self._confirm = False
        native.add_on_cancel_callback(self._on_broker_cancel)

    # state ---------------------------------------------------------------------------

    @property
    def channel_number(self) -> int:
        return self._native.channel_number

    @property
    def connection(self) -> BlockingConnection:
        return self._connection

    @property
    def is_open(self) -> bool:
        return self._native.is_open

    @property
    def is_closed(self) -> bool:
        return not self._native.is_open

    @property
    def consumer_tags(self) -> list[str]:
        return list(self._consumers)

    def __int__(self) -> int:
        return self.channel_number

    def __enter__(self) -> BlockingChannel:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.is_open:
            self.close()

    def __repr__(self) -> str:
        return f"<BlockingChannel {self.channel_number} {'OPEN' if self.is_open else 'CLOSED'}>"

    # error plumbing ----------------------------------------------------------------------

    def _before_sync(self) -> None:
        """A synchronous method: raise what an earlier asynchronous method caused."""
        if self._pending is not None:
            err, self._pending = self._pending, None
            raise err
        if not self._native.is_open:
            raise exceptions.ChannelWrongStateError("Channel is closed.")

    def _sync(self, fn: Callable[[], Any]) -> Any:
        self._before_sync()
        try:
            return fn()
        except _e.AMQPError as err:
            raise _translate(err) from None
        except (_e.ChannelClosed, _e.ConnectionClosed):
            raise exceptions.ChannelWrongStateError("Channel is closed.") from None
        except ValueError as err:
            if "short strings" in str(err):
                raise exceptions.ShortStringTooLong(str(err)) from None
            raise

    def _async(self, fn: Callable[[], Any]) -> None:
        """An asynchronous method: an error closes the channel and is raised by the next
        synchronous call, as when the broker's channel.close arrives later."""
        if self._pending is not None:
            return
        if not self._native.is_open:
            raise exceptions.ChannelWrongStateError("Channel is closed.")
        try:
            fn()
        except _e.AMQPError as err:
            self._pending = _translate(err)
        except (_e.ChannelClosed, _e.ConnectionClosed):
            raise exceptions.ChannelWrongStateError("Channel is closed.") from None

    def _ok(self, method: _Method) -> Method:
        return Method(self.channel_number, method)

    # exchanges -------------------------------------------------------------------------

    def exchange_declare(self, exchange: str | None = None,
                         exchange_type: str | ExchangeType = "direct",
                         passive: bool = False, durable: bool = False,
                         auto_delete: bool = False, internal: bool = False,
                         arguments: dict[str, Any] | None = None,
                         type: str | None = None) -> Method:  # noqa: A002 - pika 0.x
        """Declare an exchange; returns a frame whose ``.method`` is Exchange.DeclareOk."""
        if type is not None:
            _deprecated("exchange_declare(type=...)", "exchange_declare(exchange_type=...)")
            exchange_type = type
        name = _short(exchange, "exchange")
        xtype = str(getattr(exchange_type, "value", exchange_type))
        self._sync(lambda: self._native.exchange_declare(
            name, xtype, passive, durable, auto_delete, internal, arguments))
        return self._ok(spec.Exchange.DeclareOk())

    def exchange_delete(self, exchange: str | None = None, if_unused: bool = False) -> Method:
        name = _short(exchange, "exchange")
        self._sync(lambda: self._native.exchange_delete(name, if_unused))
        return self._ok(spec.Exchange.DeleteOk())

    def exchange_bind(self, destination: str, source: str, routing_key: str = "",
                      arguments: dict[str, Any] | None = None) -> Method:
        d, s = _short(destination, "destination"), _short(source, "source")
        rk = _short(routing_key, "routing_key")
        self._sync(lambda: self._native.exchange_bind(d, s, rk, arguments))
        return self._ok(spec.Exchange.BindOk())

    def exchange_unbind(self, destination: str | None = None, source: str | None = None,
                        routing_key: str = "", arguments: dict[str, Any] | None = None
                        ) -> Method:
        d, s = _short(destination, "destination"), _short(source, "source")
        rk = _short(routing_key, "routing_key")
        self._sync(lambda: self._native.exchange_unbind(d, s, rk, arguments))
        return self._ok(spec.Exchange.UnbindOk())

    # queues ----------------------------------------------------------------------------

    def queue_declare(self, queue: str = "", passive: bool = False, durable: bool = False,
                      exclusive: bool = False, auto_delete: bool = False,
                      arguments: dict[str, Any] | None = None) -> Method:
        """Declare a queue; ``.method.queue .message_count .consumer_count``."""
        name = _short(queue, "queue")
        r = self._sync(lambda: self._native.queue_declare(
            name, passive, durable, exclusive, auto_delete, arguments))
        return self._ok(spec.Queue.DeclareOk(r.queue, r.message_count, r.consumer_count))

    def queue_delete(self, queue: str = "", if_unused: bool = False,
                     if_empty: bool = False) -> Method:
        name = _short(queue, "queue")
        n = self._sync(lambda: self._native.queue_delete(name, if_unused, if_empty))
        return self._ok(spec.Queue.DeleteOk(n))

    def queue_purge(self, queue: str = "") -> Method:
        name = _short(queue, "queue")
        n = self._sync(lambda: self._native.queue_purge(name))
        return self._ok(spec.Queue.PurgeOk(n))

    def queue_bind(self, queue: str, exchange: str, routing_key: str | None = None,
                   arguments: dict[str, Any] | None = None) -> Method:
        name, x = _short(queue, "queue"), _short(exchange, "exchange")
        rk = None if routing_key is None else _short(routing_key, "routing_key")
        self._sync(lambda: self._native.queue_bind(name, x, rk, arguments))
        return self._ok(spec.Queue.BindOk())

    def queue_unbind(self, queue: str, exchange: str | None = None,
                     routing_key: str | None = None,
                     arguments: dict[str, Any] | None = None) -> Method:
        name, x = _short(queue, "queue"), _short(exchange, "exchange")
        rk = None if routing_key is None else _short(routing_key, "routing_key")
        self._sync(lambda: self._native.queue_unbind(name, x, rk, arguments))
        return self._ok(spec.Queue.UnbindOk())

    # publishing ------------------------------------------------------------------------

    def basic_publish(self, exchange: str, routing_key: str, body: str | bytes,
                      properties: BasicProperties | None = None,
                      mandatory: bool = False, immediate: bool = False) -> None:
        """Publish. Outside confirm mode errors surface on the next synchronous call; in
        confirm mode a returned message raises UnroutableError, a nack NackError."""
        x, rk = _short(exchange, "exchange"), _short(routing_key, "routing_key")
        if not isinstance(body, (str, bytes, bytearray, memoryview)):
            raise TypeError(f"body must be str or bytes, not {type(body).__name__}")
        props = _copy_props(properties)
        if immediate:
            _deprecated("basic_publish(immediate=True)", "no immediate flag (RabbitMQ "
                        "refuses it)")

        def publish() -> None:
            if props is not None and props.user_id is not None \
                    and props.user_id != self._connection._user:
                err = _e.PreconditionFailed(
                    f"user_id property set to '{props.user_id}' but authenticated user "
                    f"was '{self._connection._user}'", method="basic.publish")
                self._close_native(err)
                raise err
            self._native.basic_publish(x, rk, body, props, mandatory, immediate)

        if not self._confirm:
            self._async(publish)
            return
        try:
            self._sync(publish)
        except _e.UnroutableError as err:
            returned = [self._returned(r) for r in err.messages]
            for r in err.messages:
                self._schedule_return(r)
            raise exceptions.UnroutableError(returned) from None
        except _e.NackError:
            raise exceptions.NackError([]) from None

    def _close_native(self, err: _e.AMQPError) -> None:
        """Close the native channel the way an error of the bus would."""
        with self._native._lock:
            self._native._error(err)

    def _returned(self, r: _NativeReturned) -> ReturnedMessage:
        return ReturnedMessage(spec.Basic.Return(r.reply_code, r.reply_text, r.exchange,
                                                 r.routing_key), r.properties, r.body)

    def _schedule_return(self, r: _NativeReturned) -> None:
        if self._return_callbacks:
            self._connection._native.add_callback_threadsafe(lambda: self._on_return(r))

    def _on_return(self, r: _NativeReturned) -> None:
        method = spec.Basic.Return(r.reply_code, r.reply_text, r.exchange, r.routing_key)
        for cb in list(self._return_callbacks):
            cb(self, method, r.properties, r.body)

    def confirm_delivery(self) -> None:
        """Publisher confirms: basic_publish raises UnroutableError / NackError."""
        self._sync(self._native.confirm_delivery)
        self._confirm = True

    def add_on_return_callback(self, callback: Callable[..., Any]) -> None:
        """``callback(channel, method, properties, body)`` for returned messages
        (dispatched by process_data_events)."""
        if not self._return_callbacks:
            self._native.add_on_return_callback(self._on_return)
        self._return_callbacks.append(callback)

    def add_on_cancel_callback(self, callback: Callable[..., Any]) -> None:
        """``callback(method_frame)`` when the broker cancels a consumer (its queue was
        deleted); ``method_frame.method`` is a Basic.Cancel."""
        self._cancel_callbacks.append(callback)

    def _on_broker_cancel(self, tag: str) -> None:
        info = self._consumers.pop(tag, None)
        if info is not None:
            info.cancelled = True
        frame_ = self._ok(spec.Basic.Cancel(tag))
        for cb in list(self._cancel_callbacks):
            cb(frame_)

    # getting and settling --------------------------------------------------------------

    def basic_get(self, queue: str = "", auto_ack: bool = False,
                  no_ack: bool | None = None) -> tuple[Any, Any, Any]:
        """``(Basic.GetOk, properties, body)``, or ``(None, None, None)`` when empty."""
        if no_ack is not None:
            _deprecated("basic_get(no_ack=...)", "basic_get(auto_ack=...)")
            auto_ack = no_ack
        name = _short(queue, "queue")
        m: Message | None = self._sync(lambda: self._native.basic_get(name, auto_ack))
        if m is None:
            return None, None, None
        method = spec.Basic.GetOk(m.delivery_tag, m.redelivered, m.exchange, m.routing_key,
                                  m.message_count)
        return method, _copy_props(m.properties), m.body

    def basic_ack(self, delivery_tag: int = 0, multiple: bool = False) -> None:
        self._async(lambda: self._native.basic_ack(delivery_tag, multiple))

    def basic_nack(self, delivery_tag: int = 0, multiple: bool = False,
                   requeue: bool = True) -> None:
        self._async(lambda: self._native.basic_nack(delivery_tag, multiple, requeue))

    def basic_reject(self, delivery_tag: int = 0, requeue: bool = True) -> None:
        self._async(lambda: self._native.basic_reject(delivery_tag, requeue))

    def basic_recover(self, requeue: bool = False) -> None:
        """Redeliver unacked messages (RabbitMQ supports only ``requeue=True``; False is
        its 540 connection error)."""
        self._sync(lambda: self._native.basic_recover(requeue=requeue))

    def basic_qos(self, prefetch_size: int = 0, prefetch_count: int = 0,
                  global_qos: bool = False) -> None:
        self._sync(lambda: self._native.basic_qos(prefetch_size, prefetch_count, global_qos))

    # consuming -------------------------------------------------------------------------

    def basic_consume(self, *args: Any, **kwargs: Any) -> str:
        """``basic_consume(queue, on_message_callback, auto_ack=False, exclusive=False,
        consumer_tag=None, arguments=None)``; the callback gets ``(channel, method,
        properties, body)``. Returns the consumer tag. (pika 0.x's
        ``basic_consume(callback, queue=..., no_ack=...)`` works with a warning.)"""
        if (args and callable(args[0])) or "consumer_callback" in kwargs or "no_ack" in kwargs:
            _deprecated("basic_consume(callback, queue=..., no_ack=...)",
                        "basic_consume(queue, on_message_callback, auto_ack=...)")
            names = ("consumer_callback", "queue", "no_ack", "exclusive", "consumer_tag",
                     "arguments")
            legacy = dict(zip(names, args, strict=False))
            legacy.update(kwargs)
            queue = legacy.get("queue", "")
            callback = legacy.get("consumer_callback")
            auto_ack = bool(legacy.get("no_ack", False))
        else:
            names = ("queue", "on_message_callback", "auto_ack", "exclusive", "consumer_tag",
                     "arguments")
            given = dict(zip(names, args, strict=False))
            for k, v in kwargs.items():
                if k not in names:
                    raise TypeError(f"basic_consume() got an unexpected keyword argument {k!r}")
                if k in given:
                    raise TypeError(f"basic_consume() got multiple values for argument {k!r}")
                given[k] = v
            queue = given.get("queue")
            callback = given.get("on_message_callback")
            auto_ack = bool(given.get("auto_ack", False))
            legacy = given
        if queue is None:
            raise TypeError("basic_consume() missing required argument 'queue'")
        if not callable(callback):
            raise ValueError("callback on_message_callback must be callable; got "
                             f"{callback!r}")
        return self._consume(queue, callback, auto_ack, bool(legacy.get("exclusive", False)),
                             legacy.get("consumer_tag"), legacy.get("arguments"))

    def _consume(self, queue: str, callback: Callable[..., Any], auto_ack: bool,
                 exclusive: bool, consumer_tag: str | None,
                 arguments: dict[str, Any] | None) -> str:
        name = _short(queue, "queue")
        self._before_sync()
        if consumer_tag:
            tag = _short(consumer_tag, "consumer_tag")
            if tag in self._consumers:
                raise exceptions.DuplicateConsumerTag(tag)
        else:
            tag = f"ctag{self.channel_number}.{uuid.uuid4().hex}"
        info = _ConsumerInfo(tag, callback, auto_ack)
        self._consumers[tag] = info

        def deliver(m: Message) -> None:
            if info.cancelled:
                # Delivered after basic_cancel (e.g. later in the batch whose callback
                # cancelled): pika never dispatches these; it rejects the ackable ones.
                if not auto_ack and self._native.is_open:
                    self._async(lambda: self._native.basic_reject(m.delivery_tag, True))
                return
            method = spec.Basic.Deliver(m.consumer_tag, m.delivery_tag, m.redelivered,
                                        m.exchange, m.routing_key)
            info.callback(self, method, _copy_props(m.properties), m.body)

        try:
            self._sync(lambda: self._native.basic_consume(name, deliver, auto_ack, exclusive,
                                                          tag, arguments))
        except BaseException:
            self._consumers.pop(tag, None)
            raise
        return tag

    def basic_cancel(self, consumer_tag: str) -> list[tuple[Any, Any, Any]]:
        """Cancel a consumer. Deliveries not yet dispatched go back to the queue for an
        ackable consumer; for an auto-ack one they are returned as ``(method,
        properties, body)`` tuples, as pika does. An unknown tag is ignored."""
        info = self._consumers.pop(consumer_tag, None)
        if info is None:
            return []
        info.cancelled = True
        pending = self._take_undispatched(consumer_tag) if info.auto_ack else []
        if self._native.is_open:
            self._sync(lambda: self._native.basic_cancel(consumer_tag))
        return [(spec.Basic.Deliver(m.consumer_tag, m.delivery_tag, m.redelivered,
                                    m.exchange, m.routing_key), m.properties, m.body)
                for m in pending]

    def _take_undispatched(self, tag: str) -> list[Message]:
        """Remove this consumer's deliveries still waiting in the connection's queue of
        callbacks (auto-ack: they are already settled, so they are handed back)."""
        native_conn = self._connection._native
        with native_conn._lock:
            items = native_conn._sink.items
            mine = [m for _fn, m in items if isinstance(m, Message)
                    and m.channel is self._native and m.consumer_tag == tag]
            if mine:
                keep = [it for it in items if not (isinstance(it[1], Message)
                                                   and it[1] in mine)]
                items.clear()
                items.extend(keep)
        return mine

    def _cancel_all_consumers(self) -> None:
        for tag in list(self._consumers):
            try:
                self.basic_cancel(tag)
            except exceptions.AMQPError:
                pass
        self._gen = None

    def start_consuming(self) -> None:
        """Dispatch deliveries until every consumer is cancelled (``stop_consuming``)."""
        self._before_sync()
        while self._consumers and self._native.is_open:
            self._connection.process_data_events(time_limit=None)

    def stop_consuming(self, consumer_tag: str | None = None) -> None:
        """Cancel one consumer, or all of them (which ends ``start_consuming``)."""
        if consumer_tag:
            self.basic_cancel(consumer_tag)
        else:
            self._cancel_all_consumers()

    def consume(self, queue: str, auto_ack: bool = False, exclusive: bool = False,
                arguments: dict[str, Any] | None = None,
                inactivity_timeout: float | None = None,
                consumer_tag: str | None = None
                ) -> Generator[tuple[Any, Any, Any], None, None]:
        """Yield ``(method, properties, body)`` per message, ``(None, None, None)`` after
        ``inactivity_timeout`` seconds without one; ends when the consumer is cancelled
        (``cancel()`` or by the broker)."""
        params = (queue, auto_ack, exclusive, arguments, consumer_tag)
        gen = self._gen
        if gen is None:
            gen = _Generator(params, auto_ack)

            def on_message(ch: Any, method: Any, props: Any, body: bytes) -> None:
                gen.pending.append((method, props, body))

            gen.tag = self._consume(queue, on_message, auto_ack, exclusive, consumer_tag,
                                    arguments)
            self._gen = gen
        elif gen.params != params:
            raise ValueError("Consume with different params not allowed on existing queue "
                             "consumer generator")
        while True:
            if gen.pending:
                yield gen.pending.popleft()
                continue
            if self._gen is not gen or gen.tag not in self._consumers or self.is_closed:
                return
            deadline = None if inactivity_timeout is None \
                else time.monotonic() + inactivity_timeout
            while not gen.pending and self._gen is gen and gen.tag in self._consumers \
                    and self.is_open:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    break
                self._connection.process_data_events(time_limit=left)
            if gen.pending:
                continue
            if self._gen is not gen or gen.tag not in self._consumers or self.is_closed:
                return                      # cancelled (by cancel() or by the broker)
            if deadline is not None:
                yield None, None, None

    def get_waiting_message_count(self) -> int:
        """Messages received by the consume() generator but not yet yielded."""
        return len(self._gen.pending) if self._gen is not None else 0

    def cancel(self) -> int:
        """Cancel the consume() generator's consumer; received but unyielded ackable
        messages are nacked back to the queue. Returns how many were."""
        gen, self._gen = self._gen, None
        if gen is None:
            return 0
        pending = list(gen.pending)
        gen.pending.clear()
        self.basic_cancel(gen.tag)
        if gen.auto_ack or not pending or self.is_closed:
            return 0
        for method, _p, _b in pending:
            self.basic_nack(method.delivery_tag, requeue=True)
        return len(pending)

    # closing ---------------------------------------------------------------------------

    def close(self, reply_code: int = 0, reply_text: str = "Normal shutdown") -> None:
        """Cancel the consumers and close the channel (unacked messages are requeued)."""
        if self._native.is_closed:
            raise exceptions.ChannelWrongStateError("Channel is closed.")
        self._cancel_all_consumers()
        self._pending = None
        self._native.close()

    def flow(self, active: bool) -> bool:
        self._before_sync()
        return active

