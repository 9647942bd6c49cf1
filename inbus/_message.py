"""Messages: properties, the stored content, and what callbacks receive.

- :class:`BasicProperties` takes every field of pika's ``BasicProperties``. A property that
  was not published is ``None`` (``headers`` too, never ``{}``).
- :class:`Content` is a message as published and routed (immutable by convention): what a
  queue's ``QMsg`` is made from (it shares the body and properties), what a return, a
  tap or a dead-lettered copy carries.
- :class:`Message` is what a consumer callback and ``basic_get`` get: one per delivery,
  read-only, with ``.ack() .nack() .reject()`` bound to the channel that delivered it; it
  is also that channel's record of the delivery until it is settled.
- :class:`ReturnedMessage` is what a return callback gets for an unroutable mandatory
  message (312 NO_ROUTE).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from ._channel import Channel

__all__ = ["BasicProperties", "Content", "Message", "ReturnedMessage", "PROPERTY_NAMES"]

PROPERTY_NAMES = (
    "content_type", "content_encoding", "headers", "delivery_mode", "priority",
    "correlation_id", "reply_to", "expiration", "message_id", "timestamp", "type",
    "user_id", "app_id", "cluster_id",
)


class BasicProperties:
    """AMQP basic properties, with pika's field names.

    >>> p = BasicProperties(delivery_mode=2, headers={"k": 1})
    >>> p.delivery_mode, p.content_type
    (2, None)
    """

    __slots__ = PROPERTY_NAMES
    _read_only: ClassVar[bool] = False  # (the shared all-None properties: True)

    def __init__(
        self,
        content_type: str | None = None,
        content_encoding: str | None = None,
        headers: dict[str, Any] | None = None,
        delivery_mode: int | None = None,
        priority: int | None = None,
        correlation_id: str | None = None,
        reply_to: str | None = None,
        expiration: str | None = None,
        message_id: str | None = None,
        timestamp: int | None = None,
        type: str | None = None,
        user_id: str | None = None,
        app_id: str | None = None,
        cluster_id: str | None = None,
    ) -> None:
        self.content_type = content_type
        self.content_encoding = content_encoding
        self.headers = headers
        # pika's DeliveryMode enum (Transient=1, Persistent=2) is accepted as its value.
        self.delivery_mode = getattr(delivery_mode, "value", delivery_mode)
        self.priority = priority
        self.correlation_id = correlation_id
        self.reply_to = reply_to
        self.expiration = expiration
        self.message_id = message_id
        self.timestamp = timestamp
        self.type = type
        self.user_id = user_id
        self.app_id = app_id
        self.cluster_id = cluster_id

    def to_dict(self) -> dict[str, Any]:
        """The properties that are set (not None), as a dict."""
        return {k: v for k in PROPERTY_NAMES if (v := getattr(self, k)) is not None}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BasicProperties:
        return cls(**{k: v for k, v in d.items() if k in PROPERTY_NAMES})

    def _snapshot(self) -> BasicProperties:
        """The copy the bus keeps of a publisher's properties (~0.15 µs; the headers table
        is copied too, nested tables and lists included): as with pika, whose publish
        encodes them, the publisher may change or reuse its object right after
        ``basic_publish`` without changing what was published."""
        if self._read_only:
            return self
        new = _new_properties(BasicProperties)
        new.content_type = self.content_type
        new.content_encoding = self.content_encoding
        h = self.headers
        if h is not None:
            try:
                h = _copy_value(h)
            except RecursionError:
                raise TypeError("the headers table contains itself (a reference cycle): "
                                "it cannot be published") from None
        new.headers = h
        new.delivery_mode = self.delivery_mode
        new.priority = self.priority
        new.correlation_id = self.correlation_id
        new.reply_to = self.reply_to
        new.expiration = self.expiration
        new.message_id = self.message_id
        new.timestamp = self.timestamp
        new.type = self.type
        new.user_id = self.user_id
        new.app_id = self.app_id
        new.cluster_id = self.cluster_id
        return new

    def copy(self, **changes: Any) -> BasicProperties:
        d = {k: getattr(self, k) for k in PROPERTY_NAMES}
        d.update(changes)
        return BasicProperties(**d)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, BasicProperties):
            return NotImplemented
        return all(getattr(self, k) == getattr(other, k) for k in PROPERTY_NAMES)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in self.to_dict().items())
        return f"BasicProperties({inner})"


_new_properties = object.__new__


def _copy_value(v: Any) -> Any:
    """``v`` with every dict and list in it copied (other values are immutable or kept)."""
    t = type(v)
    if t is dict:
        return {k: _copy_value(x) for k, x in v.items()}
    if t is list:
        return [_copy_value(x) for x in v]
    return v


class _NoProperties(BasicProperties):
    """The read-only, all-None properties shared by every message its bus publishes
    without properties (a BasicProperties costs ~150 bytes and 14 stores per publish).
    Assigning to it raises; ``copy(...)`` gives a mutable one."""

    __slots__ = ()
    _read_only = True

    def __init__(self) -> None:
        for k in PROPERTY_NAMES:
            object.__setattr__(self, k, None)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("these are the shared read-only properties of messages "
                             "published without properties; use .copy(...) to change them")

    def __repr__(self) -> str:
        return "BasicProperties()"


class Content:
    """One published message on its way to queues (each keeps a ``QMsg`` of its own)."""

    __slots__ = ("body", "exchange", "routing_key", "properties", "persistent", "size",
                 "priority", "ttl")

    def __init__(self, body: bytes, exchange: str, routing_key: str,
                 properties: BasicProperties, ttl: float | None = None) -> None:
        self.body = body
        self.exchange = exchange
        self.routing_key = routing_key
        self.properties = properties
        self.persistent = properties.delivery_mode == 2
        self.size = len(body)
        self.priority = properties.priority or 0  # None (not published) counts as 0
        self.ttl = ttl  # per-message expiration in seconds, parsed once


class RoutedContent(Content):
    """Content published with ``CC`` / ``BCC`` headers: ``routing_keys`` keeps every key
    it was routed with (BCC ones included, though that header is stripped), because
    RabbitMQ routes a dead-lettered copy with all of them."""

    __slots__ = ("routing_keys",)

    def __init__(self, body: bytes, exchange: str, routing_key: str,
                 properties: BasicProperties, ttl: float | None,
                 routing_keys: list[str]) -> None:
        super().__init__(body, exchange, routing_key, properties, ttl)
        self.routing_keys = routing_keys


class Message:
    """A delivered message, as a consumer callback or ``basic_get`` receives it. Read-only:
    it is also the bus's record of the unacked delivery, and a nack, a recover or a channel
    close puts exactly what was delivered back in the queue (its ``properties`` object is
    shared with the other copies of the message: do not change it in place).

    >>> from inbus import Bus, BasicProperties
    >>> bus = Bus(); ch = bus.channel(); _ = ch.queue_declare("q")
    >>> def on_message(m):
    ...     print(m.body, m.routing_key, m.redelivered, m.properties.correlation_id)
    ...     m.ack() if m.redelivered else m.nack(requeue=True)
    >>> _ = ch.basic_consume("q", on_message)
    >>> ch.basic_publish("", "q", b"hi", BasicProperties(correlation_id="42"))
    >>> bus.run_until_idle()                  # nacked, requeued, delivered again
    b'hi' q False 42
    b'hi' q True 42
    2
    >>> m = bus.channel().basic_get("q"); m is None
    True
    """

    __slots__ = ("_body", "_exchange", "_routing_key", "_properties", "_tag", "_redelivered",
                 "_consumer_tag", "_message_count", "_channel", "_consumer", "_queue",
                 "_qmsg", "_seq", "_prio")
    _queue: Any
    _qmsg: Any
    _seq: int
    _prio: int

    # (built from the fields, not from a Content: a message the publisher hands straight
    # to a consumer never gets a Content, one object less per delivery)
    def __init__(self, body: bytes, exchange: str, routing_key: str,
                 properties: BasicProperties, delivery_tag: int, redelivered: bool,
                 consumer_tag: str | None, channel: Channel,
                 message_count: int | None = None, consumer: Any = None) -> None:
        self._body = body
        self._exchange = exchange
        self._routing_key = routing_key
        self._properties = properties
        self._tag = delivery_tag
        self._redelivered = redelivered
        self._consumer_tag = consumer_tag
        self._message_count = message_count
        self._channel = channel
        # The consumer it was delivered to (None for basic_get): the pump runs its
        # callback, or skips it if a manual-ack consumer was cancelled before it runs.
        self._consumer: Any = consumer
        # Set by the broker when the message is the channel's unacked record (see
        # inbus._queue.Unacked), not for auto-ack deliveries: ``_queue``, the queue it came
        # from, and ``_qmsg``, its QMsg there, or None for a message the publisher handed
        # straight to a consumer (it never was in the queue) or one delivered from a
        # fresh tuple (inbus._queue.Fresh), with ``_seq``, its position (and, on a
        # priority queue, ``_prio``, its priority as it entered).

    @property
    def body(self) -> bytes:
        """The body, as published (bytes)."""
        return self._body

    @property
    def exchange(self) -> str:
        """The exchange it was published to (``""``: the default exchange)."""
        return self._exchange

    @property
    def routing_key(self) -> str:
        """The routing key it was published with."""
        return self._routing_key

    @property
    def properties(self) -> BasicProperties:
        """Its :class:`BasicProperties` (unset ones are None)."""
        return self._properties

    @property
    def delivery_tag(self) -> int:
        """This delivery's tag on its channel (what ``basic_ack`` takes)."""
        return self._tag

    @property
    def redelivered(self) -> bool:
        """True if the message was delivered before (and requeued)."""
        return self._redelivered

    @property
    def consumer_tag(self) -> str | None:
        """The consumer it was delivered to (None for ``basic_get``)."""
        return self._consumer_tag

    @property
    def message_count(self) -> int | None:
        """``basic_get`` only: ready messages left in the queue (else None)."""
        return self._message_count

    @property
    def channel(self) -> Channel:
        """The channel that delivered this message (acks go through it)."""
        return self._channel

    def ack(self, multiple: bool = False) -> None:
        """Acknowledge this message (``multiple=True``: and every earlier unacked one of
        its channel): :meth:`Channel.basic_ack` with its tag. From any thread."""
        self._channel.basic_ack(self._tag, multiple)

    def nack(self, multiple: bool = False, requeue: bool = True) -> None:
        """Negatively acknowledge; ``requeue=True`` puts it back at its original position."""
        self._channel.basic_nack(self._tag, multiple, requeue)

    def reject(self, requeue: bool = True) -> None:
        """Reject this message; ``requeue=False`` drops it or dead-letters it."""
        self._channel.basic_reject(self._tag, requeue)

    def __repr__(self) -> str:
        return (f"<Message tag={self._tag} exchange={self._exchange!r} "
                f"routing_key={self._routing_key!r} redelivered={self._redelivered} "
                f"body={self._body[:40]!r}>")


def _read_only(name: str) -> Any:
    def refuse(self: Message, value: Any) -> None:
        raise AttributeError(
            f"a delivered Message is read-only: cannot set '{name}' (the message is also "
            f"its channel's record of the delivery, which a nack or a recover puts back "
            f"as delivered); publish a new message to send something else")
    return refuse


# Assigning a field raises an AttributeError that says why (a property without a setter
# would only say "has no setter"); reads and construction cost the same.
for _name in ("body", "exchange", "routing_key", "properties", "delivery_tag",
              "redelivered", "consumer_tag", "message_count", "channel"):
    _prop = Message.__dict__[_name]
    setattr(Message, _name, _prop.setter(_read_only(_name)))
del _name, _prop


class ReturnedMessage:
    """An unroutable mandatory message handed back to the publisher (basic.return)."""

    __slots__ = ("reply_code", "reply_text", "exchange", "routing_key", "body", "properties")

    def __init__(self, reply_code: int, reply_text: str, content: Content) -> None:
        self.reply_code = reply_code
        self.reply_text = reply_text
        self.exchange = content.exchange
        self.routing_key = content.routing_key
        self.body = content.body
        self.properties = content.properties

    def __repr__(self) -> str:
        return (f"<ReturnedMessage {self.reply_code} {self.reply_text} "
                f"exchange={self.exchange!r} routing_key={self.routing_key!r}>")
