"""pika look-alike, part 6: the asynchronous connections, ``SelectConnection`` and what
``AsyncioConnection`` (:mod:`inbus.compat._pika_asyncio`) shares with it.

Theory of operation
-------------------
A connection wraps a native :class:`inbus.Connection` (caller's-thread model). Its sink
is the wire (:mod:`inbus.compat._pika_async_channel`): a method is carried out on the
bus when it is sent; its reply, and what the bus delivers, returns or cancels, wait in
the sink, in order, for the loop (:mod:`inbus.compat._pika_ioloop`), which runs them on
its thread with no bus lock held.

Connection lifecycle, as pika 1.x: the constructor returns at once and the loop opens
the connection (``on_open_callback(connection)``, or ``on_open_error_callback(connection,
error)``: a missing vhost is pika's ``ProbableAccessDeniedError``); ``close()`` closes the
channels (each behind its pending methods), then the connection, then calls the close
callbacks with ``ConnectionClosedByClient``. A connection the bus closes (a
connection-scope error, ``Bus.close()``: RabbitMQ's 320 CONNECTION_FORCED) calls every
channel's close callbacks and the connection's with ``ConnectionClosedByBroker``.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .. import _errors as _e
from .._message import Message
from . import pika_exceptions as exceptions
from ._pika_async_channel import Channel, translate
from ._pika_async_methods import _check_rpc_callback
from ._pika_ioloop import IOLoop, _Bell, _WireSink
from ._pika_spec import ConnectionParameters

if TYPE_CHECKING:
    from .._channel import Channel as _NativeChannel
    from .._connection import Connection as _NativeConnection

__all__ = ["IOLoop", "SelectConnection"]

Callback = Callable[..., Any]
INIT, OPEN, CLOSING, CLOSED = "INIT", "OPEN", "CLOSING", "CLOSED"
_SHUTDOWN = (320, "CONNECTION_FORCED - broker forced connection closure with reason "
             "'shutdown'")


class _ChannelError(_e.AMQPError):
    reply_code = 504
    name = "CHANNEL_ERROR"


# --------------------------------------------------------------------------- connections


class _AsyncConnection:
    """What SelectConnection and AsyncioConnection share: pika's ``Connection`` over a
    native connection pumped by a loop (see the module docstring)."""

    def __init__(self, parameters: ConnectionParameters | None,
                 on_open_callback: Callback | None,
                 on_open_error_callback: Callback | None,
                 on_close_callback: Callback | None,
                 internal_connection_workflow: bool) -> None:
        if not internal_connection_workflow:
            raise NotImplementedError(
                "internal_connection_workflow=False (pika's create_connection() "
                "workflow) is not supported by inbus.compat.pika")
        if isinstance(parameters, (list, tuple)):
            parameters = parameters[0] if parameters else None
        self.params = parameters if isinstance(parameters, ConnectionParameters) \
            else ConnectionParameters()
        self._user = getattr(self.params.credentials, "username", "guest")
        self._state = INIT
        self._opened = False
        self._error: exceptions.AMQPError | None = None
        self._native: _NativeConnection | None = None
        self._closing_native = False
        self._connected = False  # the loop ran _connect
        self._channels: dict[int, Channel] = {}
        self._open_callbacks: list[Callback] = []
        self._open_error_callbacks: list[Callback] = []
        self._close_callbacks: list[Callback] = []
        if on_open_error_callback is not None:
            self.add_on_open_error_callback(on_open_error_callback)
        if on_open_callback:
            self.add_on_open_callback(on_open_callback)
        if on_close_callback:
            self.add_on_close_callback(on_close_callback)

    # --- what a loop provides (subclasses) ------------------------------------------------

    def _install_waker(self, native: _NativeConnection) -> None:
        raise NotImplementedError

    def _detach_loop(self) -> None:
        raise NotImplementedError

    # --- state ---------------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        return self._state == OPEN

    @property
    def is_closing(self) -> bool:
        return self._state == CLOSING

    @property
    def is_closed(self) -> bool:
        return self._state == CLOSED

    @property
    def bus(self) -> Any:
        """The in-process bus behind this connection once open (not in pika)."""
        return None if self._native is None else self._native._bus

    publisher_confirms = basic_nack = consumer_cancel_notify = True
    exchange_exchange_bindings = True

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._state} params={self.params!r}>"

    # --- callbacks -----------------------------------------------------------------------

    def add_on_open_callback(self, callback: Callback) -> None:
        """``callback(connection)`` once the connection is open."""
        _require(callback)
        self._open_callbacks.append(callback)

    def add_on_open_error_callback(self, callback: Callback,
                                   remove_default: bool = True) -> None:
        """``callback(connection, exception)`` if it cannot open (without one, the
        error is raised from the loop, as pika's default does)."""
        _require(callback)
        self._open_error_callbacks.append(callback)

    def add_on_close_callback(self, callback: Callback) -> None:
        """``callback(connection, exception)`` once an open connection closed:
        ConnectionClosedByClient, or ConnectionClosedByBroker when the bus closed it."""
        _require(callback)
        self._close_callbacks.append(callback)

    def add_on_connection_blocked_callback(self, callback: Callback) -> None:
        """Accepted; never called (no resource alarm blocks an in-process publisher)."""
        _require(callback)

    def add_on_connection_unblocked_callback(self, callback: Callback) -> None:
        """Accepted; never called (see add_on_connection_blocked_callback)."""
        _require(callback)

    # --- opening -------------------------------------------------------------------------

    def _connect(self) -> None:
        """Runs on the loop: open the native connection, then the open callbacks."""
        if self._state != INIT:  # close() before the loop opened it
            self._state = CLOSED
            self._open_failed(self._error or exceptions.ConnectionOpenAborted())
            return
        from .pika import get_bus
        try:
            native = get_bus(self.params).connection(self.params.virtual_host,
                                                     background=False)
        except _e.AMQPError as err:
            self._state = CLOSED
            self._open_failed(exceptions.ProbableAccessDeniedError(
                f"ConnectionClosedByBroker: ({err.reply_code}) {err.reply_text!r}"))
            return
        except _e.ConnectionClosed as err:
            self._state = CLOSED
            self._open_failed(exceptions.StreamLostError(str(err)))
            return
        self._native = native
        self._install_waker(native)
        self._state = OPEN
        self._opened = True
        for cb in list(self._open_callbacks):
            cb(self)

    def _open_failed(self, err: exceptions.AMQPError) -> None:
        self._detach_loop()
        if not self._open_error_callbacks:
            raise err
        for cb in list(self._open_error_callbacks):
            cb(self, err)

    # --- channels ------------------------------------------------------------------------

    def channel(self, channel_number: int | None = None,
                on_open_callback: Callback | None = None) -> Channel:
        """Open a channel (the lowest free number unless given); returns it at once, in
        the opening state; ``on_open_callback(channel)`` runs once it is open."""
        if not self.is_open:
            raise exceptions.ConnectionWrongStateError(
                f"Channel allocation requires an open connection: {self!r}")
        _check_rpc_callback(on_open_callback)
        n = channel_number or next(i for i in itertools.count(1) if i not in self._channels)
        ch = Channel(self, n, on_open_callback)
        self._channels[n] = ch
        ch._open()
        return ch

    def _open_native_channel(self, n: int) -> _NativeChannel:
        nat = self._native
        assert nat is not None
        if n in nat._channels:
            err = _ChannelError("second 'channel.open' seen", scope="connection",
                                method="channel.open")
            nat._close(err)
            raise err
        return nat.channel(n, background=False)

    def _frame_on_freed_channel(self, method: str) -> None:
        """A method sent on a channel number the broker has freed (pika's basic_get on
        a closed channel): RabbitMQ's connection error 504. RabbitMQ raises it in a
        channel process of its own, so the frames sent right after it are still
        processed: here the error comes once the loop reads this point of the wire."""
        self._push((self._freed_channel_error, method))

    def _freed_channel_error(self, method: str) -> None:
        nat = self._native
        if nat is None or not nat.is_open:
            return
        mark = self._mark(True)
        err = _ChannelError("expected 'channel.open'", scope="connection", method=method)
        nat._close(err)
        self._lost_later(translate(err), mark)

    def _on_channel_cleanup(self, ch: Channel) -> None:
        if self._channels.get(ch.channel_number) is ch:
            del self._channels[ch.channel_number]
        if self._state == CLOSING and not self._channels:
            self._do_close()

    # --- the wire ------------------------------------------------------------------------

    def _push(self, item: tuple[Callable[[Any], Any], Any]) -> None:
        """Append an event for the loop (from any thread); dropped once the connection
        is closed, unless its close is being reported."""
        nat = self._native
        if nat is None:
            return
        with nat._lock:
            if nat.is_open or self._closing_native:
                nat._sink.push(item)

    def _mark(self, snapshot: bool) -> tuple[int, list[Any] | None]:
        """Where the reply of a method about to run goes; with ``snapshot`` also what
        is pending (a connection-scope error clears the sink: see _lost_later)."""
        nat = self._native
        assert nat is not None
        with nat._lock:
            sink: Any = nat._sink
            sink.dropped.clear()
            items = sink.items
            return len(items), ([it for it in items if not isinstance(it, Message)]
                                if snapshot else None)

    def _replay_dropped(self, channel: _NativeChannel | None) -> None:
        """After a channel error: the channel's deliveries the error dropped are still
        dispatched (they were on the wire), before its close."""
        nat = self._native
        assert nat is not None
        with nat._lock:
            sink: Any = nat._sink
            ghosts = [m for m in sink.dropped if m._channel is channel]
            sink.dropped.clear()
            for m in ghosts:
                sink.push((_ghost, m))

    def _insert(self, mark: tuple[int, list[Any] | None],
                item: tuple[Callable[[Any], Any], Any]) -> None:
        """Put a reply where the wire had it: before what its method caused."""
        nat = self._native
        assert nat is not None
        with nat._lock:
            if not nat.is_open:
                return
            sink = nat._sink
            sink.items.insert(min(mark[0], len(sink.items)), item)
            if sink.wanted:
                sink.wanted = False
                sink.cond.notify()

    def _lost_later(self, reason: exceptions.AMQPError,
                    mark: tuple[int, list[Any] | None]) -> None:
        """A method's connection-scope error closed the native connection (and cleared
        its sink): what was on the wire before it is still read, then the close."""
        nat = self._native
        assert nat is not None
        self._closing_native = True
        with nat._lock:
            nat._sink.items.extend(mark[1] or [])
            nat._sink.push((self._lost, reason))

    def _arm(self) -> bool:
        """Before the loop sleeps: True if items are pending, else ask for a bell."""
        nat = self._native
        if nat is None:
            return not self._connected
        with nat._lock:
            sink = nat._sink
            if sink.items:
                return True
            sink.wanted = True
            return False

    def _pump(self, stopping: Callable[[], bool]) -> int:
        """Run the items pending now, one at a time (what a channel error drops must
        still be in the sink: see _WireSink), until ``stopping()``."""
        nat = self._native
        if nat is None:
            if self._connected:
                return 0
            self._connected = True
            self._connect()  # (in the loop's I/O phase, as pika opens a connection)
            return 1
        sink, lock = nat._sink, nat._lock
        with lock:
            budget = len(sink.items)
        ran = 0
        while ran < budget and not stopping():
            with lock:
                if not sink.items:
                    break
                it = sink.items.popleft()
            ran += 1
            if isinstance(it, Message):
                c = it._consumer
                if not c.live and not c.auto_ack and it._channel._putback(it):
                    continue  # (a cancelled consumer's delivery: requeued)
                c.callback(it)
            else:
                it[0](it[1])
        self._check_lost()
        return ran

    def _check_lost(self) -> None:
        nat = self._native
        if nat is not None and nat.is_closed and self._state in (OPEN, CLOSING) \
                and not self._closing_native:
            reason = nat._closed_reason
            self._lost(translate(reason) if reason is not None
                       else exceptions.ConnectionClosedByBroker(*_SHUTDOWN))

    def _lost(self, reason: exceptions.AMQPError) -> None:
        """The bus closed the connection: every channel's close callbacks, then the
        connection's."""
        if self._state == CLOSED:
            return
        self._state = CLOSED
        self._error = reason
        self._detach_loop()
        for ch in list(self._channels.values()):
            ch._on_close_meta(reason)
        self._channels.clear()
        for cb in list(self._close_callbacks):
            cb(self, reason)

    # --- closing -------------------------------------------------------------------------

    def close(self, reply_code: int = 200, reply_text: str = "Normal shutdown") -> None:
        """Close the channels (each after its pending methods), then the connection;
        the close callbacks get ``ConnectionClosedByClient(reply_code, reply_text)``."""
        if self._state in (CLOSING, CLOSED):
            raise exceptions.ConnectionWrongStateError(
                f"Illegal close({reply_code}, {reply_text!r}) request on {self!r} because "
                f"it was called while connection state={self._state}.")
        if self._state == INIT:
            self._state = CLOSING
            self._error = exceptions.ConnectionOpenAborted(
                "Connection.close() called before connection finished opening: "
                f"prev_state=INIT ({reply_code}): {reply_text!r}")
            return
        for ch in list(self._channels.values()):
            if not (ch.is_closing or ch.is_closed):
                ch.close(reply_code, reply_text)
        self._state = CLOSING
        self._error = exceptions.ConnectionClosedByClient(reply_code, reply_text)
        if not self._channels:
            self._do_close()

    def _do_close(self) -> None:
        """Every channel is closed: close the native connection; the close callbacks
        run from the loop."""
        nat = self._native
        if nat is None or self._closing_native:
            return
        self._closing_native = True
        nat.close()
        with nat._lock:
            nat._sink.push((self._closed, None))

    def _closed(self, _arg: Any) -> None:
        if self._state == CLOSED:
            return
        self._state = CLOSED
        self._detach_loop()
        for cb in list(self._close_callbacks):
            cb(self, self._error)

    def update_secret(self, new_secret: str, reason: str,
                      callback: Callback | None = None) -> None:
        """Accepted (nothing authenticates in process)."""
        if not self.is_open:
            raise exceptions.ConnectionWrongStateError(
                f"Secret update requires an open connection: {self!r}")


def _ghost(m: Message) -> None:
    m._consumer.callback(m)


def _require(callback: Any) -> None:
    if not callable(callback):
        raise TypeError(f"callback callback must be callable, but got {callback!r}")


class SelectConnection(_AsyncConnection):
    """pika 1.x's ``SelectConnection`` over an in-process bus.

    ``SelectConnection(parameters=None, on_open_callback=None,
    on_open_error_callback=None, on_close_callback=None, custom_ioloop=None)``;
    ``connection.ioloop.start()`` runs it (see the module docstring). Several
    connections may share one ``custom_ioloop``.
    """

    def __init__(self, parameters: ConnectionParameters | None = None,
                 on_open_callback: Callback | None = None,
                 on_open_error_callback: Callback | None = None,
                 on_close_callback: Callback | None = None,
                 custom_ioloop: IOLoop | None = None,
                 internal_connection_workflow: bool = True) -> None:
        if custom_ioloop is not None and not isinstance(custom_ioloop, IOLoop):
            raise TypeError("custom_ioloop must be an inbus.compat.pika IOLoop (pika's "
                            "nbio_interface.AbstractIOServices is not supported), not "
                            f"{type(custom_ioloop).__name__}")
        self._ioloop = custom_ioloop if custom_ioloop is not None else IOLoop()
        super().__init__(parameters, on_open_callback, on_open_error_callback,
                         on_close_callback, internal_connection_workflow)
        self._ioloop._attach(self)
        self._ioloop._ring()

    @property
    def ioloop(self) -> IOLoop:
        return self._ioloop

    def _install_waker(self, native: _NativeConnection) -> None:
        native._sink = _WireSink(native._lock, _Bell(self._ioloop._ring))

    def _detach_loop(self) -> None:
        self._ioloop._detach(self)
