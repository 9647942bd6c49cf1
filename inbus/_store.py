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

This module is pure: no threads, no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, Union

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


@dataclass(frozen=True)
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


@dataclass(frozen=True)
class PutMessage:
    record: MessageRecord


@dataclass(frozen=True)
class DeleteMessage:
    vhost: str
    queue: str
    seq: int


@dataclass(frozen=True)
class MarkDelivered:
    vhost: str
    queue: str
    seq: int


Op = Union[
    PutVhost, DeleteVhost, PutExchange, DeleteExchange, PutQueue, DeleteQueue, PurgeQueue,
    PutBinding, DeleteBinding, PutMessage, DeleteMessage, MarkDelivered,
]


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
