"""pika look-alike, part 4: the asynchronous ``pika.channel.Channel`` that
:class:`inbus.compat.pika.SelectConnection` and ``AsyncioConnection`` hand out.

Theory of operation
-------------------
The connection's sink (:mod:`inbus._dispatch`) stands for the wire from the broker to
the client. A method is carried out on the bus when it is *sent* (the broker processes
what it receives in order, and the bus at once), and what the broker answers waits in
the sink, in order, for the I/O loop, which runs the callbacks on its thread with no bus
lock held: a method's reply goes in ahead of the deliveries, returns and cancels the
method caused, and a channel error's close behind the deliveries that were already on
their way (the channel's close took them from the sink: ``_WireSink`` keeps them for
this). So the bus sees methods in the order pika sends them, and callbacks run in the
order pika receives the frames from RabbitMQ.

The client-side rules are pika 1.x's (``pika/channel.py``), probed against RabbitMQ
3.10 (the differential tests in ``tests/diff/test_pika_select_diff.py`` compare them):

- Synchronous methods (declare, bind, qos, consume, cancel, confirm, close...) wait in
  the channel's ``_blocked`` queue while an earlier one awaits its reply; ``basic_publish``,
  ``basic_ack / nack / reject`` and ``basic_get`` go out at once, so a publish may
  overtake a declare made before it, as with pika.
- Passing no ``callback`` to a method with a nowait flag (``exchange_declare``,
  ``queue_declare``, ``queue_bind``, ``basic_cancel``...) sends it nowait: no reply, the
  channel does not block. ``basic_qos``, ``basic_recover`` and ``queue_unbind`` always
  wait for their reply.
- An error closes the channel asynchronously: its close callbacks get ``(channel,
  ChannelClosedByBroker(code, text))``, methods sent before the close was seen are
  dropped, as the broker drops them, and later calls raise ``ChannelWrongStateError``.
  A connection-scope error (540, 530, 504) closes the connection: every channel's close
  callbacks get the ``ConnectionClosedByBroker``, then the connection's.
- Consumer tags ``ctag<n>.<hex>`` are made client-side; a delivery for a consumer
  cancelled by the client is not dispatched (an ackable one is rejected, requeued).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .. import _errors as _e
from .._message import BasicProperties, Message
from .._message import ReturnedMessage as _NativeReturned
from . import pika_exceptions as exceptions
from ._pika_async_methods import ChannelMethods, _check_rpc_callback
from ._pika_spec import Method, spec
from ._pika_wire import copy_props as _copy_props

if TYPE_CHECKING:
    from .._channel import Channel as _NativeChannel
    from ._pika_select import _AsyncConnection

__all__ = ["Channel", "translate"]

Callback = Callable[..., Any]
OPENING, OPEN, CLOSING, CLOSED = "OPENING", "OPEN", "CLOSING", "CLOSED"


def translate(err: _e.AMQPError) -> exceptions.AMQPError:
    """A bus error as pika reports the broker's close."""
    if err.scope == "connection":
        return exceptions.ConnectionClosedByBroker(err.reply_code, err.reply_text)
    return exceptions.ChannelClosedByBroker(err.reply_code, err.reply_text)


class Channel(ChannelMethods):
    """pika 1.x's asynchronous ``pika.channel.Channel`` over a native inbus channel.

    Made by ``connection.channel(on_open_callback=...)``; every method returns at once
    and its reply reaches ``callback(method_frame)`` from the connection's I/O loop (see
    the module docstring for the ordering rules). ``channel_number`` and ``int(channel)``
    give the number; ``is_open / is_opening / is_closing / is_closed`` the state.
    """

    def __init__(self, connection: _AsyncConnection, channel_number: int,
                 on_open_callback: Callback | None) -> None:
        if not isinstance(channel_number, int):
            raise exceptions.InvalidChannelNumber(channel_number)
        _check_rpc_callback(on_open_callback)
        self.channel_number = channel_number
        self.connection = connection
        self.flow_active = True
        self._native: _NativeChannel | None = None
        self._state = CLOSED
        self._on_open = on_open_callback
        self._blocking = False
        self._blocked: deque[tuple[Callable[[], Any], Callback | None, bool,
                                   Callback | None]] = deque()
        self._close_sent = False
        self._dead = False  # closed by the broker; the close not read yet
        self._consumers: dict[str, Callback] = {}
        self._cancelled: set[str] = set()
        self._noack: set[str] = set()
        self._close_callbacks: list[Callback] = []
        self._cancel_callbacks: list[Callback] = []
        self._return_callbacks: list[Callback] = []
        self._ack_nack_callbacks: list[Callback] = []
        self._getempty_callbacks: list[Callback] = []
        self._getok: Callback | None = None
        self._closing_reason: exceptions.AMQPError | None = None
        self._in_publish = False

    # --- state ---------------------------------------------------------------------------

    def __int__(self) -> int:
        return self.channel_number

    def __repr__(self) -> str:
        return f"<Channel number={self.channel_number} {self._state} conn={self.connection!r}>"

    @property
    def is_open(self) -> bool:
        return self._state == OPEN

    @property
    def is_opening(self) -> bool:
        return self._state == OPENING

    @property
    def is_closing(self) -> bool:
        return self._state == CLOSING

    @property
    def is_closed(self) -> bool:
        return self._state == CLOSED

    @property
    def consumer_tags(self) -> list[str]:
        return list(self._consumers)

    def _raise_if_not_open(self) -> None:
        if self._state == OPEN:
            return
        if self._state == OPENING:
            raise exceptions.ChannelWrongStateError(
                "Channel is opening, but is not usable yet.")
        if self._state == CLOSING:
            raise exceptions.ChannelWrongStateError("Channel is closing.")
        raise exceptions.ChannelWrongStateError("Channel is closed.")

    # --- callbacks registration ----------------------------------------------------------

    def add_on_close_callback(self, callback: Callback) -> None:
        """``callback(channel, reason)``: ChannelClosedByBroker, ChannelClosedByClient,
        or the connection's exception when the connection closed."""
        self._close_callbacks.append(callback)

    def add_on_cancel_callback(self, callback: Callback) -> None:
        """``callback(method_frame)`` (a Basic.Cancel) when the broker cancels a
        consumer (its queue was deleted)."""
        self._cancel_callbacks.append(callback)

    def add_on_return_callback(self, callback: Callback) -> None:
        """``callback(channel, Basic.Return, properties, body)`` for returned messages."""
        self._return_callbacks.append(callback)

    def add_on_flow_callback(self, callback: Callback) -> None:
        """Accepted; never called (RabbitMQ does not send Channel.Flow either)."""

    def add_callback(self, callback: Callback, replies: Any, one_shot: bool = True) -> None:
        """Only ``[spec.Basic.GetEmpty]`` is supported (pika's way to hear of an empty
        basic_get); ``callback(method_frame)``."""
        replies = list(replies)
        if replies != [spec.Basic.GetEmpty]:
            raise NotImplementedError(
                "inbus.compat.pika Channel.add_callback supports only "
                f"[spec.Basic.GetEmpty] replies, not {replies!r}")
        self._getempty_callbacks.append(callback if not one_shot else _OneShot(
            callback, self._getempty_callbacks))

    # --- the machinery: sending and replies ----------------------------------------------

    def _open(self) -> None:
        self._state = OPENING
        self._rpc(self._do_open, self._on_openok, True)

    def _do_open(self) -> None:
        self._native = self.connection._open_native_channel(self.channel_number)
        self._native.add_on_cancel_callback(self._on_broker_cancel)
        self._native.add_on_return_callback(self._on_native_return)

    def _on_openok(self, _frame: Any) -> None:
        if self._state == CLOSING:
            return  # closed before it opened: pika suppresses the open callback
        self._state = OPEN
        if self._on_open is not None:
            self._on_open(self)

    def _rpc(self, op: Callable[[], Any], callback: Callback | None, wait: bool,
             first: Callback | None = None) -> None:
        """Send a synchronous method (queued while another awaits its reply). ``op``
        does the work and returns the reply method; ``first(frame)`` runs before the
        next queued method is sent, ``callback(frame)`` after."""
        if self._state == CLOSED:
            self._raise_if_not_open()
        if self._blocking:
            self._blocked.append((op, callback, wait, first))
            return
        self._blocking = wait
        self._execute(op, (callback, first) if wait else None, rpc=True)

    def _send(self, op: Callable[[], Any]) -> None:
        """Send an asynchronous method (never queued behind a synchronous one)."""
        self._raise_if_not_open()
        self._execute(op, None)

    def _send_unchecked(self, op_on: Callable[[Channel], Callable[[], Any]]) -> None:
        """Send a method without checking this channel's state, as pika sends Basic.Get:
        on a closing channel whose Close (ours or the broker's) is on the wire, the
        broker ignores it; on a closed one, whose number the broker freed, the frame
        reaches whatever channel now has that number, else it is RabbitMQ's connection
        error 504 ``expected 'channel.open'`` (which RabbitMQ raises a moment later:
        see ``_frame_on_freed_channel`` and the README's limits)."""
        conn = self.connection
        if conn.is_closed:
            raise exceptions.ConnectionWrongStateError(
                "Attempted to send a frame on closed connection.")
        if self._state != CLOSED:
            if not (self._close_sent or self._dead):
                self._execute(op_on(self), None)
            return
        if conn._closing_native:
            return  # (sent after Connection.Close: the broker ignores it)
        other = conn._channels.get(self.channel_number)
        if other is not None and other is not self and other._native is not None:
            other._execute(op_on(other), None)
        else:
            conn._frame_on_freed_channel("basic.get")

    def _execute(self, op: Callable[[], Any], reply_to: Any, rpc: bool = False) -> None:
        """The broker processes a sent method now (in order: methods are executed as
        they are sent); its reply goes to the wire ahead of what it caused. A channel
        the broker closed drops what is sent until its close is read."""
        if self._state == CLOSED or (self._dead and op != self._do_close):
            return
        conn = self.connection
        mark = conn._mark(rpc)
        try:
            reply = op()
        except _e.AMQPError as err:
            self._dead = True
            reason = translate(err)
            if isinstance(reason, exceptions.ConnectionClosedByBroker):
                conn._lost_later(reason, mark)
            else:
                conn._replay_dropped(self._native)
                conn._push((self._on_close_from_broker, reason))
            return
        except (_e.ChannelClosed, _e.ConnectionClosed):
            return  # the bus closed the connection: the loop reports it (_check_lost)
        if reply_to is not None:
            conn._insert(mark, (self._on_reply, (reply, reply_to)))

    def _on_reply(self, arg: tuple[Any, tuple[Callback | None, Callback | None]]) -> None:
        reply, (callback, first) = arg
        if self._state == CLOSED:
            return
        frame = Method(self.channel_number, reply)
        if first is not None:
            first(frame)
        self._blocking = False
        while self._blocked and not self._blocking:
            self._rpc(*self._blocked.popleft())
        if callback is not None:
            callback(frame)

    def _on_close_from_broker(self, reason: exceptions.AMQPError) -> None:
        if self._state == CLOSED:
            return
        self._closing_reason = reason
        if self._state == CLOSING and self._close_sent:
            return  # our Channel.Close is on its way: its CloseOk ends the channel
        self._blocked.clear()
        self._transition_to_closed()

    def _on_close_meta(self, reason: exceptions.AMQPError) -> None:
        """The connection closed under this channel."""
        if self._state != CLOSED:
            self._closing_reason = reason
            self._blocked.clear()
            self._transition_to_closed()

    def _transition_to_closed(self) -> None:
        self._state = CLOSED
        reason = self._closing_reason
        try:
            for cb in list(self._close_callbacks):
                cb(self, reason)
        finally:
            self._consumers.clear()
            self._close_callbacks.clear()
            self.connection._on_channel_cleanup(self)

    # --- deliveries and other broker-initiated events -------------------------------------

    def _deliverer(self, tag: str) -> Callable[[Message], None]:
        def deliver(m: Message) -> None:
            if tag in self._cancelled:
                if self._state == OPEN and tag not in self._noack:
                    self.basic_reject(m.delivery_tag)
                return
            cb = self._consumers.get(tag)
            if cb is None:
                return
            cb(self, spec.Basic.Deliver(tag, m.delivery_tag, m.redelivered, m.exchange,
                                        m.routing_key),
               _copy_props(m.properties) or BasicProperties(), m.body)
        return deliver

    def _on_broker_cancel(self, tag: str) -> None:
        if self._state == CLOSED:
            return
        if tag not in self._cancelled:
            self._forget_consumer(tag)
        frame = Method(self.channel_number, spec.Basic.Cancel(tag, nowait=True))
        for cb in list(self._cancel_callbacks):
            cb(frame)

    def _forget_consumer(self, tag: str) -> None:
        self._noack.discard(tag)
        self._consumers.pop(tag, None)
        self._cancelled.discard(tag)

    def _on_native_return(self, r: _NativeReturned) -> None:
        if self._in_publish:  # (confirm mode: the bus calls it within basic_publish)
            self.connection._push((self._on_native_return, r))
            return
        if self._state == CLOSED:
            return
        method = spec.Basic.Return(r.reply_code, r.reply_text, r.exchange, r.routing_key)
        for cb in list(self._return_callbacks):
            cb(self, method, _copy_props(r.properties) or BasicProperties(), r.body)

    def _on_native_confirm(self, seq: int, acked: bool) -> None:
        # (within basic_publish, or from the storage committer's thread)
        self.connection._push((self._dispatch_confirm, (seq, acked)))

    def _dispatch_confirm(self, arg: tuple[int, bool]) -> None:
        seq, acked = arg
        if self._state == CLOSED:
            return
        method = spec.Basic.Ack(seq, False) if acked else spec.Basic.Nack(seq, False, True)
        frame = Method(self.channel_number, method)
        for cb in list(self._ack_nack_callbacks):
            cb(frame)

    def _on_get(self, m: Message | None) -> None:
        cb, self._getok = self._getok, None
        if self._state == CLOSED:
            return
        if m is None:
            frame = Method(self.channel_number, spec.Basic.GetEmpty(cluster_id=""))
            for empty in list(self._getempty_callbacks):
                empty(frame)
        elif cb is not None:
            cb(self, spec.Basic.GetOk(m.delivery_tag, m.redelivered, m.exchange,
                                      m.routing_key, m.message_count),
               _copy_props(m.properties) or BasicProperties(), m.body)

    @property
    def _nat(self) -> _NativeChannel:
        assert self._native is not None
        return self._native

    # --- closing -------------------------------------------------------------------------

    def close(self, reply_code: int = 0, reply_text: str = "Normal shutdown") -> None:
        """Cancel the consumers and close the channel; the close callbacks get
        ``ChannelClosedByClient(reply_code, reply_text)`` once it is closed."""
        if self._state in (CLOSED, CLOSING):
            self._raise_if_not_open()
        self._closing_reason = exceptions.ChannelClosedByClient(reply_code, reply_text)
        for tag in list(self._consumers):
            if tag not in self._cancelled:
                self.basic_cancel(tag)
        self._state = CLOSING
        self._rpc(self._do_close, lambda _f: self._transition_to_closed(), True)

    def _do_close(self) -> Any:
        self._close_sent = True
        if self._native is not None and self._native.is_open:
            self._native.close()
        return _CloseOk()

    # --- flow ----------------------------------------------------------------------------

    def flow(self, active: bool, callback: Callable[[bool], Any] | None = None) -> None:
        """Channel.Flow, as RabbitMQ answers it: ``active=True`` is accepted and
        ``callback(True)`` runs; ``active=False`` is its connection error 540
        ``NOT_IMPLEMENTED - active=false`` (:meth:`inbus.Channel.flow`)."""
        self._raise_if_not_open()
        _check_rpc_callback(callback)

        def op() -> Any:
            self._nat.flow(active)
            return spec.Channel.FlowOk(True)

        def on_flow_ok(frame: Any) -> None:
            self.flow_active = frame.method.active
            if callback is not None:
                callback(frame.method.active)
        self._rpc(op, on_flow_ok, True)



class _CloseOk:
    NAME = "Channel.CloseOk"

    def __repr__(self) -> str:
        return "<Channel.CloseOk>"


class _OneShot:
    """A callback removed from its list once it ran (``add_callback(one_shot=True)``)."""

    def __init__(self, fn: Callback, owner: list[Callback]) -> None:
        self.fn = fn
        self.owner = owner

    def __call__(self, *args: Any) -> Any:
        if self in self.owner:
            self.owner.remove(self)
        return self.fn(*args)
