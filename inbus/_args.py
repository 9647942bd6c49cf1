"""Validation and equivalence of RabbitMQ's queue and exchange arguments, and the
message properties the broker reads at publish (``expiration``, ``CC`` / ``BCC``).

RabbitMQ checks a redeclaration against the existing entity (406 ``inequivalent arg``)
before it validates the new arguments, and compares only the arguments it knows; unknown
``x-`` arguments are kept but never compared. Values are named with their AMQP field
types in messages, as RabbitMQ does (``signedint``, ``longstr``, ``bool`` ...).

Pure: no state at all.
"""

from __future__ import annotations

from typing import Any

from ._errors import PreconditionFailed

__all__ = ["QUEUE_ARGS", "amqp_type", "check_equivalent", "fmt_value", "header_routes",
           "invalid_message", "parse_expiration", "validate_queue_args"]

QUEUE_ARGS = (
    "x-expires", "x-message-ttl", "x-dead-letter-exchange", "x-dead-letter-routing-key",
    "x-max-length", "x-max-length-bytes", "x-max-priority", "x-overflow", "x-queue-mode",
    "x-queue-type", "x-single-active-consumer", "x-delivery-limit", "x-queue-version",
    "x-max-in-memory-length", "x-max-in-memory-bytes", "x-queue-master-locator",
)
EXCHANGE_ARGS = ("alternate-exchange",)


def amqp_type(v: Any) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "signedint" if -(2**31) <= v < 2**31 else "long"
    if isinstance(v, float):
        return "double"
    if isinstance(v, (str, bytes)):
        return "longstr"
    if isinstance(v, dict):
        return "table"
    if isinstance(v, (list, tuple)):
        return "array"
    if v is None:
        return "void"
    return type(v).__name__


def fmt_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    return str(v)


def check_equivalent(kind: str, name: str, vhost: str, field: str, received: Any,
                     current: Any, method: str) -> None:
    """Raise 406 if a redeclared flag differs from the current one."""
    if received != current or type(received) is not type(current):
        raise PreconditionFailed(
            f"inequivalent arg '{field}' for {kind} '{name}' in vhost '{vhost}': "
            f"received '{fmt_value(received)}' but current is '{fmt_value(current)}'",
            method=method)


def check_equivalent_args(kind: str, name: str, vhost: str, received: dict[str, Any],
                          current: dict[str, Any], known: tuple[str, ...],
                          method: str) -> None:
    """Raise 406 for the first known argument whose value differs."""
    for key in known:
        a, b = received.get(key), current.get(key)
        if key == "x-queue-type":  # RabbitMQ: no type means the default, "classic"
            a = None if a == "classic" else a
            b = None if b == "classic" else b
        if a is None and b is None:
            continue
        if a is not None and b is not None:
            if a == b and amqp_type(a) == amqp_type(b):
                continue
            text = f"received '{fmt_value(a)}' but current is '{fmt_value(b)}'"
        elif a is None:
            text = (f"received none but current is the value '{fmt_value(b)}' "
                    f"of type '{amqp_type(b)}'")
        else:
            text = (f"received the value '{fmt_value(a)}' of type '{amqp_type(a)}' "
                    "but current is none")
        raise PreconditionFailed(
            f"inequivalent arg '{key}' for {kind} '{name}' in vhost '{vhost}': {text}",
            method=method)


def _bad(key: str, name: str, vhost: str, why: str) -> PreconditionFailed:
    return PreconditionFailed(
        f"invalid arg '{key}' for queue '{name}' in vhost '{vhost}': {why}",
        method="queue.declare")


def _int(args: dict[str, Any], key: str, name: str, vhost: str, *, zero: bool = True,
         max_value: int | None = None) -> None:
    v = args.get(key)
    if v is None:
        return
    if isinstance(v, bool) or not isinstance(v, int):
        raise _bad(key, name, vhost, f'"expected integer, got {amqp_type(v)}"')
    if v < 0:
        raise _bad(key, name, vhost, f"{{value_negative,{v}}}")
    if v == 0 and not zero:
        raise _bad(key, name, vhost, f"{{value_zero,{v}}}")
    if max_value is not None and v > max_value:
        raise _bad(key, name, vhost, f"{{max_value_exceeded,{v}}}")


def validate_queue_args(args: dict[str, Any], name: str, vhost: str) -> None:
    """Raise 406 with RabbitMQ's wording for an invalid queue argument."""
    _int(args, "x-message-ttl", name, vhost)
    _int(args, "x-expires", name, vhost, zero=False)
    _int(args, "x-max-length", name, vhost)
    _int(args, "x-max-length-bytes", name, vhost)
    _int(args, "x-max-priority", name, vhost, max_value=255)
    _int(args, "x-delivery-limit", name, vhost)
    ov = args.get("x-overflow")
    if ov is not None and not isinstance(ov, str):
        raise _bad("x-overflow", name, vhost, f"{{unacceptable_type,{amqp_type(ov)}}}")
    if ov is not None and ov not in ("drop-head", "reject-publish", "reject-publish-dlx"):
        raise _bad("x-overflow", name, vhost, "invalid_overflow")
    mode = args.get("x-queue-mode")
    if mode is not None and mode not in ("default", "lazy"):
        raise _bad("x-queue-mode", name, vhost, f'"unsupported queue mode \'{fmt_value(mode)}\'"')
    ver = args.get("x-queue-version")
    if ver is not None and ver not in (1, 2):
        raise _bad("x-queue-version", name, vhost,
                   f'"unsupported queue version \'{fmt_value(ver)}\'"')
    for key in ("x-dead-letter-exchange", "x-dead-letter-routing-key"):
        v = args.get(key)
        if v is not None and not isinstance(v, str):
            raise PreconditionFailed(
                f"invalid type '{amqp_type(v)}' for arg '{key}' in queue '{name}' in "
                f"vhost '{vhost}'", method="queue.declare")
    if args.get("x-dead-letter-routing-key") is not None and \
            args.get("x-dead-letter-exchange") is None:
        raise _bad("x-dead-letter-routing-key", name, vhost, "routing_key_but_no_dlx_defined")
    sac = args.get("x-single-active-consumer")
    if sac is not None and not isinstance(sac, bool):
        raise _bad("x-single-active-consumer", name, vhost,
                   f"{{unacceptable_type,{amqp_type(sac)}}}")
    qt = args.get("x-queue-type")
    if qt is not None and qt != "classic":
        raise _bad("x-queue-type", name, vhost,
                   f"{{unsupported queue type {qt!r}: inbus implements classic queues}}")


def header_routes(headers: dict[str, Any]) -> list[str]:
    """The routing keys of the ``CC`` then ``BCC`` headers: the strings of each array
    (other elements are ignored). As RabbitMQ's ``rabbit_basic:header_routes``, a
    ``CC`` / ``BCC`` header of any other type (a string, a number, void...) makes the
    message invalid: 406, which closes the channel."""
    out: list[str] = []
    for key in ("CC", "BCC"):
        if key in headers:
            v = headers[key]
            if not isinstance(v, (list, tuple)):
                t = "binary" if isinstance(v, bytes) else amqp_type(v)  # (pika: bytes 'x')
                raise invalid_message(f'{{unacceptable_type_in_header,"{key}",{t}}}')
            out += [k for k in v if isinstance(k, str)]
    return out


def invalid_message(why: str) -> PreconditionFailed:
    """RabbitMQ's 406 for a message it cannot build (``rabbit_basic:message/3``)."""
    return PreconditionFailed(f"invalid message: {why}", method="basic.publish")


def parse_expiration(exp: Any) -> float:
    """The ``expiration`` property in seconds, or RabbitMQ's 406 for a bad one."""
    if isinstance(exp, bytes):
        exp = exp.decode("utf-8", "replace")
    if isinstance(exp, str) and exp.isdigit():
        return int(exp) / 1000.0
    # RabbitMQ's wording (Erlang's string:to_integer): no_integer, {leftover_string,..},
    # {value_negative,N}.
    s = exp if isinstance(exp, str) else str(exp)
    i = 1 if s[:1] in ("+", "-") else 0
    j = i
    while j < len(s) and s[j] in "0123456789":
        j += 1
    if j == i:
        why = "no_integer"
    elif j < len(s):
        why = f'{{leftover_string,"{s[j:]}"}}'
    else:
        why = f"{{value_negative,{int(s)}}}"
    raise PreconditionFailed(f"invalid expiration '{s}': {why}", method="basic.publish")
