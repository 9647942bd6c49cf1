"""Names, routing keys and bodies: validation and generation.

AMQP names and routing keys are *short strings*: at most 255 bytes of UTF-8. A longer one
is a ``ValueError`` naming the argument (inbus never truncates). Bodies are bytes; str is
encoded as UTF-8 (as pika does); anything else is a ``TypeError``.

Generated names follow RabbitMQ: ``amq.gen-`` + 22 URL-safe characters for server-named
queues and ``amq.ctag-`` + 22 for consumer tags. This module is pure: the randomness comes
from ``secrets`` (no shared state between buses).
"""

from __future__ import annotations

import secrets
from typing import Any

__all__ = ["check_short", "coerce_body", "gen_consumer_tag", "gen_queue_name"]


def check_short(value: Any, argument: str) -> str:
    """Return ``value`` if it is a str of at most 255 UTF-8 bytes, else raise.

    >>> check_short("orders", "queue")
    'orders'
    """
    if type(value) is not str:
        if not isinstance(value, str):
            raise TypeError(f"{argument} must be a str, not {type(value).__name__}")
        value = str(value)
    s: str = value
    if len(s) > 63 and len(s.encode("utf-8", "surrogatepass")) > 255:
        raise ValueError(
            f"{argument} is {len(s.encode('utf-8', 'surrogatepass'))} bytes of UTF-8; "
            "AMQP short strings hold at most 255: use a shorter name")
    return s


def coerce_body(body: Any) -> bytes:
    """Bodies are bytes; bytearray, memoryview and str (UTF-8) are converted.

    >>> coerce_body("héllo")
    b'h\\xc3\\xa9llo'
    """
    if type(body) is bytes:
        return body
    if isinstance(body, str):
        return body.encode("utf-8")
    if isinstance(body, (bytes, bytearray, memoryview)):
        return bytes(body)
    raise TypeError(
        f"body must be bytes, bytearray, memoryview or str, not {type(body).__name__}")


def gen_queue_name() -> str:
    """A server-generated queue name: ``amq.gen-`` followed by 22 characters."""
    return "amq.gen-" + secrets.token_urlsafe(16)


def gen_consumer_tag() -> str:
    """A server-generated consumer tag: ``amq.ctag-`` followed by 22 characters."""
    return "amq.ctag-" + secrets.token_urlsafe(16)
