"""pika look-alike, part 2: BlockingChannel (and the helpers it shares with the
connection). :mod:`inbus.compat.pika` is the public module; see its docstring for the
theory of operation."""

from __future__ import annotations

import uuid
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .. import _errors as _e
from .._channel import Channel as _NativeChannel
from .._message import BasicProperties, Message
from .._message import ReturnedMessage as _NativeReturned
from . import pika_exceptions as exceptions
from ._pika_consume import ConsumeGenerator, _Generator
from ._pika_spec import ExchangeType, Method, ReturnedMessage, spec
from ._pika_tx import TxMethods
from ._pika_wire import copy_props as _copy_props
from ._pika_wire import encodable as _encodable
from ._pika_wire import short as _short

if TYPE_CHECKING:
    from .pika import BlockingConnection

# --------------------------------------------------------------------------- helpers


def _translate(err: _e.AMQPError) -> exceptions.AMQPError:
    if err.scope == "connection":
        return exceptions.ConnectionClosedByBroker(err.reply_code, err.reply_text)
    return exceptions.ChannelClosedByBroker(err.reply_code, err.reply_text)


def _deprecated(old: str, new: str) -> None:
    warnings.warn(f"pika 0.x signature {old} is deprecated; use {new}",
                  DeprecationWarning, stacklevel=3)


class _ConsumerInfo:
    __slots__ = ("tag", "callback", "auto_ack", "cancelled")

    def __init__(self, tag: str, callback: Callable[..., Any], auto_ack: bool) -> None:
        self.tag = tag
        self.callback = callback
        self.auto_ack = auto_ack
        self.cancelled = False


# --------------------------------------------------------------------------- channel


class BlockingChannel(ConsumeGenerator, TxMethods):
    """pika's BlockingChannel over a native :class:`inbus.Channel`."""

    def __init__(self, connection: BlockingConnection, native: _NativeChannel) -> None:
        self._connection = connection
        self._native = native
        self._pending: exceptions.AMQPError | None = None
        self._consumers: dict[str, _ConsumerInfo] = {}
        self._return_callbacks: list[Callable[..., Any]] = []
        self._cancel_callbacks: list[Callable[..., Any]] = []
        self._gen: _Generator | None = None  # (the consume() generator's state)
        self._confirm = False
        self._get_waits = False  # a basic_get waits for its reply (see basic_get)
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
        """Until an asynchronous method's error is read, as in pika (see _live)."""
        return self._live()

    @property
    def is_closed(self) -> bool:
        return not self._live()

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

    def _live(self) -> bool:
        """Open, or closed by an asynchronous method's error or by its connection's
        close, which pika has not read yet."""
        return (self._native.is_open or self._pending is not None
                or self._went_with_connection() and self._connection._unread_close())

    def _went_with_connection(self) -> bool:
        """Closed with its connection, not on its own before it."""
        return self._native._closed_with_connection

    def _take_close(self) -> exceptions.AMQPError | None:
        """The Channel.Close for an asynchronous method's error is read now (by the next
        call or pumping): the error, once; pika forgets the channel's consumers."""
        err, self._pending = self._pending, None
        if err is not None:
            self._forget_consumers()
            return err
        if self._native.is_open or self._went_with_connection():
            return self._connection._take_shutdown()
        return None  # closed on its own: pika raises without reading anything

    def _forget_consumers(self) -> None:
        """The broker closed the channel: no consumer or consume() generator is left."""
        for info in self._consumers.values():
            info.cancelled = True
        self._consumers.clear()
        self._gen = None

    def _before_sync(self) -> None:
        """A synchronous method: raise what an earlier asynchronous method caused."""
        err = self._take_close()
        if err is not None:
            raise err
        if not self._native.is_open:
            raise exceptions.ChannelWrongStateError("Channel is closed.")

    def _process_data_events(self, time_limit: float | None) -> None:
        """Pump the connection; raise this channel's ChannelClosedByBroker if it is
        read (pika's BlockingChannel._process_data_events)."""
        self._connection._events(time_limit, self)

    def _sync(self, fn: Callable[[], Any]) -> Any:
        self._before_sync()
        try:
            return fn()
        except _e.AMQPError as err:
            translated = _translate(err)
            if isinstance(translated, exceptions.ChannelClosedByBroker):
                self._forget_consumers()
            raise translated from None
        except (_e.ChannelClosed, _e.ConnectionClosed):
            raise exceptions.ChannelWrongStateError("Channel is closed.") from None
        except ValueError as err:
            if "short strings" in str(err):
                raise exceptions.ShortStringTooLong(str(err)) from None
            raise

    def _async(self, fn: Callable[[], Any]) -> None:
        """An asynchronous method: an error closes the channel; the channel's next call
        raises it (pika reads the Channel.Close then), unless pumping read it first.
        After a connection error pika has not read yet (the 504 of a basic_get on a
        closed channel), the socket is still open: the frame goes out and the broker,
        which is closing the connection, ignores it."""
        if self._connection._lost is not None and self._went_with_connection():
            return
        pending = self._take_close()
        if pending is not None:
            raise pending
        if not self._native.is_open:
            raise exceptions.ChannelWrongStateError("Channel is closed.")
        try:
            fn()
        except _e.AMQPError as err:
            self._pending = _translate(err)
        except (_e.ChannelClosed, _e.ConnectionClosed):
            raise exceptions.ChannelWrongStateError("Channel is closed.") from None

    def _ok(self, method: Any) -> Method:
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
        name = _short(exchange, "exchange", required=True)
        xtype = str(getattr(exchange_type, "value", exchange_type))
        self._sync(lambda: self._native.exchange_declare(
            name, xtype, passive, durable, auto_delete, internal, _encodable(arguments)))
        return self._ok(spec.Exchange.DeclareOk())

    def exchange_delete(self, exchange: str | None = None, if_unused: bool = False) -> Method:
        name = _short(exchange, "exchange")
        self._sync(lambda: self._native.exchange_delete(name, if_unused))
        return self._ok(spec.Exchange.DeleteOk())

    def exchange_bind(self, destination: str, source: str, routing_key: str = "",
                      arguments: dict[str, Any] | None = None) -> Method:
        d = _short(destination, "destination", required=True)
        s = _short(source, "source", required=True)
        rk = _short(routing_key, "routing_key")
        self._sync(lambda: self._native.exchange_bind(d, s, rk, _encodable(arguments)))
        return self._ok(spec.Exchange.BindOk())

    def exchange_unbind(self, destination: str | None = None, source: str | None = None,
                        routing_key: str = "", arguments: dict[str, Any] | None = None
                        ) -> Method:
        d, s = _short(destination, "destination"), _short(source, "source")
        rk = _short(routing_key, "routing_key")
        self._sync(lambda: self._native.exchange_unbind(d, s, rk, _encodable(arguments)))
        return self._ok(spec.Exchange.UnbindOk())

    # queues ----------------------------------------------------------------------------

    def queue_declare(self, queue: str = "", passive: bool = False, durable: bool = False,
                      exclusive: bool = False, auto_delete: bool = False,
                      arguments: dict[str, Any] | None = None) -> Method:
        """Declare a queue; ``.method.queue .message_count .consumer_count``."""
        name = _short(queue, "queue", required=True)
        r = self._sync(lambda: self._native.queue_declare(
            name, passive, durable, exclusive, auto_delete, _encodable(arguments)))
        return self._ok(spec.Queue.DeclareOk(r.queue, r.message_count, r.consumer_count))

    def queue_delete(self, queue: str = "", if_unused: bool = False,
                     if_empty: bool = False) -> Method:
        name = _short(queue, "queue", required=True)
        n = self._sync(lambda: self._native.queue_delete(name, if_unused, if_empty))
        return self._ok(spec.Queue.DeleteOk(n))

    def queue_purge(self, queue: str = "") -> Method:
        name = _short(queue, "queue", required=True)
        n = self._sync(lambda: self._native.queue_purge(name))
        return self._ok(spec.Queue.PurgeOk(n))

    def queue_bind(self, queue: str, exchange: str, routing_key: str | None = None,
                   arguments: dict[str, Any] | None = None) -> Method:
        name = _short(queue, "queue", required=True)
        x = _short(exchange, "exchange", required=True)
        rk = None if routing_key is None else _short(routing_key, "routing_key")
        self._sync(lambda: self._native.queue_bind(name, x, rk, _encodable(arguments)))
        return self._ok(spec.Queue.BindOk())

    def queue_unbind(self, queue: str, exchange: str | None = None,
                     routing_key: str | None = None,
                     arguments: dict[str, Any] | None = None) -> Method:
        name, x = _short(queue, "queue", required=True), _short(exchange, "exchange")
        rk = None if routing_key is None else _short(routing_key, "routing_key")
        self._sync(lambda: self._native.queue_unbind(name, x, rk, _encodable(arguments)))
        return self._ok(spec.Queue.UnbindOk())

    # publishing ------------------------------------------------------------------------

    def basic_publish(self, exchange: str, routing_key: str, body: str | bytes,
                      properties: BasicProperties | None = None,
                      mandatory: bool = False, immediate: bool = False) -> None:
        """Publish. Outside confirm mode errors surface on the next synchronous call; in
        confirm mode a returned message raises UnroutableError, a nack NackError."""
        # pika's encoder fails on what is not a str (exchange, routing_key: an
        # AssertionError) or str / bytes (body: an AttributeError); here a TypeError.
        x = _short(exchange, "exchange", required=True)
        rk = _short(routing_key, "routing_key", required=True)
        if not isinstance(body, (str, bytes)):
            raise TypeError(f"body must be str or bytes, not {type(body).__name__}")
        props = _copy_props(properties, publish=True)
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
                                                 r.routing_key),
                               _copy_props(r.properties) or BasicProperties(), r.body)

    def _schedule_return(self, r: _NativeReturned) -> None:
        if self._return_callbacks:
            self._connection._native.add_callback_threadsafe(lambda: self._on_return(r))

    def _on_return(self, r: _NativeReturned) -> None:
        if self._native.is_closed:
            # pika drops a channel's undispatched events when the channel closes (by the
            # broker or by the client): a return not dispatched by then is never seen.
            return
        method = spec.Basic.Return(r.reply_code, r.reply_text, r.exchange, r.routing_key)
        for cb in list(self._return_callbacks):
            cb(self, method, _copy_props(r.properties) or BasicProperties(), r.body)

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
        frame_ = self._ok(spec.Basic.Cancel(tag, nowait=True))  # as RabbitMQ sends it
        for cb in list(self._cancel_callbacks):
            cb(frame_)

    # getting and settling --------------------------------------------------------------

    def basic_get(self, queue: str = "", auto_ack: bool = False,
                  no_ack: bool | None = None) -> tuple[Any, Any, Any]:
        """``(Basic.GetOk, properties, body)``, or ``(None, None, None)`` when empty."""
        if no_ack is not None:
            _deprecated("basic_get(no_ack=...)", "basic_get(auto_ack=...)")
            auto_ack = no_ack
        name = _short(queue, "queue", required=True)
        # As pika's: it waits for the reply from here on, and a basic_get that raised
        # never gets one, so the channel refuses any later basic_get
        if self._get_waits:
            raise exceptions.DuplicateGetOkCallback()
        self._get_waits = True
        if self._pending is None and not self._native.is_open:
            # pika sends the frame whatever the channel's state
            if self._went_with_connection():   # (open to pika: it reads the close)
                self._connection._raise_shutdown()
            self._connection._frame_on_closed_channel(self.channel_number)  # raises
        m: Message | None = self._sync(lambda: self._native.basic_get(name, auto_ack))
        self._get_waits = False
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
            if "queue" not in given:
                raise TypeError("basic_consume() missing required argument 'queue'")
            queue = given["queue"]
            callback = given.get("on_message_callback")
            auto_ack = bool(given.get("auto_ack", False))
            legacy = given
        queue = _short(queue, "queue", required=True)
        if not callable(callback):
            raise TypeError("callback on_message_callback must be callable, but got "
                            f"{callback!r}")
        return self._consume(queue, callback, auto_ack, bool(legacy.get("exclusive", False)),
                             legacy.get("consumer_tag"), legacy.get("arguments"))

    def _consume(self, queue: str, callback: Callable[..., Any], auto_ack: bool,
                 exclusive: bool, consumer_tag: str | None,
                 arguments: dict[str, Any] | None) -> str:
        name = _short(queue, "queue", required=True)
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
                                                          tag, _encodable(arguments)))
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
        err = self._take_close()
        if err is not None:
            raise err
        pending = self._take_undispatched(consumer_tag) if info.auto_ack else []
        if self._native.is_open:
            self._sync(lambda: self._native.basic_cancel(consumer_tag))
        return [(spec.Basic.Deliver(m.consumer_tag, m.delivery_tag, m.redelivered,
                                    m.exchange, m.routing_key), _copy_props(m.properties),
                 m.body)
                for m in pending]

    def _take_undispatched(self, tag: str) -> list[Message]:
        """Remove this consumer's deliveries still waiting in the connection's queue of
        callbacks (auto-ack: they are already settled, so they are handed back)."""
        native_conn = self._connection._native
        native = self._native
        with native_conn._lock:
            return native_conn._sink.remove_deliveries(
                lambda m: m.channel is native and m.consumer_tag == tag)

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
        while self._consumers and self._live():
            self._process_data_events(None)    # raises what closed the channel

    def stop_consuming(self, consumer_tag: str | None = None) -> None:
        """Cancel one consumer, or all of them (which ends ``start_consuming``)."""
        if consumer_tag:
            self.basic_cancel(consumer_tag)
        else:
            self._cancel_all_consumers()

    # closing ---------------------------------------------------------------------------

    def close(self, reply_code: int = 0, reply_text: str = "Normal shutdown") -> None:
        """Cancel the consumers and close the channel (unacked messages are requeued);
        raise an asynchronous method's error not read yet, as pika does."""
        err = self._take_close()
        if err is not None:
            raise err
        if self._native.is_closed:
            raise exceptions.ChannelWrongStateError("Channel is closed.")
        self._cancel_all_consumers()
        self._pending = None
        self._native.close()

    def flow(self, active: bool) -> bool:
        """RabbitMQ accepts only ``active=True``; False is its connection error 540."""
        return bool(self._sync(lambda: self._native.flow(active)))

