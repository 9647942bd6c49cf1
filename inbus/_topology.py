"""Declaring and binding: a Channel's exchange and queue methods (a mixin of
:class:`inbus._channel.Channel`).

Each method validates its arguments, takes the bus lock through ``Channel._op`` (an AMQP
error closes the channel), lets the vhost (pure core) change the topology and flushes the
storage operations it emitted. ``""`` as a queue name means the channel's last declared
queue, as in AMQP.

A change to durable state (a durable exchange or queue declared or deleted, a binding
between durable entities, a purge of persistent messages) returns only once it is
committed (``Bus._await_commit``, after the bus lock is released), as RabbitMQ sends
declare-ok after its commit: a crash right after the call cannot lose it.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from ._errors import NotFound
from ._names import check_short, gen_queue_name
from ._queue import DeclareResult

if TYPE_CHECKING:
    from ._bus import Bus
    from ._connection import Connection
    from ._vhost import VHost

__all__ = ["Topology"]


class Topology:
    """The declaring half of a Channel (state lives on the Channel)."""

    _bus: Bus
    _conn: Connection
    _vh: VHost
    _last_queue: str

    def _op(self) -> AbstractContextManager[None]:
        raise NotImplementedError

    # --- exchanges ---------------------------------------------------------------------

    def exchange_declare(self, exchange: str, exchange_type: str = "direct",
                         passive: bool = False, durable: bool = False,
                         auto_delete: bool = False, internal: bool = False,
                         arguments: dict[str, Any] | None = None) -> None:
        """Declare an exchange of type direct, fanout, topic or headers.

        >>> from inbus import Bus
        >>> ch = Bus().channel()
        >>> ch.exchange_declare("logs", "fanout")
        """
        name = check_short(exchange, "exchange")
        xtype = getattr(exchange_type, "value", exchange_type)
        since = self._bus._n_submits
        with self._op():
            self._vh.exchange_declare(name, xtype, passive, durable, auto_delete, internal,
                                      arguments)
            self._bus._flush_ops_locked(self._vh)
        self._bus._await_commit(since)

    def exchange_delete(self, exchange: str | None = None, if_unused: bool = False) -> None:
        """Delete an exchange and its bindings (``if_unused``: 406 while it is the source
        of a binding). A missing exchange is not an error, as in RabbitMQ 3.10.
        O(its bindings).

        >>> import inbus
        >>> ch = inbus.Bus().channel(); ch.exchange_declare("x", "topic")
        >>> _ = ch.queue_declare("q"); ch.queue_bind("q", "x", "a.#")
        >>> try:
        ...     ch.exchange_delete("x", if_unused=True)
        ... except inbus.PreconditionFailed as e:
        ...     print(e.reply_code)
        406
        """
        name = check_short(exchange or "", "exchange")
        since = self._bus._n_submits
        with self._op():
            self._vh.exchange_delete(name, if_unused)
            self._bus._flush_ops_locked(self._vh)
        self._bus._await_commit(since)

    def exchange_bind(self, destination: str, source: str, routing_key: str = "",
                      arguments: dict[str, Any] | None = None) -> None:
        """Bind exchange ``destination`` to exchange ``source``: what ``source`` routes
        with this binding goes on through ``destination`` (still reaching each queue at
        most once per publish).

        >>> from inbus import Bus
        >>> ch = Bus().channel(); ch.exchange_declare("in", "topic")
        >>> ch.exchange_declare("audit", "fanout"); ch.exchange_bind("audit", "in", "#")
        >>> _ = ch.queue_declare("log"); ch.queue_bind("log", "audit")
        >>> ch.basic_publish("in", "order.created", b"{}")
        >>> ch.basic_get("log").routing_key
        'order.created'
        """
        d, s = check_short(destination, "destination"), check_short(source, "source")
        rk = check_short(routing_key, "routing_key")
        since = self._bus._n_submits
        with self._op():
            self._vh.bind(("exchange", d), s, rk, arguments, "exchange.bind")
            self._bus._flush_ops_locked(self._vh)
        self._bus._await_commit(since)

    def exchange_unbind(self, destination: str | None = None, source: str | None = None,
                        routing_key: str = "", arguments: dict[str, Any] | None = None
                        ) -> None:
        """Remove a binding made by :meth:`exchange_bind` (same key and arguments); a
        missing binding is not an error."""
        d = check_short(destination or "", "destination")
        s = check_short(source or "", "source")
        rk = check_short(routing_key, "routing_key")
        since = self._bus._n_submits
        with self._op():
            self._vh.unbind(("exchange", d), s, rk, arguments, "exchange.unbind")
            self._bus._flush_ops_locked(self._vh)
        self._bus._await_commit(since)

    # --- queues ------------------------------------------------------------------------

    def _queue_name(self, queue: str) -> str:
        name = check_short(queue, "queue")
        if not name and not self._last_queue:
            raise NotFound("no previously declared queue")
        return name or self._last_queue

    def queue_declare(self, queue: str = "", passive: bool = False, durable: bool = False,
                      exclusive: bool = False, auto_delete: bool = False,
                      arguments: dict[str, Any] | None = None) -> DeclareResult:
        """Declare a queue; ``""`` asks for a server-generated ``amq.gen-...`` name.

        >>> from inbus import Bus
        >>> r = Bus().channel().queue_declare("", exclusive=True)
        >>> r.queue.startswith("amq.gen-"), r.message_count, r.consumer_count
        (True, 0, 0)
        """
        name = check_short(queue, "queue")
        since = self._bus._n_submits
        with self._op():
            generated = not name and not passive
            if generated:
                name = gen_queue_name()
            elif not name:
                name = self._last_queue
            bus = self._bus
            q = self._vh.queue_declare(name, passive, durable, exclusive, auto_delete,
                                       arguments, self._conn, bus._now(), generated)
            if exclusive and not passive and q not in self._conn._exclusive:
                self._conn._exclusive.append(q)
            bus._flush_ops_locked(self._vh)
            if q.ready_count and (q.has_ttl or q.next_expiry() is not None):
                bus._expire_queue_locked(self._vh, q)
            if not passive:
                bus._queue_touched(q)
            self._last_queue = name
            result = DeclareResult(name, q.ready_count, len(q.consumers))
        self._bus._await_commit(since)
        return result

    def queue_delete(self, queue: str = "", if_unused: bool = False,
                     if_empty: bool = False) -> int:
        """Delete a queue and its bindings; returns how many ready messages it held. Its
        consumers are cancelled (their channels' cancel callbacks run). ``if_unused`` /
        ``if_empty``: 406 if it has consumers / ready messages. O(messages + bindings).

        >>> from inbus import Bus
        >>> ch = Bus().channel(); _ = ch.queue_declare("q")
        >>> ch.basic_publish("", "q", b"a")
        >>> ch.queue_delete("q")
        1
        """
        since = self._bus._n_submits
        with self._op():
            name = self._queue_name(queue)
            count, q = self._vh.queue_delete(name, if_unused, if_empty, self._conn)
            if q is not None:
                self._bus._after_queue_removed_locked(self._vh, q)
        self._bus._await_commit(since)
        return count

    def queue_purge(self, queue: str = "") -> int:
        """Remove every ready message; returns how many. Unacked messages stay (and may
        come back). O(ready messages).

        >>> from inbus import Bus
        >>> ch = Bus().channel(); _ = ch.queue_declare("q")
        >>> for b in (b"a", b"b", b"c"): ch.basic_publish("", "q", b)
        >>> held = ch.basic_get("q"); ch.queue_purge("q")
        2
        """
        since = self._bus._n_submits
        with self._op():
            n = self._vh.queue_purge(self._queue_name(queue), self._conn)
            self._bus._flush_ops_locked(self._vh)
        self._bus._await_commit(since)
        return n

    def queue_bind(self, queue: str, exchange: str, routing_key: str | None = None,
                   arguments: dict[str, Any] | None = None) -> None:
        """Bind a queue to an exchange (routing_key None = the queue's name; a headers
        exchange matches ``arguments`` instead). Binding twice is one binding. A topic
        binding costs O(words of its key).

        >>> from inbus import Bus
        >>> ch = Bus().channel(); ch.exchange_declare("logs", "topic")
        >>> _ = ch.queue_declare("errors"); ch.queue_bind("errors", "logs", "*.error")
        >>> ch.basic_publish("logs", "db.error", b"!"); ch.basic_publish("logs", "db.info", b".")
        >>> ch.queue_declare("errors", passive=True).message_count
        1
        """
        since = self._bus._n_submits
        with self._op():
            name = self._queue_name(queue)
            rk = name if routing_key is None else check_short(routing_key, "routing_key")
            self._vh.bind(("queue", name), check_short(exchange, "exchange"), rk, arguments,
                          "queue.bind", self._conn)
            self._bus._flush_ops_locked(self._vh)
        self._bus._await_commit(since)

    def queue_unbind(self, queue: str, exchange: str | None = None,
                     routing_key: str | None = None,
                     arguments: dict[str, Any] | None = None) -> None:
        """Remove a binding made by :meth:`queue_bind` (same key and arguments); a
        missing binding is not an error.

        >>> from inbus import Bus
        >>> ch = Bus().channel(); _ = ch.queue_declare("q")
        >>> ch.queue_bind("q", "amq.direct", "k"); ch.queue_unbind("q", "amq.direct", "k")
        >>> ch.basic_publish("amq.direct", "k", b"x"); ch.basic_get("q") is None
        True
        """
        since = self._bus._n_submits
        with self._op():
            name = self._queue_name(queue)
            rk = name if routing_key is None else check_short(routing_key, "routing_key")
            self._vh.unbind(("queue", name), check_short(exchange or "", "exchange"), rk,
                            arguments, "queue.unbind", self._conn)
            self._bus._flush_ops_locked(self._vh)
        self._bus._await_commit(since)
