"""pika look-alike, part 5: the AMQP methods of the asynchronous ``pika.channel.Channel``
(a mixin of :class:`inbus.compat._pika_async_channel.Channel`, whose docstring tells how
they are sent, queued, run and answered). Each method checks its arguments as pika does
(raising at the call), then hands an operation on the native channel to ``_rpc`` (a
synchronous method: its reply reaches ``callback(frame)``) or ``_send`` (an asynchronous
one)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .. import _errors as _e
from .._message import BasicProperties, Message
from . import pika_exceptions as exceptions
from ._pika_spec import spec
from ._pika_wire import copy_props as _copy_props
from ._pika_wire import encodable as _encodable
from ._pika_wire import short as _short

if TYPE_CHECKING:
    from .._channel import Channel as _NativeChannel
    from ._pika_select import _AsyncConnection

Callback = Callable[..., Any]


def _check_rpc_callback(callback: Callback | None) -> bool:
    """pika's ``validators.rpc_completion_callback``: True (nowait) for None."""
    if callback is None:
        return True
    if callable(callback):
        return False
    raise TypeError("completion callback must be callable if not None")


def _require_callback(callback: Any, name: str = "callback") -> None:
    if not callable(callback):
        raise TypeError(f"callback {name} must be callable, but got {callback!r}")


def _require_string(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str or unicode str, but got {value!r}")
    return _short(value, name)


class ChannelMethods:
    """Exchange, queue and basic methods (state and machinery live on the Channel)."""

    channel_number: int
    connection: _AsyncConnection
    _consumers: dict[str, Callback]
    _cancelled: set[str]
    _noack: set[str]
    _getok: Callback | None
    _ack_nack_callbacks: list[Callback]
    _in_publish: bool

    @property
    def _nat(self) -> _NativeChannel:
        raise NotImplementedError

    def _raise_if_not_open(self) -> None:
        raise NotImplementedError

    def _rpc(self, op: Callable[[], Any], callback: Callback | None, wait: bool,
             first: Callback | None = None) -> None:
        raise NotImplementedError

    def _send(self, op: Callable[[], Any]) -> None:
        raise NotImplementedError

    def _send_unchecked(self, op_on: Callable[[Any], Callable[[], Any]]) -> None:
        raise NotImplementedError

    def _deliverer(self, tag: str) -> Callable[[Message], None]:
        raise NotImplementedError

    def _forget_consumer(self, tag: str) -> None:
        raise NotImplementedError

    def _on_native_confirm(self, seq: int, acked: bool) -> None:
        raise NotImplementedError

    def _on_get(self, m: Message | None) -> None:
        raise NotImplementedError

    # --- exchanges -----------------------------------------------------------------------

    def exchange_declare(self, exchange: str, exchange_type: Any = "direct",
                         passive: bool = False, durable: bool = False,
                         auto_delete: bool = False, internal: bool = False,
                         arguments: dict[str, Any] | None = None,
                         callback: Callback | None = None) -> None:
        """Exchange.Declare; ``callback(frame)`` with Exchange.DeclareOk."""
        name = _require_string(exchange, "exchange")
        self._raise_if_not_open()
        nowait = _check_rpc_callback(callback)
        xtype = str(getattr(exchange_type, "value", exchange_type))
        args = _encodable(arguments)

        def op() -> Any:
            self._nat.exchange_declare(name, xtype, passive, durable, auto_delete, internal,
                                       args)
            return spec.Exchange.DeclareOk()
        self._rpc(op, callback, not nowait)

    def exchange_delete(self, exchange: str | None = None, if_unused: bool = False,
                        callback: Callback | None = None) -> None:
        self._raise_if_not_open()
        nowait = _check_rpc_callback(callback)
        name = _short(exchange, "exchange")

        def op() -> Any:
            self._nat.exchange_delete(name, if_unused)
            return spec.Exchange.DeleteOk()
        self._rpc(op, callback, not nowait)

    def exchange_bind(self, destination: str, source: str, routing_key: str = "",
                      arguments: dict[str, Any] | None = None,
                      callback: Callback | None = None) -> None:
        self._raise_if_not_open()
        d = _require_string(destination, "destination")
        s = _require_string(source, "source")
        nowait = _check_rpc_callback(callback)
        rk, args = _short(routing_key, "routing_key"), _encodable(arguments)

        def op() -> Any:
            self._nat.exchange_bind(d, s, rk, args)
            return spec.Exchange.BindOk()
        self._rpc(op, callback, not nowait)

    def exchange_unbind(self, destination: str | None = None, source: str | None = None,
                        routing_key: str = "", arguments: dict[str, Any] | None = None,
                        callback: Callback | None = None) -> None:
        self._raise_if_not_open()
        nowait = _check_rpc_callback(callback)
        d, s = _short(destination, "destination"), _short(source, "source")
        rk, args = _short(routing_key, "routing_key"), _encodable(arguments)

        def op() -> Any:
            self._nat.exchange_unbind(d, s, rk, args)
            return spec.Exchange.UnbindOk()
        self._rpc(op, callback, not nowait)

    # --- queues --------------------------------------------------------------------------

    def queue_declare(self, queue: str, passive: bool = False, durable: bool = False,
                      exclusive: bool = False, auto_delete: bool = False,
                      arguments: dict[str, Any] | None = None,
                      callback: Callback | None = None) -> None:
        """Queue.Declare; ``callback(frame)`` with ``frame.method`` a Queue.DeclareOk
        (``.queue .message_count .consumer_count``)."""
        name = _require_string(queue, "queue")
        self._raise_if_not_open()
        nowait = _check_rpc_callback(callback)
        args = _encodable(arguments)

        def op() -> Any:
            r = self._nat.queue_declare(name, passive, durable, exclusive, auto_delete, args)
            return spec.Queue.DeclareOk(r.queue, r.message_count, r.consumer_count)
        self._rpc(op, callback, not nowait)

    def queue_delete(self, queue: str, if_unused: bool = False, if_empty: bool = False,
                     callback: Callback | None = None) -> None:
        self._raise_if_not_open()
        name = _require_string(queue, "queue")
        nowait = _check_rpc_callback(callback)

        def op() -> Any:
            return spec.Queue.DeleteOk(self._nat.queue_delete(name, if_unused, if_empty))
        self._rpc(op, callback, not nowait)

    def queue_purge(self, queue: str, callback: Callback | None = None) -> None:
        self._raise_if_not_open()
        name = _require_string(queue, "queue")
        nowait = _check_rpc_callback(callback)

        def op() -> Any:
            return spec.Queue.PurgeOk(self._nat.queue_purge(name))
        self._rpc(op, callback, not nowait)

    def queue_bind(self, queue: str, exchange: str, routing_key: str | None = None,
                   arguments: dict[str, Any] | None = None,
                   callback: Callback | None = None) -> None:
        name = _require_string(queue, "queue")
        x = _require_string(exchange, "exchange")
        self._raise_if_not_open()
        nowait = _check_rpc_callback(callback)
        rk = name if routing_key is None else _short(routing_key, "routing_key")
        args = _encodable(arguments)

        def op() -> Any:
            self._nat.queue_bind(name, x, rk, args)
            return spec.Queue.BindOk()
        self._rpc(op, callback, not nowait)

    def queue_unbind(self, queue: str, exchange: str | None = None,
                     routing_key: str | None = None,
                     arguments: dict[str, Any] | None = None,
                     callback: Callback | None = None) -> None:
        self._raise_if_not_open()
        name = _require_string(queue, "queue")
        _check_rpc_callback(callback)
        x = _short(exchange, "exchange")
        rk = name if routing_key is None else _short(routing_key, "routing_key")
        args = _encodable(arguments)

        def op() -> Any:
            self._nat.queue_unbind(name, x, rk, args)
            return spec.Queue.UnbindOk()
        self._rpc(op, callback, True)

    # --- basic ---------------------------------------------------------------------------

    def basic_qos(self, prefetch_size: int = 0, prefetch_count: int = 0,
                  global_qos: bool = False, callback: Callback | None = None) -> None:
        """Basic.Qos (always waits for its Basic.QosOk, as in pika)."""
        self._raise_if_not_open()
        _check_rpc_callback(callback)
        for n, v in (("prefetch_size", prefetch_size), ("prefetch_count", prefetch_count)):
            if int(v) < 0:
                raise ValueError(f"{n} must be >= 0, but got {v}")

        def op() -> Any:
            self._nat.basic_qos(prefetch_size, prefetch_count, global_qos)
            return spec.Basic.QosOk()
        self._rpc(op, callback, True)

    def basic_consume(self, queue: str, on_message_callback: Callback,
                      auto_ack: bool = False, exclusive: bool = False,
                      consumer_tag: str | None = None,
                      arguments: dict[str, Any] | None = None,
                      callback: Callback | None = None) -> str:
        """Start a consumer; returns its tag. ``on_message_callback(channel,
        Basic.Deliver, BasicProperties, body)``; ``callback(frame)`` gets the
        Basic.ConsumeOk."""
        name = _require_string(queue, "queue")
        _require_callback(on_message_callback, "on_message_callback")
        self._raise_if_not_open()
        _check_rpc_callback(callback)
        tag = _short(consumer_tag, "consumer_tag") if consumer_tag else \
            f"ctag{self.channel_number}.{uuid.uuid4().hex}"
        if tag in self._consumers or tag in self._cancelled:
            raise exceptions.DuplicateConsumerTag(tag)
        args = _encodable(arguments)
        if auto_ack:
            self._noack.add(tag)
        self._consumers[tag] = on_message_callback
        deliver = self._deliverer(tag)

        def op() -> Any:
            self._nat.basic_consume(name, deliver, auto_ack, exclusive, tag, args)
            return spec.Basic.ConsumeOk(tag)
        self._rpc(op, callback, True)
        return tag

    def basic_cancel(self, consumer_tag: str = "", callback: Callback | None = None) -> None:
        """Cancel a consumer; ``callback(frame)`` gets the Basic.CancelOk (without one
        the cancel is sent nowait). Deliveries that arrive meanwhile are not dispatched
        (ackable ones are rejected back to the queue), as pika does."""
        _require_string(consumer_tag, "consumer_tag")
        self._raise_if_not_open()
        nowait = _check_rpc_callback(callback)
        if consumer_tag in self._cancelled or consumer_tag not in self._consumers:
            return
        if nowait:
            del self._consumers[consumer_tag]
        self._cancelled.add(consumer_tag)

        def op() -> Any:
            # (what was delivered meanwhile is on the wire: rejected as it is read)
            self._nat._cancel(consumer_tag, putback=False)
            return spec.Basic.CancelOk(consumer_tag)
        self._rpc(op, lambda _f: self._forget_consumer(consumer_tag), not nowait,
                  first=callback)

    def basic_publish(self, exchange: str, routing_key: str, body: str | bytes,
                      properties: BasicProperties | None = None,
                      mandatory: bool = False) -> None:
        """Publish (sent at once, not queued behind synchronous methods)."""
        self._raise_if_not_open()
        x = _short(exchange, "exchange", required=True)
        rk = _short(routing_key, "routing_key", required=True)
        if isinstance(body, str):
            body = body.encode("utf-8")
        elif not isinstance(body, bytes):
            raise TypeError(f"body must be str or bytes, not {type(body).__name__}")
        props = _copy_props(properties, publish=True)
        user = self.connection._user
        payload = body

        def op() -> None:
            if props is not None and props.user_id is not None and props.user_id != user:
                raise _e.PreconditionFailed(
                    f"user_id property set to '{props.user_id}' but authenticated user "
                    f"was '{user}'", method="basic.publish")
            self._in_publish = True
            try:
                self._nat.basic_publish(x, rk, payload, props, mandatory)
            finally:
                self._in_publish = False
        self._send(lambda: self._closing_error(op))

    def _closing_error(self, op: Callable[[], Any]) -> Any:
        """Run ``op``; an error it raises that the native channel did not turn into a
        close yet (a check made here, not by the bus) closes the channel first."""
        try:
            return op()
        except _e.AMQPError as err:
            nat = self._nat
            if nat.is_open:
                with nat._lock:
                    nat._error(err)
            raise

    def basic_get(self, queue: str, callback: Callback, auto_ack: bool = False) -> None:
        """``callback(channel, Basic.GetOk, properties, body)``; an empty queue calls the
        callbacks given to ``add_callback(cb, [spec.Basic.GetEmpty])``."""
        name = _require_string(queue, "queue")
        _require_callback(callback)
        if self._getok is not None:
            raise exceptions.DuplicateGetOkCallback()
        self._getok = callback  # (pika sends Basic.Get whatever the channel's state)

        def get_on(ch: Any) -> Callable[[], None]:
            return lambda: ch.connection._push((ch._on_get, ch._nat.basic_get(name,
                                                                             auto_ack)))
        self._send_unchecked(get_on)

    def basic_ack(self, delivery_tag: int = 0, multiple: bool = False) -> None:
        self._send(lambda: self._nat.basic_ack(delivery_tag, multiple))

    def basic_nack(self, delivery_tag: int = 0, multiple: bool = False,
                   requeue: bool = True) -> None:
        self._send(lambda: self._nat.basic_nack(delivery_tag, multiple, requeue))

    def basic_reject(self, delivery_tag: int = 0, requeue: bool = True) -> None:
        self._raise_if_not_open()
        if not isinstance(delivery_tag, int):
            raise TypeError("delivery_tag must be an integer")
        self._send(lambda: self._nat.basic_reject(delivery_tag, requeue))

    def basic_recover(self, requeue: bool = False, callback: Callback | None = None) -> None:
        """Basic.Recover; RabbitMQ supports only ``requeue=True`` (False is its 540
        connection error, here too)."""
        self._raise_if_not_open()
        _check_rpc_callback(callback)

        def op() -> Any:
            self._nat.basic_recover(requeue=requeue)
            return spec.Basic.RecoverOk()
        self._rpc(op, callback, True)

    def tx_select(self, callback: Callback | None = None) -> None:
        """Tx.Select: the channel becomes transactional (:meth:`inbus.Channel.tx_select`);
        ``callback(frame)`` gets the Tx.SelectOk (it always waits, as in pika)."""
        self._tx("tx_select", spec.Tx.SelectOk, callback)

    def tx_commit(self, callback: Callback | None = None) -> None:
        """Tx.Commit; ``callback(frame)`` gets the Tx.CommitOk."""
        self._tx("tx_commit", spec.Tx.CommitOk, callback)

    def tx_rollback(self, callback: Callback | None = None) -> None:
        """Tx.Rollback; ``callback(frame)`` gets the Tx.RollbackOk."""
        self._tx("tx_rollback", spec.Tx.RollbackOk, callback)

    def _tx(self, name: str, ok: Any, callback: Callback | None) -> None:
        self._raise_if_not_open()
        _check_rpc_callback(callback)

        def op() -> Any:
            getattr(self._nat, name)()
            return ok()
        self._rpc(op, callback, True)

    def confirm_delivery(self, ack_nack_callback: Callback,
                         callback: Callback | None = None) -> None:
        """Publisher confirms: ``ack_nack_callback(frame)`` with a Basic.Ack (or
        Basic.Nack) whose ``delivery_tag`` numbers the channel's publishes from 1.
        inbus confirms each publish on its own (``multiple=False``)."""
        if not callable(ack_nack_callback):
            raise ValueError("confirm_delivery requires a callback to receieve "
                             "Basic.Ack/Basic.Nack notifications")
        self._raise_if_not_open()
        nowait = _check_rpc_callback(callback)
        self._ack_nack_callbacks.append(ack_nack_callback)

        def op() -> Any:
            self._nat.confirm_delivery(self._on_native_confirm)
            return spec.Confirm.SelectOk()
        self._rpc(op, callback, not nowait)
