"""The exception tree of inbus.

Every error inbus raises on purpose derives from :class:`InbusError`::

    InbusError
    ├── AMQPError                 a broker refused an operation (.reply_code, .reply_text,
    │   │                         .scope "channel" | "connection", .method "queue.declare")
    │   ├── AccessRefused         403  amq.* names, the default exchange, exclusive consumers
    │   ├── NotFound              404  a missing exchange, queue or vhost entity
    │   ├── ResourceLocked        405  another connection's exclusive queue
    │   ├── PreconditionFailed    406  inequivalent redeclare, unknown delivery tag, if_unused
    │   ├── CommandInvalid        503  unknown exchange type, ...            (connection)
    │   ├── NotAllowed            530  missing vhost, duplicate consumer tag  (connection)
    │   └── NotImplementedByBus   540  prefetch_size, immediate               (connection)
    ├── ChannelClosed             use of a channel that is closed (.reason: the AMQPError
    │                             that closed it, or None when closed by the user)
    ├── ConnectionClosed          use of a closed connection (.reason likewise)
    ├── UnroutableError           confirm mode: a mandatory message was returned (.messages)
    ├── NackError                 confirm mode: the bus refused a message (.messages)
    ├── PersistenceError          the SQLite file cannot be used (.path); wraps sqlite3 errors
    └── PubSubError               pub/sub misuse, e.g. reading from a subscriber the bus
        └── SubscriberClosed      disconnected because its buffer overflowed

Argument misuse (a body that is not bytes, a name over 255 bytes) stays ``TypeError`` /
``ValueError`` with a message naming the argument.

As in AMQP, a channel-scope error closes its channel and a connection-scope error closes
the connection with all its channels. The message of an AMQP error reads like RabbitMQ's::

    PRECONDITION_FAILED - inequivalent arg 'durable' for queue 'q' in vhost '/':
    received 'true' but current is 'false'
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "AMQPError",
    "AccessRefused",
    "ChannelClosed",
    "CommandInvalid",
    "ConnectionClosed",
    "InbusError",
    "NackError",
    "NotAllowed",
    "NotFound",
    "NotImplementedByBus",
    "PersistenceError",
    "PreconditionFailed",
    "PubSubError",
    "ReentrancyError",
    "ResourceLocked",
    "SubscriberClosed",
    "UnroutableError",
]


class InbusError(Exception):
    """Root of every exception inbus raises on purpose."""


class AMQPError(InbusError):
    """The bus refused an operation, with the AMQP reply code RabbitMQ would send.

    ``scope`` tells what the error closed: ``"channel"`` or ``"connection"``.
    """

    reply_code: ClassVar[int] = 0
    name: ClassVar[str] = ""

    def __init__(self, reply_text: str, *, scope: str = "channel", method: str = "") -> None:
        if not reply_text.startswith(self.name + " - "):
            reply_text = f"{self.name} - {reply_text}"
        super().__init__(reply_text)
        self.reply_text = reply_text
        self.scope = scope
        self.method = method

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.reply_code}, {self.reply_text!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.reply_text, self.scope, self.method))


def _rebuild(cls: type[AMQPError], text: str, scope: str, method: str) -> AMQPError:
    return cls(text, scope=scope, method=method)


class AccessRefused(AMQPError):
    reply_code = 403
    name = "ACCESS_REFUSED"


class NotFound(AMQPError):
    reply_code = 404
    name = "NOT_FOUND"


class ResourceLocked(AMQPError):
    reply_code = 405
    name = "RESOURCE_LOCKED"


class PreconditionFailed(AMQPError):
    reply_code = 406
    name = "PRECONDITION_FAILED"


class CommandInvalid(AMQPError):
    reply_code = 503
    name = "COMMAND_INVALID"


class NotAllowed(AMQPError):
    reply_code = 530
    name = "NOT_ALLOWED"


class NotImplementedByBus(AMQPError):
    reply_code = 540
    name = "NOT_IMPLEMENTED"


class _Closed(InbusError):
    what: ClassVar[str] = ""
    hint: ClassVar[str] = ""  # what to do instead

    def __init__(self, reason: AMQPError | None = None, detail: str = "") -> None:
        self.reason = reason
        if reason is not None:
            text = (f"{self.what} is closed by the bus: {reason.reply_code} "
                    f"{reason.reply_text}; {self.hint}")
        else:
            text = detail or f"{self.what} is closed; {self.hint}"
        super().__init__(text)

    @property
    def reply_code(self) -> int:
        """The reply code that closed it (200 when closed normally)."""
        return self.reason.reply_code if self.reason is not None else 200

    @property
    def reply_text(self) -> str:
        return self.reason.reply_text if self.reason is not None else "Normal shutdown"


class ChannelClosed(_Closed):
    """An operation on a channel that is closed; ``.reason`` says why it closed."""

    what = "channel"
    hint = "open a new one with connection.channel()"


class ConnectionClosed(_Closed):
    """An operation on a connection (or bus) that is closed."""

    what = "connection"
    hint = "open a new one with bus.connection()"


class UnroutableError(InbusError):
    """In confirm mode, a ``mandatory`` message that no queue took came back.

    ``.messages`` holds the :class:`~inbus.ReturnedMessage` objects.
    """

    def __init__(self, messages: list[Any]) -> None:
        super().__init__(f"{len(messages)} unroutable message(s) returned")
        self.messages = messages


class NackError(InbusError):
    """In confirm mode, the bus nacked a message (e.g. x-overflow reject-publish)."""

    def __init__(self, messages: list[Any]) -> None:
        super().__init__(f"{len(messages)} message(s) nacked by the bus")
        self.messages = messages


class ReentrancyError(InbusError):
    """A blocking call that would wait for itself: ``start_consuming()`` or ``consume()``
    on a background channel, made from a callback running on that channel's own worker
    thread (the worker is busy running the callback, so it could never deliver what
    the call waits for). pika raises its ``ReentrancyError`` for ``start_consuming()``
    inside any callback; inbus allows nesting where it can work (the caller's-thread
    model pumps nested, as ``run_until_idle`` does)."""


class PersistenceError(InbusError):
    """The SQLite file cannot be used; ``.path`` names it, ``__cause__`` is the sqlite3 error."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


class PubSubError(InbusError):
    """Misuse of the Redis-style publish/subscribe API."""


class SubscriberClosed(PubSubError):
    """The subscriber was closed (by you, or by the bus when its buffer overflowed)."""
