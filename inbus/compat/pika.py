"""A drop-in look-alike of pika 1.x's client API on top of an in-process Bus: the
BlockingConnection here, the asynchronous adapters (``SelectConnection`` with its
``ioloop``, ``AsyncioConnection``) in ``_pika_select`` / ``_pika_asyncio`` /
``_pika_async_channel``, all sharing the buses, parameters, spec and exceptions below.

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
  over 255 bytes, ``UnsupportedAMQPFieldException`` for an argument or header value pika
  cannot encode (a float, a tuple...), deliveries not yet dispatched are put back on
  ``basic_cancel``. What
  RabbitMQ does but a bus has no notion of is imitated too: ``user_id`` must match the
  connection's user (406). Properties are copied on publish (headers deep-copied), as a
  round trip through the wire would.
- A Bus that closes under open connections (``bus.close()``, :func:`reset`) is RabbitMQ
  shutting down: the next call that pika would do I/O for raises
  ``ConnectionClosedByBroker(320, "CONNECTION_FORCED - ...")``, once
  (``BlockingConnection._take_shutdown``).
- pika's ``basic_get`` sends its frame whatever its channel's state: on a closed channel
  of an open connection that is RabbitMQ's connection error 504 (``CHANNEL_ERROR -
  expected 'channel.open'``), read by the connection's next I/O, as on the wire
  (``BlockingConnection._frame_on_closed_channel``).
- pika 0.x signatures (``basic_consume(callback, queue=..., no_ack=...)``,
  ``exchange_declare(exchange=..., type=...)``, ``basic_get(queue, no_ack=...)``) are
  accepted with a ``DeprecationWarning``.
"""

from __future__ import annotations

import threading
import time
import types
from collections.abc import Callable, Sequence
from typing import Any

from .. import _errors as _e
from .._bus import Bus
from .._connection import Connection as _NativeConnection
from .._message import BasicProperties
from . import pika_exceptions as exceptions
from ._pika_async_channel import Channel as _AsyncChannel
from ._pika_asyncio import AsyncioConnection as _AsyncioConnection
from ._pika_channel import (
    BlockingChannel,
)
from ._pika_ioloop import IOLoop as _IOLoop
from ._pika_select import SelectConnection
from ._pika_spec import (
    ConnectionParameters,
    DeliveryMode,
    ExchangeType,
    PlainCredentials,
    SSLOptions,
    URLParameters,
    frame,
    spec,
)

__all__ = [
    "BasicProperties",
    "BlockingChannel",
    "BlockingConnection",
    "ConnectionParameters",
    "DeliveryMode",
    "ExchangeType",
    "PlainCredentials",
    "SSLOptions",
    "SelectConnection",
    "URLParameters",
    "exceptions",
    "frame",
    "get_bus",
    "reset",
    "spec",
]

__version__ = "1.3.2+inbus"

# --------------------------------------------------------------------------- buses

# What RabbitMQ sends to its open connections when it shuts down (3.10, checked here).
_SHUTDOWN = "CONNECTION_FORCED - broker forced connection closure with reason 'shutdown'"

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
        self._shutdown_read = False  # the bus's shutdown was raised (see _take_shutdown)
        # A connection error the broker sent that pika has not read yet (see
        # _frame_on_closed_channel): the connection looks open until it is read.
        self._lost: exceptions.ConnectionClosedByBroker | None = None
        self._blocked_callbacks: list[Callable[..., Any]] = []

    # state ---------------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        """Also while the broker's close is not read yet (see _take_shutdown), as pika."""
        return self._native.is_open or self._unread_close()

    @property
    def is_closed(self) -> bool:
        return not self.is_open

    @property
    def bus(self) -> Bus:
        """The in-process bus behind this connection (not in pika)."""
        return self._bus

    def _check_open(self) -> None:
        if not self._native.is_open:
            raise exceptions.ConnectionWrongStateError(
                "BlockingConnection is closed" if self._closed_by_client
                else "BlockingConnection was closed by the broker")

    def _unread_close(self) -> bool:
        """The broker closed this connection and pika has not read it yet."""
        return self._lost is not None or not (
            self._shutdown_read or self._closed_by_client or self._native.is_open
            or not self._bus._closing)

    def _take_shutdown(self) -> exceptions.ConnectionClosedByBroker | None:
        """The broker's Connection.Close, read by the first call that pika would do I/O
        for, once: a connection error not read yet (``_lost``), or the bus closed under
        this connection, as a broker that shuts down (``ConnectionClosedByBroker(320,
        "CONNECTION_FORCED ...")``). Later calls find the connection and its channels
        closed (ConnectionWrongStateError, ChannelWrongStateError, or pika's ValueError
        for a closed I/O loop), as in pika."""
        err = self._lost
        if err is not None:
            self._lost = None
        elif not self._unread_close():
            return None
        else:
            self._shutdown_read = True
            err = exceptions.ConnectionClosedByBroker(320, _SHUTDOWN)
        for ch in self._channels:
            ch._pending = None
            ch._forget_consumers()
        self._timers.clear()
        return err

    def _frame_on_closed_channel(self, number: int) -> None:
        """pika's ``basic_get`` sends its frame whatever its channel's state. On a closed
        connection that raises ConnectionWrongStateError. On an open one the channel
        number is free at the broker, so RabbitMQ closes the connection with its error
        504 (``expected 'channel.open'``); pika raises ChannelWrongStateError for the
        call, and the connection's next I/O reads the 504 (a close that is already on
        its way stays what is read). Here the connection closes
        now (its channels' unacked messages go back, its exclusive queues go) and the
        504 is raised once, by the next call that pika would do I/O for. (When a new
        channel has the number, the frame goes to that channel; what pika then makes of
        the reply is its own affair: nothing is done here.)"""
        if not self.is_open:  # (closed, and pika knows it)
            raise exceptions.ConnectionWrongStateError(
                "Attempted to send a frame on closed connection.")
        if self._native.is_open and not any(c.channel_number == number and c._live()
                                            for c in self._channels):
            self._native.close()
            self._lost = exceptions.ConnectionClosedByBroker(
                504, "CHANNEL_ERROR - expected 'channel.open'")
        raise exceptions.ChannelWrongStateError("Channel is closed.")

    def _raise_shutdown(self) -> None:
        err = self._take_shutdown()
        if err is not None:
            raise err

    # channels --------------------------------------------------------------------------

    def channel(self, channel_number: int | None = None) -> BlockingChannel:
        """Open a channel. As pika, the lowest channel number not in use is taken;
        asking for a number in use is RabbitMQ's connection error 504."""
        self._raise_shutdown()
        if not self._native.is_open:
            raise exceptions.ConnectionWrongStateError(
                "Channel allocation requires an open connection: <SelectConnection CLOSED "
                f"transport=None params={self._params!r}>")
        self._channels = [c for c in self._channels if c._live()]
        used = {c.channel_number for c in self._channels}
        if channel_number in used:
            self._native.close()
            raise exceptions.ConnectionClosedByBroker(
                504, "CHANNEL_ERROR - second 'channel.open' seen")
        n = channel_number or next(i for i in range(1, len(used) + 2) if i not in used)
        try:
            native = self._native.channel(n, background=False)
        except _e.ConnectionClosed:
            raise exceptions.ConnectionWrongStateError("BlockingConnection is closed") from None
        ch = BlockingChannel(self, native)
        self._channels.append(ch)
        return ch

    def close(self, reply_code: int = 200, reply_text: str = "Normal shutdown") -> None:
        """Close every channel (putting back undispatched deliveries) and the connection."""
        self._raise_shutdown()
        if self.is_closed:
            raise exceptions.ConnectionWrongStateError(
                f"BlockingConnection.close({reply_code}, {reply_text!r}) called on closed "
                "connection.")
        for ch in list(self._channels):
            ch._take_close()        # pika's close() logs and suppresses ChannelClosed
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
        try:
            ran = self._run_timers() + self._native.process_data_events(0)
            if ran or wait <= 0 or not self._native.is_open:
                return ran
            if self._timers:
                wait = min(wait, max(0.0, min(d for d, _ in self._timers.values())
                                     - time.monotonic()))
            return self._native.process_data_events(min(wait, 0.01))
        except _e.ConnectionClosed:
            if self._native.is_open:
                raise
            return 0  # closed meanwhile (by a callback or another thread): the caller sees it

    def process_data_events(self, time_limit: float | None = 0) -> None:
        """Dispatch pending callbacks (consumers, returns, cancels, threadsafe callbacks,
        timers). ``time_limit=0`` returns at once; a positive limit waits up to that long
        and returns once something was dispatched; ``None`` waits until something was.
        On a closed connection, as pika's: ``ValueError("Timeout closed before call")``
        with a time limit (pika's I/O loop is closed), ConnectionWrongStateError without.

        A channel that an earlier asynchronous method's error closed (basic_ack of an
        unknown tag, basic_publish to a missing exchange) is closed quietly here, as
        when pika reads the broker's Channel.Close during process_data_events: that
        channel's next call raises ChannelWrongStateError."""
        self._events(time_limit, None)

    def _events(self, time_limit: float | None, channel: BlockingChannel | None) -> None:
        """process_data_events; the broker's closes for earlier asynchronous errors
        "arrive" now and end the wait; ``channel``'s own is raised (pika's
        BlockingChannel._process_data_events). So is the bus's shutdown (_take_shutdown),
        also when it happens during the wait."""
        self._raise_shutdown()
        arrived = [c for c in self._channels if c._pending is not None]
        for c in arrived:
            if isinstance(c._pending, exceptions.ConnectionClosedByBroker):
                err = c._take_close()
                for other in arrived:
                    other._take_close()
                assert err is not None
                raise err
        if not self._native.is_open:
            self._check_closed_loop(time_limit)
        if arrived:
            time_limit = 0
        deadline = None if time_limit is None else time.monotonic() + time_limit
        while True:
            left = 0.01 if deadline is None else deadline - time.monotonic()
            if self._pump(left) or left <= 0 or not self._native.is_open:
                break
        self._raise_shutdown()
        for c in arrived:
            err = c._take_close()
            if c is channel and err is not None:
                raise err

    def _check_closed_loop(self, time_limit: float | None) -> None:
        """What pika raises on a closed connection where it needs its (closed) I/O loop
        for a timer."""
        if time_limit is None:
            raise exceptions.ConnectionWrongStateError()
        raise ValueError("Timeout closed before call")

    def sleep(self, duration: float) -> None:
        """Process events for ``duration`` seconds."""
        self._raise_shutdown()
        if not self._native.is_open:
            self._check_closed_loop(duration)
        deadline = time.monotonic() + duration
        while self._native.is_open:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self._events(left, None)

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
        if not callable(callback):
            raise TypeError(f"callback callback must be callable, but got {callback!r}")
        if not self._native.is_open:
            self._check_closed_loop(delay)
        tid = self._next_timer
        self._next_timer += 1
        self._timers[tid] = (time.monotonic() + delay, callback)
        return tid

    def add_on_connection_blocked_callback(
            self, callback: Callable[[BlockingConnection, Any], Any]) -> None:
        """Accepted and kept; never called: an in-process bus has no resource alarm
        that blocks publishers (RabbitMQ's ``Connection.Blocked``)."""
        self._blocked_callbacks.append(callback)

    def add_on_connection_unblocked_callback(
            self, callback: Callable[[BlockingConnection, Any], Any]) -> None:
        """Accepted and kept; never called (see add_on_connection_blocked_callback)."""
        self._blocked_callbacks.append(callback)

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


# ------------------------------------------------------------------ submodules

def _module(name: str, **attrs: Any) -> types.ModuleType:
    m = types.ModuleType(name)
    m.__dict__.update(attrs)
    return m


# What ``import pika.<name>`` / ``from pika.<name> import ...`` give under the
# ``inbus_pika`` fixture (inbus.testing): the submodules user code takes names from.
_SUBMODULES: dict[str, Any] = {
    "exceptions": exceptions,
    "spec": spec,
    "frame": frame,
    "exchange_type": _module("pika.exchange_type", ExchangeType=ExchangeType),
    "delivery_mode": _module("pika.delivery_mode", DeliveryMode=DeliveryMode),
    "credentials": _module("pika.credentials", PlainCredentials=PlainCredentials),
    "connection": _module("pika.connection", ConnectionParameters=ConnectionParameters,
                          URLParameters=URLParameters, SSLOptions=SSLOptions),
    "adapters.blocking_connection": _module(
        "pika.adapters.blocking_connection", BlockingConnection=BlockingConnection,
        BlockingChannel=BlockingChannel),
    "adapters.select_connection": _module(
        "pika.adapters.select_connection", SelectConnection=SelectConnection, IOLoop=_IOLoop),
    "adapters.asyncio_connection": _module(
        "pika.adapters.asyncio_connection", AsyncioConnection=_AsyncioConnection),
    "channel": _module("pika.channel", Channel=_AsyncChannel),
}
adapters = _SUBMODULES["adapters"] = _module(
    "pika.adapters", BlockingConnection=BlockingConnection, SelectConnection=SelectConnection,
    blocking_connection=_SUBMODULES["adapters.blocking_connection"],
    select_connection=_SUBMODULES["adapters.select_connection"],
    asyncio_connection=_SUBMODULES["adapters.asyncio_connection"],
    AsyncioConnection=_AsyncioConnection)
