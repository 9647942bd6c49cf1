"""The storage seam: what the bus persists, as plain records and operations.

Theory of operation
-------------------
The broker core never talks to a database. When something durable changes it emits
*operations* (``PutQueue``, ``PutMessage``, ``DeleteMessage`` ...); the shell hands them to
a :class:`Store`, batched by a group committer, and fires publisher confirms only after
``apply`` returned. On open, ``load()`` returns a :class:`Snapshot` from which the broker
rebuilds its state (routing tries and tables are rebuilt, never stored).

What persists is what RabbitMQ keeps across a restart: virtual hosts; durable exchanges
and queues with their arguments; bindings whose source and destination are both durable;
persistent messages (``delivery_mode=2``) in durable queues.

The default :class:`MemoryStore` keeps nothing. ``inbus._sqlite.SqliteStore`` keeps a file.

Redelivered honesty: ``MessageRecord.redelivered`` in a snapshot is True unless the store
is *certain* the message was never delivered (a store that was not closed cleanly reports
every recovered message as redelivered, since ``MarkDelivered`` operations may have been
lost with the crash).

Durable stores encode property and argument tables with :func:`encode_value` (JSON with
tagged bytes, bytearray, Decimal, datetime, date, tuples and non-finite floats; never
pickle) and get equal values of the same types back from :func:`decode_value` (a
memoryview comes back as bytes).

This module is pure: no threads, no I/O.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Protocol

__all__ = [
    "BindingRecord",
    "DeleteBinding",
    "DeleteExchange",
    "DeleteMessage",
    "DeleteQueue",
    "DeleteVhost",
    "ExchangeRecord",
    "MarkDelivered",
    "MemoryStore",
    "MessageRecord",
    "Op",
    "PurgeQueue",
    "PutBinding",
    "PutExchange",
    "PutMessage",
    "PutQueue",
    "PutVhost",
    "QueueRecord",
    "Snapshot",
    "Store",
    "coalesce",
    "decode_value",
    "encode_value",
]


# --- records -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExchangeRecord:
    vhost: str
    name: str
    type: str  # "direct" | "fanout" | "topic" | "headers"
    durable: bool = True
    auto_delete: bool = False
    internal: bool = False
    arguments: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class QueueRecord:
    vhost: str
    name: str
    durable: bool = True
    auto_delete: bool = False
    arguments: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class BindingRecord:
    vhost: str
    source: str  # exchange name
    destination: str
    destination_kind: str  # "queue" | "exchange"
    routing_key: str
    arguments: dict[str, Any] = field(default_factory=dict)


# The per-message records and ops below are created on every persistent publish and ack,
# so they are plain slotted dataclasses: a frozen one sets each field through
# object.__setattr__ (~1 µs for a MessageRecord instead of ~0.15 µs). Treat them as
# immutable all the same (coalesce() makes a new one rather than change one).
@dataclass(slots=True)
class MessageRecord:
    """A persistent message sitting in a durable queue.

    ``seq`` orders messages within their queue (requeued messages keep their seq, so
    ``ORDER BY seq`` is the queue's order). ``properties`` maps pika's BasicProperties
    field names to values (``None`` fields omitted); header tables may hold str, bytes,
    int, float, bool, None, Decimal, datetime, lists and nested dicts: a store must give
    back equal values of the same types. ``expires_at`` is a wall-clock time (seconds
    since the epoch) or None.
    """

    vhost: str
    queue: str
    seq: int
    exchange: str
    routing_key: str
    body: bytes
    properties: dict[str, Any] = field(default_factory=dict)
    redelivered: bool = False
    expires_at: float | None = None
    death_count: int = 0  # reserved for dead-lettering bookkeeping
    returns: int = 0  # times it went back to its queue (counted on x-delivery-limit queues)
    routing_keys: list[str] | None = None  # every key it was routed with, when CC / BCC
    # headers added some (BCC ones included, though that header was stripped)


@dataclass
class Snapshot:
    vhosts: list[str] = field(default_factory=list)
    exchanges: list[ExchangeRecord] = field(default_factory=list)
    queues: list[QueueRecord] = field(default_factory=list)
    bindings: list[BindingRecord] = field(default_factory=list)
    messages: list[MessageRecord] = field(default_factory=list)  # by (vhost, queue, seq)
    clean: bool = True  # was the store closed cleanly last time?


# --- operations ----------------------------------------------------------------------------
# Applying a delete cascades as RabbitMQ does: DeleteVhost removes everything in it;
# DeleteExchange removes bindings with it as source or destination; DeleteQueue removes
# its bindings and messages. Applying a Put* twice replaces; deleting what is absent is a
# no-op (operations are idempotent, so a batch can be replayed safely).


@dataclass(frozen=True)
class PutVhost:
    name: str


@dataclass(frozen=True)
class DeleteVhost:
    name: str


@dataclass(frozen=True)
class PutExchange:
    record: ExchangeRecord


@dataclass(frozen=True)
class DeleteExchange:
    vhost: str
    name: str


@dataclass(frozen=True)
class PutQueue:
    record: QueueRecord


@dataclass(frozen=True)
class DeleteQueue:
    vhost: str
    name: str


@dataclass(frozen=True)
class PurgeQueue:
    vhost: str
    name: str


@dataclass(frozen=True)
class PutBinding:
    record: BindingRecord


@dataclass(frozen=True)
class DeleteBinding:
    record: BindingRecord  # matched on every field, arguments included


@dataclass(slots=True)
class PutMessage:
    record: MessageRecord


@dataclass(slots=True)
class DeleteMessage:
    vhost: str
    queue: str
    seq: int


@dataclass(slots=True)
class MarkDelivered:
    """The message went back to its queue after a delivery: stored as redelivered, with
    its return count (x-delivery-limit) raised to ``returns``."""

    vhost: str
    queue: str
    seq: int
    returns: int = 0


Op = (
    PutVhost | DeleteVhost | PutExchange | DeleteExchange | PutQueue | DeleteQueue
    | PurgeQueue | PutBinding | DeleteBinding | PutMessage | DeleteMessage | MarkDelivered
)


class Store(Protocol):
    """What the bus needs from storage. Every method may raise PersistenceError."""

    path: str | None

    def load(self) -> Snapshot:
        """Everything stored, for the bus to rebuild from. Called once, at open."""
        ...

    def apply(self, ops: Sequence[Op]) -> None:
        """Apply ``ops`` in order as ONE atomic transaction, durable when it returns."""
        ...

    def close(self) -> None:
        """Mark the store cleanly closed and release the file. Idempotent."""
        ...


class MemoryStore:
    """The default store: keeps nothing, so a Bus() starts empty every time."""

    path: str | None = None

    def load(self) -> Snapshot:
        return Snapshot()

    def apply(self, ops: Sequence[Op]) -> None:
        return None

    def close(self) -> None:
        return None


# --- tagged JSON for tables (properties, arguments), used by stores -----------------------

_TAG = "$inbus"
# Stateless encoders, built once (json.dumps with options builds a new one per call).
_JSON = json.JSONEncoder(separators=(",", ":"), allow_nan=False)
_JSON_CANONICAL = json.JSONEncoder(separators=(",", ":"), allow_nan=False, sort_keys=True)


def _no_default(o: Any) -> Any:
    raise TypeError(f"Object of type {type(o).__name__} is not JSON serializable")


# JSONEncoder.encode builds a new C encoder on every call (~0.7 µs of a message's ~1.4 µs
# encoding): build the one ``_JSON`` uses once. Same output (ASCII, compact, no NaN);
# no circular-reference markers, as _enc has already rebuilt the value as a fresh tree.
_c_make_encoder = getattr(json.encoder, "c_make_encoder", None)
_C_ENCODE = (_c_make_encoder(None, _no_default, json.encoder.encode_basestring_ascii, None,
                             ":", ",", False, False, False)
             if _c_make_encoder is not None else None)


def _enc(v: Any) -> Any:
    t = type(v)
    if v is None or t is str or t is bool or t is int:
        return v
    if t is float:
        return v if math.isfinite(v) else {_TAG: "float", "v": repr(v)}
    if t is dict:
        out: dict[str, Any] = {}
        for k, x in v.items():
            if type(k) is not str:
                raise TypeError(f"cannot store a table with a {type(k).__name__} key {k!r}: "
                                "header and argument keys must be str")
            out[k] = _enc(x)
        return {_TAG: "dict", "v": out} if _TAG in out else out
    if t is list:
        return [_enc(x) for x in v]
    if isinstance(v, (bytes, bytearray, memoryview)):
        return {_TAG: "bytearray" if t is bytearray else "bytes",
                "v": base64.b64encode(bytes(v)).decode("ascii")}
    if isinstance(v, Decimal):
        return {_TAG: "decimal", "v": str(v)}
    if isinstance(v, datetime):
        return {_TAG: "datetime", "v": v.isoformat()}
    if isinstance(v, date):
        return {_TAG: "date", "v": v.isoformat()}
    if isinstance(v, tuple):
        return {_TAG: "tuple", "v": [_enc(x) for x in v]}
    bases: tuple[type[Any], ...] = (bool, int, float, str, dict, list)
    for base in bases:  # subclasses (IntEnum, OrderedDict...) are stored as their base
        if isinstance(v, base):
            return _enc(base(v))
    raise TypeError(f"cannot store a value of type {t.__name__} in properties or arguments "
                    "(allowed: str, bytes, int, float, bool, None, Decimal, datetime, "
                    "list, tuple, dict)")


def _dec(v: Any) -> Any:
    if type(v) is list:
        return [_dec(x) for x in v]
    if type(v) is not dict:
        return v
    tag = v.get(_TAG)
    if tag is None:
        return {k: _dec(x) for k, x in v.items()}
    x = v["v"]
    if tag == "dict":
        return {k: _dec(y) for k, y in x.items()}
    if tag == "bytes":
        return base64.b64decode(x)
    if tag == "bytearray":
        return bytearray(base64.b64decode(x))
    if tag == "decimal":
        return Decimal(x)
    if tag == "datetime":
        return datetime.fromisoformat(x)
    if tag == "date":
        return date.fromisoformat(x)
    if tag == "tuple":
        return tuple(_dec(y) for y in x)
    if tag == "float":
        return float(x)
    raise ValueError(f"unknown tag {tag!r} in stored JSON")


def _plain_bytes(v: Any) -> Any:
    """``v`` with every bytearray (and memoryview) made bytes, recursively."""
    if isinstance(v, (bytearray, memoryview)):
        return bytes(v)
    if isinstance(v, dict):
        return {k: _plain_bytes(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_plain_bytes(x) for x in v]
    if isinstance(v, tuple):
        return tuple(_plain_bytes(x) for x in v)
    return v


def encode_value(value: Any, *, canonical: bool = False) -> str:
    """``value`` (a table of properties or arguments) as tagged JSON text.

    ``canonical=True`` sorts keys and stores a bytearray as bytes, so tables equal as
    binding arguments (``_exchanges.freeze``) give equal text. Raises TypeError for a
    value that cannot be stored. O(size of value).
    """
    if not value and type(value) is dict:
        return "{}"
    if canonical:
        value = _plain_bytes(value)
    if _C_ENCODE is not None and not canonical:
        return "".join(_C_ENCODE(_enc(value), 0))
    return (_JSON_CANONICAL if canonical else _JSON).encode(_enc(value))


def decode_value(text: str) -> Any:
    """The inverse of :func:`encode_value`: equal values of the same types."""
    if text == "{}":
        return {}
    raw = json.loads(text)
    return _dec(raw) if _TAG in text else raw


# --- coalescing a batch of operations -----------------------------------------------------


def coalesce(ops: Sequence[Op]) -> Iterator[tuple[type, list[Any]]]:
    """(op type, ops) runs with the same effect as ``ops`` applied one by one, in order.

    For a store that applies runs of one op type at once (SQL ``executemany``). O(len(ops)).

    PutMessage, DeleteMessage and MarkDelivered on different (vhost, queue, seq) keys
    commute; each key keeps one pending op of net effect: put+delete -> delete; put+mark ->
    put marked; put+put -> the last put, marked if either was; delete+mark -> delete (and
    the highest return count wins wherever two meet, as the store's max() does). A put
    after a pending delete or mark of its key, and any other op, first drains the pending
    ones (so order is kept where it matters).
    """
    Key = tuple[str, str, int]
    puts: dict[Key, PutMessage] = {}
    dels: dict[Key, DeleteMessage] = {}
    marks: dict[Key, MarkDelivered] = {}
    other: list[Op] = []

    def drain() -> list[tuple[type, list[Any]]]:
        out: list[tuple[type, list[Any]]] = []
        if other:
            out.append((type(other[0]), list(other)))
        out += [(k, list(d.values())) for k, d in ((DeleteMessage, dels), (PutMessage, puts),
                                                   (MarkDelivered, marks)) if d]
        for d in (other, dels, puts, marks):
            d.clear()
        return out

    for op in ops:
        if isinstance(op, PutMessage):
            r = op.record
            k = (r.vhost, r.queue, r.seq)
            if other or k in dels or k in marks:
                yield from drain()
            old = puts.get(k)
            if old is not None and ((old.record.redelivered and not r.redelivered)
                                    or old.record.returns > r.returns):
                op = PutMessage(replace(r, redelivered=old.record.redelivered or r.redelivered,
                                        returns=max(old.record.returns, r.returns)))
            puts[k] = op
        elif isinstance(op, DeleteMessage):
            if other:
                yield from drain()
            k = (op.vhost, op.queue, op.seq)
            puts.pop(k, None)
            marks.pop(k, None)
            dels[k] = op
        elif isinstance(op, MarkDelivered):
            if other:
                yield from drain()
            k = (op.vhost, op.queue, op.seq)
            put = puts.get(k)
            if put is not None:
                r = put.record
                if not r.redelivered or r.returns < op.returns:
                    puts[k] = PutMessage(replace(r, redelivered=True,
                                                 returns=max(r.returns, op.returns)))
            elif k not in dels:
                old_mark = marks.get(k)
                if old_mark is None or old_mark.returns <= op.returns:
                    marks[k] = op
        else:
            if puts or dels or marks or (other and type(other[0]) is not type(op)):
                yield from drain()
            other.append(op)
    yield from drain()
