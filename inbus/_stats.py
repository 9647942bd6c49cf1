"""Immutable statistics snapshots, like ``rabbitmqctl list_queues / list_exchanges``.

``Bus.statistics()`` builds them under the bus lock and returns frozen dataclasses, so a
snapshot never changes after you got it (trio's ``statistics()`` convention).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["BusStatistics", "ExchangeStatistics", "QueueStatistics", "VHostStatistics"]


@dataclass(frozen=True)
class QueueStatistics:
    name: str
    durable: bool
    exclusive: bool
    auto_delete: bool
    arguments: dict[str, Any]
    messages_ready: int
    messages_unacknowledged: int
    message_bytes_ready: int
    consumers: int
    published: int  # messages that entered the queue
    delivered: int  # deliveries to consumers and basic_get
    acked: int
    redelivered: int  # deliveries flagged redelivered
    dropped: int  # expired, overflowed or rejected without a dead-letter exchange
    dead_lettered: int

    @property
    def messages(self) -> int:
        return self.messages_ready + self.messages_unacknowledged


@dataclass(frozen=True)
class ExchangeStatistics:
    name: str
    type: str
    durable: bool
    auto_delete: bool
    internal: bool
    bindings: int
    published_in: int
    routed_out: int  # publishes that reached at least one queue


@dataclass(frozen=True)
class VHostStatistics:
    name: str
    queues: dict[str, QueueStatistics]
    exchanges: dict[str, ExchangeStatistics]


@dataclass(frozen=True)
class BusStatistics:
    vhosts: dict[str, VHostStatistics]
    connections: int
    channels: int
    published: int  # basic_publish calls that passed validation (in a transaction: at
    # its commit; a rolled-back publish is not counted)
    returned: int  # unroutable mandatory messages handed back
    unroutable: int  # publishes that reached no queue (returned or dropped)
    callback_errors: int
    pubsub_published: int

    def queue(self, name: str, vhost: str = "/") -> QueueStatistics:
        """Shortcut: ``bus.statistics().queue("q").messages_ready``. A queue that was not
        there when the statistics were taken is a KeyError that names it."""
        queues = self._vhost(vhost).queues
        if name not in queues:
            raise KeyError(f"no queue {name!r} in vhost {vhost!r} when the statistics were "
                           f"taken ({len(queues)} queues there)")
        return queues[name]

    def exchange(self, name: str, vhost: str = "/") -> ExchangeStatistics:
        """Shortcut: ``bus.statistics().exchange("x").published_in``; a KeyError names a
        missing one."""
        exchanges = self._vhost(vhost).exchanges
        if name not in exchanges:
            raise KeyError(f"no exchange {name!r} in vhost {vhost!r}")
        return exchanges[name]

    def _vhost(self, vhost: str) -> VHostStatistics:
        if vhost not in self.vhosts:
            raise KeyError(f"no vhost {vhost!r} (vhosts: {sorted(self.vhosts)!r})")
        return self.vhosts[vhost]
