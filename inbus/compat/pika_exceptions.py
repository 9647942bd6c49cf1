"""pika 1.x's exception tree, for :mod:`inbus.compat.pika` (exposed as ``pika.exceptions``).

Same names, bases and constructor arguments as ``pika.exceptions``, so ``except`` clauses
written for pika catch what the look-alike raises::

    AMQPError
    ├── AMQPConnectionError
    │   ├── ConnectionOpenAborted, StreamLostError, IncompatibleProtocolError,
    │   │   AuthenticationError, ProbableAuthenticationError, ProbableAccessDeniedError,
    │   │   NoFreeChannels, ConnectionWrongStateError, ConnectionBlockedTimeout,
    │   │   AMQPHeartbeatTimeout
    │   └── ConnectionClosed (.reply_code .reply_text)
    │       ├── ConnectionClosedByBroker
    │       └── ConnectionClosedByClient
    ├── AMQPChannelError
    │   ├── ChannelWrongStateError, DuplicateConsumerTag, ConsumerCancelled
    │   ├── UnroutableError (.messages), NackError (.messages)
    │   └── ChannelClosed (.reply_code .reply_text)
    │       ├── ChannelClosedByBroker
    │       └── ChannelClosedByClient
    ├── ProtocolSyntaxError (ProtocolVersionMismatch, BodyTooLongError, InvalidFrameError,
    │   UnexpectedFrameError, InvalidFieldTypeException, UnsupportedAMQPFieldException)
    ├── InvalidChannelNumber, MethodNotImplemented
    └── ShortStringTooLong          a name or key over 255 bytes of UTF-8
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AMQPChannelError",
    "AMQPConnectionError",
    "AMQPError",
    "AMQPHeartbeatTimeout",
    "AuthenticationError",
    "BodyTooLongError",
    "ChannelClosed",
    "ChannelClosedByBroker",
    "ChannelClosedByClient",
    "ChannelError",
    "ChannelWrongStateError",
    "ConnectionBlockedTimeout",
    "ConnectionClosed",
    "ConnectionClosedByBroker",
    "ConnectionClosedByClient",
    "ConnectionOpenAborted",
    "ConnectionWrongStateError",
    "ConsumerCancelled",
    "DuplicateConsumerTag",
    "DuplicateGetOkCallback",
    "IncompatibleProtocolError",
    "InvalidChannelNumber",
    "InvalidFieldTypeException",
    "InvalidFrameError",
    "MethodNotImplemented",
    "NackError",
    "NoFreeChannels",
    "ProbableAccessDeniedError",
    "ProbableAuthenticationError",
    "ProtocolSyntaxError",
    "ProtocolVersionMismatch",
    "ReentrancyError",
    "ShortStringTooLong",
    "StreamLostError",
    "UnexpectedFrameError",
    "UnroutableError",
    "UnsupportedAMQPFieldException",
]


class AMQPError(Exception):
    def __repr__(self) -> str:
        return f"{type(self).__name__}: An unspecified AMQP error has occurred; {self.args}"


class AMQPConnectionError(AMQPError):
    pass


class ConnectionOpenAborted(AMQPConnectionError):
    pass


class StreamLostError(AMQPConnectionError):
    pass


class IncompatibleProtocolError(AMQPConnectionError):
    pass


class AuthenticationError(AMQPConnectionError):
    pass


class ProbableAuthenticationError(AMQPConnectionError):
    pass


class ProbableAccessDeniedError(AMQPConnectionError):
    pass


class NoFreeChannels(AMQPConnectionError):
    pass


class ConnectionWrongStateError(AMQPConnectionError):
    pass


class ConnectionBlockedTimeout(AMQPConnectionError):
    pass


class AMQPHeartbeatTimeout(AMQPConnectionError):
    pass


class ConnectionClosed(AMQPConnectionError):
    """The connection closed; ``reply_code`` / ``reply_text`` say why."""

    def __init__(self, reply_code: int, reply_text: str) -> None:
        super().__init__(int(reply_code), str(reply_text))

    def __repr__(self) -> str:
        return f"{type(self).__name__}: ({self.reply_code}) {self.reply_text!r}"

    @property
    def reply_code(self) -> int:
        return int(self.args[0])

    @property
    def reply_text(self) -> str:
        return str(self.args[1])


class ConnectionClosedByBroker(ConnectionClosed):
    """The broker (here: the bus) closed the connection with a connection error."""


class ConnectionClosedByClient(ConnectionClosed):
    pass


class AMQPChannelError(AMQPError):
    pass


class ChannelWrongStateError(AMQPChannelError):
    pass


class ChannelClosed(AMQPChannelError):
    """The channel closed; ``reply_code`` / ``reply_text`` say why."""

    def __init__(self, reply_code: int, reply_text: str) -> None:
        super().__init__(int(reply_code), str(reply_text))

    def __repr__(self) -> str:
        return f"{type(self).__name__}: ({self.reply_code}) {self.reply_text!r}"

    @property
    def reply_code(self) -> int:
        return int(self.args[0])

    @property
    def reply_text(self) -> str:
        return str(self.args[1])


class ChannelClosedByBroker(ChannelClosed):
    """The broker (here: the bus) closed the channel with a channel error."""


class ChannelClosedByClient(ChannelClosed):
    pass


class DuplicateConsumerTag(AMQPChannelError):
    def __repr__(self) -> str:
        return f"{type(self).__name__}: The consumer tag specified already exists for this channel: {self.args[0]}"


class ConsumerCancelled(AMQPChannelError):
    pass


class UnroutableError(AMQPChannelError):
    """Confirm mode: the broker returned published message(s) (``.messages``)."""

    def __init__(self, messages: list[Any]) -> None:
        super().__init__(f"{len(messages)} Unroutable message(s) returned")
        self.messages = messages

    def __repr__(self) -> str:
        return f"{type(self).__name__}: {len(self.messages)} unroutable messages returned by broker"


class NackError(AMQPChannelError):
    """Confirm mode: the broker nacked published message(s) (``.messages``)."""

    def __init__(self, messages: list[Any]) -> None:
        super().__init__(f"{len(messages)} message(s) NACKed")
        self.messages = messages

    def __repr__(self) -> str:
        return f"{type(self).__name__}: {len(self.messages)} unroutable messages returned by broker"


class InvalidChannelNumber(AMQPError):
    pass


class ProtocolSyntaxError(AMQPError):
    pass


class UnexpectedFrameError(ProtocolSyntaxError):
    pass


class ProtocolVersionMismatch(ProtocolSyntaxError):
    pass


class BodyTooLongError(ProtocolSyntaxError):
    pass


class InvalidFrameError(ProtocolSyntaxError):
    pass


class InvalidFieldTypeException(ProtocolSyntaxError):
    pass


class UnsupportedAMQPFieldException(ProtocolSyntaxError):
    pass


class MethodNotImplemented(AMQPError):
    pass


class ChannelError(Exception):
    pass


class ReentrancyError(Exception):
    pass


class ShortStringTooLong(AMQPError):
    def __repr__(self) -> str:
        return f"{type(self).__name__}: AMQP Short String can contain up to 255 bytes: {self.args[0]!r}"


class DuplicateGetOkCallback(ChannelError):
    pass
