"""redis-py's exception tree, for :mod:`inbus.compat.redis` (exposed as
``redis.exceptions``, with the common names also on the module itself, as redis-py has
them).

Same names and bases as ``redis.exceptions``, so ``except`` clauses written for redis-py
catch what the look-alike raises::

    RedisError
    ├── ConnectionError (AuthenticationError, AuthorizationError, BusyLoadingError,
    │   MaxConnectionsError)
    ├── TimeoutError
    ├── ResponseError (ReadOnlyError, NoScriptError, OutOfMemoryError, ExecAbortError,
    │   AuthenticationWrongNumberOfArgsError)
    ├── DataError, PubSubError, WatchError, InvalidResponse
    ChildDeadlockedError

``PubSubError`` is also an :class:`inbus.PubSubError`.
"""

from __future__ import annotations

from .. import _errors

__all__ = [
    "AuthenticationError",
    "AuthenticationWrongNumberOfArgsError",
    "AuthorizationError",
    "BusyLoadingError",
    "ChildDeadlockedError",
    "ConnectionError",
    "DataError",
    "ExecAbortError",
    "InvalidResponse",
    "MaxConnectionsError",
    "NoScriptError",
    "OutOfMemoryError",
    "PubSubError",
    "ReadOnlyError",
    "RedisError",
    "ResponseError",
    "TimeoutError",
    "WatchError",
]


class RedisError(Exception):
    """Root of the errors the look-alike raises, as ``redis.exceptions.RedisError``."""


class ConnectionError(RedisError):  # noqa: A001 - redis-py's name
    pass


class TimeoutError(RedisError):  # noqa: A001 - redis-py's name
    pass


class AuthenticationError(ConnectionError):
    pass


class AuthorizationError(ConnectionError):
    pass


class BusyLoadingError(ConnectionError):
    pass


class MaxConnectionsError(ConnectionError):
    pass


class InvalidResponse(RedisError):
    pass


class ResponseError(RedisError):
    """An error reply of the server (e.g. a command with the wrong number of arguments)."""


class DataError(RedisError):
    """A value that cannot be sent (e.g. a bool)."""


class PubSubError(RedisError, _errors.PubSubError):
    """Pub/sub misuse."""


class WatchError(RedisError):
    pass


class NoScriptError(ResponseError):
    pass


class OutOfMemoryError(ResponseError):
    pass


class ExecAbortError(ResponseError):
    pass


class ReadOnlyError(ResponseError):
    pass


class AuthenticationWrongNumberOfArgsError(ResponseError):
    pass


class ChildDeadlockedError(Exception):
    pass
