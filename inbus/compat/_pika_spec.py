"""pika look-alike, part 1: the frames (``spec``, ``frame``), enums and connection
parameters that :mod:`inbus.compat.pika` re-exports. Plain data; no bus involved."""

from __future__ import annotations

import enum
import ssl
from typing import Any
from urllib.parse import unquote, urlparse

from .._message import BasicProperties

# --------------------------------------------------------------------------- spec


def _pika_repr(name: str, fields: dict[str, Any]) -> str:
    """pika's AMQPObject repr: ``<Basic.GetOk(['delivery_tag=1', ...])>``, the fields
    sorted, those that are None left out."""
    items = sorted(f"{k}={v}" for k, v in fields.items() if v is not None)
    return f"<{name}({items})>" if items else f"<{name}>"


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
        return _pika_repr(self.NAME, vars(self))


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
    GetEmpty = _method("Basic.GetEmpty", "cluster_id", cluster_id="")
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


class _Channel:
    Flow = _method("Channel.Flow", "active")
    FlowOk = _method("Channel.FlowOk", "active")


class _Confirm:
    SelectOk = _method("Confirm.SelectOk")


class _Tx:
    SelectOk = _method("Tx.SelectOk")
    CommitOk = _method("Tx.CommitOk")
    RollbackOk = _method("Tx.RollbackOk")


class spec:  # noqa: N801 - mirrors the module name ``pika.spec``
    """``pika.spec``: method classes with pika's attribute names, and BasicProperties."""

    Basic = _Basic
    Channel = _Channel
    Queue = _Queue
    Exchange = _Exchange
    Confirm = _Confirm
    Tx = _Tx
    BasicProperties = BasicProperties
    TRANSIENT_DELIVERY_MODE = 1
    PERSISTENT_DELIVERY_MODE = 2


class Method:
    """``pika.frame.Method``: what synchronous channel methods return."""

    def __init__(self, channel_number: int, method: _Method) -> None:
        self.frame_type = 1
        self.channel_number = channel_number
        self.method = method

    def __repr__(self) -> str:
        return _pika_repr("METHOD", vars(self))


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
                f"virtual_host={self.virtual_host} "
                f"ssl={bool(getattr(self, 'ssl_options', None))}>")


class SSLOptions:
    """pika's SSLOptions (``ssl_options=`` of ConnectionParameters): kept, unused, since
    nothing goes over a socket."""

    __slots__ = ("context", "server_hostname")

    def __init__(self, context: ssl.SSLContext, server_hostname: str | None = None) -> None:
        if not isinstance(context, ssl.SSLContext):
            raise TypeError(f"context must be of ssl.SSLContext type, but got {context!r}")
        self.context = context
        self.server_hostname = server_hostname


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
