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
    def __repr__(self) -> str:
        if len(self.args) == 2:
            return f"{type(self).__name__}: ({self.args[0]}) {self.args[1]}"
        return f"{type(self).__name__}: {self.args}"


class ConnectionOpenAborted(AMQPConnectionError):
    pass


class StreamLostError(AMQPConnectionError):
    pass


class IncompatibleProtocolError(AMQPConnectionError):
    def __repr__(self) -> str:
        return (f"{type(self).__name__}: The protocol returned by the server is not "
                f"supported: {self.args}")


class AuthenticationError(AMQPConnectionError):
    def __repr__(self) -> str:
        return (f"{type(self).__name__}: Server and client could not negotiate use of the "
                f"{self.args[0]} authentication mechanism")


class ProbableAuthenticationError(AMQPConnectionError):
    def __repr__(self) -> str:
        return (f"{type(self).__name__}: Client was disconnected at a connection stage "
                f"indicating a probable authentication error: {self.args}")


class ProbableAccessDeniedError(AMQPConnectionError):
    def __repr__(self) -> str:
        return (f"{type(self).__name__}: Client was disconnected at a connection stage "
                "indicating a probable denial of access to the specified virtual host: "
                f"{self.args}")


class NoFreeChannels(AMQPConnectionError):
    def __repr__(self) -> str:
        return f"{type(self).__name__}: The connection has run out of free channels"


class ConnectionWrongStateError(AMQPConnectionError):
    def __repr__(self) -> str:
        if self.args:
            return super().__repr__()
        return (f"{type(self).__name__}: The connection is in wrong state for the "
                "requested operation.")


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
    def __repr__(self) -> str:
        return f"{type(self).__name__}: {self.args!r}"


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
    def __repr__(self) -> str:
        return f"{type(self).__name__}: Server cancelled consumer"


class UnroutableError(AMQPChannelError):
    """Confirm mode: the broker returned published message(s) (``.messages``)."""

    def __init__(self, messages: list[Any]) -> None:
        super().__init__(f"{len(messages)} unroutable message(s) returned")
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
    def __repr__(self) -> str:
        return f"{type(self).__name__}: An invalid channel number has been specified: {self.args[0]}"


class ProtocolSyntaxError(AMQPError):
    def __repr__(self) -> str:
        return f"{type(self).__name__}: An unspecified protocol syntax error occurred"


class UnexpectedFrameError(ProtocolSyntaxError):
    def __repr__(self) -> str:
        return f"{type(self).__name__}: Received a frame out of sequence: {self.args[0]!r}"


class ProtocolVersionMismatch(ProtocolSyntaxError):
    def __repr__(self) -> str:
        return (f"{type(self).__name__}: Protocol versions did not match: "
                f"{self.args[0]!r} vs {self.args[1]!r}")


class BodyTooLongError(ProtocolSyntaxError):
    def __repr__(self) -> str:
        return (f"{type(self).__name__}: Received too many bytes for a message delivery: "
                f"Received {self.args[0]}, expected {self.args[1]}")


class InvalidFrameError(ProtocolSyntaxError):
    def __repr__(self) -> str:
        return f"{type(self).__name__}: Invalid frame received: {self.args[0]!r}"


class InvalidFieldTypeException(ProtocolSyntaxError):
    def __repr__(self) -> str:
        return f"{type(self).__name__}: Unsupported field kind {self.args[0]}"


class UnsupportedAMQPFieldException(ProtocolSyntaxError):
    def __repr__(self) -> str:
        return f"{type(self).__name__}: Unsupported field kind {type(self.args[1])}"


class MethodNotImplemented(AMQPError):
    pass


class ChannelError(Exception):
    def __repr__(self) -> str:
        return f"{type(self).__name__}: An unspecified error occurred with the Channel"


class ReentrancyError(Exception):
    pass


class ShortStringTooLong(AMQPError):
    def __repr__(self) -> str:
        return f"{type(self).__name__}: AMQP Short String can contain up to 255 bytes: {self.args[0]!s:.300}"


class DuplicateGetOkCallback(ChannelError):
    def __repr__(self) -> str:
        return (f"{type(self).__name__}: basic_get can only be called again after the "
                "callback for the previous basic_get is executed")
