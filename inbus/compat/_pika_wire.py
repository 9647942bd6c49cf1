"""pika look-alike, part 3: what a trip through pika's encoder and decoder does to
properties and their headers table, so that a publish behaves as with the real client.

Every publish and every delivery gets properties (and headers) of its own, as the wire
gives them (:func:`copy_props`).

pika 1.x encodes str, bytes, bool, int (64-bit), Decimal, datetime, dict, list and None;
any other value (a float, a tuple, a bytearray...) makes ``basic_publish`` raise
``UnsupportedAMQPFieldException``, a key over 255 bytes ``ShortStringTooLong``. On the
way back an int comes back an int, a Decimal normalised, a datetime as an aware UTC
datetime in whole seconds, a bytes key as a str. Method arguments (declare, bind and
consume tables) and names go through the same client-side checks (:func:`encodable`,
:func:`short`). Plain data; no bus involved.
"""

from __future__ import annotations

import calendar
import copy
import decimal
import struct
from datetime import datetime, timezone
from typing import Any

from .._message import BasicProperties
from . import pika_exceptions as exceptions


def copy_props(p: BasicProperties | None, publish: bool = False) -> BasicProperties | None:
    """A copy, as a trip through the wire makes one: every publish and every delivery
    has properties (and headers) of its own. On ``publish`` the headers go through what
    pika's encoder and decoder do to them."""
    if p is None:
        return None
    if not isinstance(p, BasicProperties):
        raise TypeError(f"properties must be a BasicProperties, not {type(p).__name__}")
    if p.headers is None:
        return p.copy()
    return p.copy(headers=wire_table(p.headers) if publish else copy.deepcopy(p.headers))


def wire_table(table: dict[Any, Any]) -> dict[Any, Any]:
    """``table`` as a consumer gets it back from RabbitMQ through pika (raises what
    pika's encoder raises)."""
    out: dict[Any, Any] = {}
    for key, value in table.items():
        out[_wire_key(key)] = wire_value(value)
    return out


def _wire_key(key: Any) -> Any:
    raw = key if isinstance(key, bytes) else key.encode("utf-8")  # pika's as_bytes
    if len(raw) > 255:
        raise exceptions.ShortStringTooLong(raw)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw


def wire_value(value: Any) -> Any:
    """One field value through pika's ``encode_value`` and ``decode_value``."""
    if isinstance(value, (str, bytes)):
        return value
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        struct.pack(">q", value)    # struct.error beyond 64 bits, as in pika
        return int(value)
    if isinstance(value, decimal.Decimal):
        value = value.normalize()
        exponent = value.as_tuple().exponent
        assert isinstance(exponent, int)
        if exponent < 0:
            decimals = -exponent
            raw = int(value * (decimal.Decimal(10) ** decimals))
        else:
            decimals, raw = 0, int(value)
        struct.pack(">Bi", decimals, raw)
        return decimal.Decimal(raw) * (decimal.Decimal(10) ** -decimals)
    if isinstance(value, datetime):
        return datetime.fromtimestamp(calendar.timegm(value.utctimetuple()), timezone.utc)
    if isinstance(value, dict):
        return wire_table(value)
    if isinstance(value, list):
        return [wire_value(v) for v in value]
    if value is None:
        return None
    raise exceptions.UnsupportedAMQPFieldException([], value)


# --- pika's client-side checks of method arguments ---------------------------------


def short(value: Any, what: str, required: bool = False) -> str:
    """A name or key as pika checks it: a str (None means "" where pika allows it,
    ``required``: pika's ``require_string``), at most 255 bytes of UTF-8."""
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str or unicode str, but got {value!r}")
    if len(value) > 63 and len(value.encode("utf-8")) > 255:
        raise exceptions.ShortStringTooLong(value.encode("utf-8"))
    return value


def encodable(table: dict[str, Any] | None) -> dict[str, Any] | None:
    """Method arguments as pika puts them on the wire: what pika's encoder raises
    (UnsupportedAMQPFieldException for a float, a tuple..., struct.error for an int
    beyond 64 bits) is raised client-side, before anything reaches the bus."""
    return None if table is None else wire_table(table)
