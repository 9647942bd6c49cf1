"""A virtual host: exchanges, queues, bindings, routing and dead-lettering.

Theory of operation
-------------------
Every AMQP rule about entities lives here, as plain methods that either change the state
and return what happened or raise an :class:`~inbus.AMQPError` with RabbitMQ's reply code
and wording (the shell closes the channel). The routing decision follows RabbitMQ's
``rabbit_exchange:route/2``: a work list of exchanges starting at the published-to one;
each exchange routes to queues and exchanges (exchange-to-exchange bindings, cycles cut
by a seen-set); an exchange whose own bindings matched nothing hands the message to its
``alternate-exchange``; every queue is collected once, so a queue reached by several
paths gets one copy.

Durable changes are appended to ``self.ops`` as storage operations
(:mod:`inbus._store`); the shell drains them after each call and commits them.

Pure: no locks, threads, clock or I/O (``now`` is passed in).
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from typing import Any

from . import _store as st
from ._args import (
    EXCHANGE_ARGS,
    QUEUE_ARGS,
    amqp_type,
    check_equivalent,
    check_equivalent_args,
    validate_queue_args,
)
from ._errors import AccessRefused, CommandInvalid, NotFound, PreconditionFailed, ResourceLocked
from ._exchanges import EXCHANGE_TYPES, Dest, Exchange, HeadersExchange, freeze, make_exchange
from ._message import BasicProperties, Content, RoutedContent
from ._queue import QMsg, Queue

__all__ = ["VHost"]

ROUTE_CACHE = 4096  # routing keys cached per exchange (see VHost.route)

_PREDECLARED = (("amq.direct", "direct"), ("amq.fanout", "fanout"), ("amq.topic", "topic"),
                ("amq.headers", "headers"), ("amq.match", "headers"))


class VHost:
    """The entities of one virtual host."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.exchanges: dict[str, Exchange] = {}
        self.queues: dict[str, Queue] = {}
        self.ops: list[st.Op] = []
        self.cached: list[Exchange] = []  # exchanges with cached routes (see route())
        self.published_gone = 0  # what deleted exchanges had counted (see published())
        for xname, xtype in _PREDECLARED:
            self.exchanges[xname] = make_exchange(xtype, xname, durable=True)
        self.default = make_exchange("direct", "", durable=True)
        self.exchanges[""] = self.default

    # --- helpers -----------------------------------------------------------------------

    def _nf(self, kind: str, name: str, method: str) -> NotFound:
        return NotFound(f"no {kind} '{name}' in vhost '{self.name}'", method=method)

    def get_exchange(self, name: str, method: str) -> Exchange:
        x = self.exchanges.get(name)
        if x is None:
            raise self._nf("exchange", name, method)
        return x

    def get_queue(self, name: str, method: str, conn: Any = None) -> Queue:
        q = self.queues.get(name)
        if q is None:
            raise self._nf("queue", name, method)
        if q.exclusive_owner is not None and q.exclusive_owner is not conn:
            raise self.locked(name, method)
        return q

    def locked(self, name: str, method: str) -> ResourceLocked:
        return ResourceLocked(
            f"cannot obtain exclusive access to locked queue '{name}' in vhost '{self.name}'."
            " It could be originally declared on another connection or the exclusive "
            "property value does not match that of the original declaration.",
            method=method)

    def _default_refused(self, method: str) -> AccessRefused:
        return AccessRefused("operation not permitted on the default exchange", method=method)

    @staticmethod
    def _is_durable_dest(vh: VHost, dest: Dest) -> bool:
        ent: Any = vh.queues.get(dest[1]) if dest[0] == "queue" else vh.exchanges.get(dest[1])
        return bool(ent is not None and ent.durable)

    def _binding_op(self, put: bool, source: Exchange, dest: Dest, rk: str,
                    args: dict[str, Any]) -> None:
        if source.durable and self._is_durable_dest(self, dest) and source.name:
            rec = st.BindingRecord(self.name, source.name, dest[1], dest[0], rk, dict(args))
            self.ops.append(st.PutBinding(rec) if put else st.DeleteBinding(rec))

    # --- exchanges ---------------------------------------------------------------------

    def exchange_declare(self, name: str, type_: str, passive: bool = False,
                         durable: bool = False, auto_delete: bool = False,
                         internal: bool = False, arguments: dict[str, Any] | None = None
                         ) -> Exchange:
        m = "exchange.declare"
        args = dict(arguments or {})
        if name == "":
            raise self._default_refused(m)
        x = self.exchanges.get(name)
        if passive:
            if x is None:
                raise self._nf("exchange", name, m)
            return x
        if x is None and name.startswith("amq."):
            raise AccessRefused(
                f"exchange name '{name}' contains reserved prefix 'amq.*'", method=m)
        if type_ not in EXCHANGE_TYPES:
            raise CommandInvalid(f"unknown exchange type '{type_}'", scope="connection",
                                 method=m)
        if x is not None:
            check_equivalent("exchange", name, self.name, "type", type_, x.type, m)
            check_equivalent("exchange", name, self.name, "durable", durable, x.durable, m)
            check_equivalent("exchange", name, self.name, "auto_delete", auto_delete,
                             x.auto_delete, m)
            check_equivalent("exchange", name, self.name, "internal", internal, x.internal, m)
            check_equivalent_args("exchange", name, self.name, args, x.arguments,
                                  EXCHANGE_ARGS, m)
            return x
        x = make_exchange(type_, name, durable, auto_delete, internal, args)
        self.exchanges[name] = x
        self.routes_changed()  # an alternate exchange or e2e path may now lead somewhere
        if durable:
            self.ops.append(st.PutExchange(st.ExchangeRecord(
                self.name, name, type_, durable, auto_delete, internal, args)))
        return x

    def exchange_delete(self, name: str, if_unused: bool = False) -> None:
        m = "exchange.delete"
        if name == "":
            raise self._default_refused(m)
        x = self.exchanges.get(name)
        if x is None:
            return  # RabbitMQ 3.10: deleting a missing exchange succeeds
        if name.startswith("amq."):
            raise AccessRefused(
                f"deletion of system exchange '{name}' in vhost '{self.name}' not allowed",
                method=m)
        if if_unused and x.bindings:
            raise PreconditionFailed(f"exchange '{name}' in vhost '{self.name}' in use",
                                     method=m)
        self._remove_exchange(x)

    def published(self) -> int:
        """Messages published to this vhost's exchanges (deleted ones included). O(exchanges)."""
        return self.published_gone + sum(x.published_in for x in self.exchanges.values())

    def _remove_exchange(self, x: Exchange) -> None:
        del self.exchanges[x.name]
        self.published_gone += x.published_in
        self.routes_changed()
        if x.durable:
            self.ops.append(st.DeleteExchange(self.name, x.name))
        # Bindings where it is the destination go too; sources may then auto-delete.
        for src in list(self.exchanges.values()):
            if src.bindings and src.unbind_destination(("exchange", x.name)):
                self._maybe_autodelete(src)

    def _maybe_autodelete(self, x: Exchange) -> None:
        if x.auto_delete and not x.bindings and x.name in self.exchanges:
            self._remove_exchange(x)

    def bind(self, dest: Dest, source: str, routing_key: str,
             arguments: dict[str, Any] | None, method: str, conn: Any = None) -> None:
        args = dict(arguments or {})
        if source == "" or (dest[0] == "exchange" and dest[1] == ""):
            raise self._default_refused(method)
        x = self.get_exchange(source, method)  # RabbitMQ reports a missing source first
        if dest[0] == "queue":
            if dest[1] not in self.queues:
                raise self._nf("queue", dest[1], method)
        else:
            self.get_exchange(dest[1], method)
        # As RabbitMQ (rabbit_binding:add): the exchange type validates the binding
        # before the queue's exclusivity is checked.
        if isinstance(x, HeadersExchange) and "x-match" in args:
            mode = args["x-match"]
            if not isinstance(mode, str):
                raise PreconditionFailed(
                    f"Invalid x-match field type {_erl_type(mode)} (value "
                    f"{_erl_value(mode)}); expected longstr", method=method)
            if mode not in ("all", "any", "all-with-x", "any-with-x"):
                raise PreconditionFailed(
                    f'Invalid x-match field value <<"{mode}">>; expected all, any, '
                    "all-with-x, or any-with-x", method=method)
        if dest[0] == "queue":
            self.get_queue(dest[1], method, conn)  # 405: another connection's exclusive
        if x.bind(dest, routing_key, args):
            self.routes_changed()
            self._binding_op(True, x, dest, routing_key, args)

    def unbind(self, dest: Dest, source: str, routing_key: str,
               arguments: dict[str, Any] | None, method: str, conn: Any = None) -> None:
        args = dict(arguments or {})
        if source == "" or (dest[0] == "exchange" and dest[1] == ""):
            raise self._default_refused(method)
        x = self.exchanges.get(source)
        if x is None or (dest, routing_key, freeze(args)) not in x.bindings:
            return  # RabbitMQ 3.10: unbinding what does not exist succeeds
        if dest[0] == "queue" and dest[1] in self.queues:
            self.get_queue(dest[1], method, conn)  # 405 for another's exclusive queue
        if x.unbind(dest, routing_key, args):
            self.routes_changed()
            self._binding_op(False, x, dest, routing_key, args)
            self._maybe_autodelete(x)

    # --- queues ------------------------------------------------------------------------

    def queue_declare(self, name: str, passive: bool = False, durable: bool = False,
                      exclusive: bool = False, auto_delete: bool = False,
                      arguments: dict[str, Any] | None = None, conn: Any = None,
                      now: float = 0.0, server_named: bool = False) -> Queue:
        m = "queue.declare"
        args = dict(arguments or {})
        # RabbitMQ 3.10 (rabbit_channel): "Durable = DurableDeclare andalso not
        # ExclusiveDeclare": an exclusive queue is never durable, whatever was asked, and
        # a redeclaration compares against that.
        durable = durable and not exclusive
        q = self.queues.get(name)
        if passive:
            if q is None:
                raise self._nf("queue", name, m)
            if q.exclusive_owner is not None and q.exclusive_owner is not conn:
                raise self.locked(name, m)
            q.last_used = now  # a passive declare counts as use for x-expires (RabbitMQ)
            return q
        # RabbitMQ refuses every active declare of an amq.* queue name, an existing
        # server-named queue's included (exchanges: only new ones, see exchange_declare)
        if name.startswith("amq.") and not server_named:
            raise AccessRefused(f"queue name '{name}' contains reserved prefix 'amq.*'",
                                method=m)
        if q is not None:
            # RabbitMQ checks exclusive access (owner and flag, "strict") before the rest
            if q.exclusive_owner is not None and q.exclusive_owner is not conn:
                raise self.locked(name, m)
            if exclusive != (q.exclusive_owner is not None):
                raise self.locked(name, m)
            check_equivalent("queue", name, self.name, "durable", durable, q.durable, m)
            check_equivalent("queue", name, self.name, "auto_delete", auto_delete,
                             q.auto_delete, m)
            check_equivalent_args("queue", name, self.name, args, q.arguments, QUEUE_ARGS, m)
            q.last_used = now
            return q
        validate_queue_args(args, name, self.name)
        q = Queue(self.name, name, durable, conn if exclusive else None, auto_delete, args,
                  now)
        self.queues[name] = q
        self.default.bindings[(("queue", name), name, None)] = {}
        self.routes_changed()
        if durable and not exclusive:
            self.ops.append(st.PutQueue(st.QueueRecord(self.name, name, durable,
                                                       auto_delete, args)))
        return q

    def queue_delete(self, name: str, if_unused: bool = False, if_empty: bool = False,
                     conn: Any = None) -> tuple[int, Queue | None]:
        m = "queue.delete"
        q = self.queues.get(name)
        if q is None:
            return 0, None  # RabbitMQ 3.10: deleting a missing queue succeeds with 0
        if q.exclusive_owner is not None and q.exclusive_owner is not conn:
            raise self.locked(name, m)
        if if_unused and q.consumers:
            raise PreconditionFailed(f"queue '{name}' in vhost '{self.name}' in use", method=m)
        if if_empty and q.ready_count:
            raise PreconditionFailed(f"queue '{name}' in vhost '{self.name}' not empty",
                                     method=m)
        count = q.ready_count
        self.remove_queue(q)
        return count, q

    def remove_queue(self, q: Queue) -> None:
        """Delete a queue with its bindings (auto-delete exchanges may follow)."""
        if self.queues.get(q.name) is not q:
            return
        del self.queues[q.name]
        q.deleted = True
        self.routes_changed()
        del self.default.bindings[(("queue", q.name), q.name, None)]
        if q.durable and q.exclusive_owner is None:
            self.ops.append(st.DeleteQueue(self.name, q.name))
        dest = ("queue", q.name)
        for x in list(self.exchanges.values()):
            if x.bindings and x is not self.default and x.unbind_destination(dest):
                self._maybe_autodelete(x)

    def queue_purge(self, name: str, conn: Any = None) -> int:
        q = self.get_queue(name, "queue.purge", conn)
        n, persistent = q.purge()
        if q.durable and persistent:
            self.ops.append(st.PurgeQueue(self.name, q.name))
        return n

    # --- routing -----------------------------------------------------------------------

    def routes_changed(self) -> None:
        """Forget every cached route: a binding, exchange or queue came or went.
        O(exchanges with cached routes)."""
        for x in self.cached:
            x.routes.clear()
        self.cached.clear()

    def route(self, x: Exchange, routing_key: str, headers: dict[str, Any] | None
              ) -> Sequence[Queue]:
        """The queues a message published to ``x`` reaches, each once, in route order.

        A result that cannot depend on the headers (no headers exchange on the way) is
        cached on ``x`` per routing key (at most ``ROUTE_CACHE`` keys) until the
        vhost's topology changes (:meth:`routes_changed`): O(1) when cached."""
        hit = x.routes.get(routing_key)
        if hit is not None:
            return hit
        if x is self.default:
            q = self.queues.get(routing_key)
            return self._cache_route(x, routing_key, (q,) if q is not None else ())
        dests = x.route(routing_key, headers)
        if not dests and x.alternate is None:
            return self._cache_route(x, routing_key, ())
        if dests:
            # Fast path: only queue destinations (one exchange lists each once).
            allq = self.queues
            out: list[Queue] = []
            for kind, name in dests:
                if kind != "queue":
                    break
                q = allq.get(name)
                if q is not None:
                    out.append(q)
            else:
                return self._cache_route(x, routing_key, tuple(out))
        queues: dict[str, Queue] = {}
        seen = {x.name}
        work: list[tuple[Exchange, Any]] = [(x, dests)]
        while work:
            ex, ds = work.pop(0)
            if not ds and ex.alternate is not None:
                ds = (("exchange", ex.alternate),)
            for nx in self._reach(ds, queues, seen):
                work.append((nx, nx.route(routing_key, headers)))
        return tuple(queues.values())

    def _reach(self, dests: Any, queues: dict[str, Queue], seen: set[str]
               ) -> list[Exchange]:
        """Add the queues among ``dests`` to ``queues`` (each once); return the exchanges
        among them not ``seen`` yet (now seen), to route through next."""
        nxt: list[Exchange] = []
        for kind, name in dests:
            if kind == "queue":
                if name not in queues:
                    q = self.queues.get(name)
                    if q is not None:
                        queues[name] = q
            elif name not in seen:
                seen.add(name)
                nx = self.exchanges.get(name)
                if nx is not None:
                    nxt.append(nx)
        return nxt

    def _cache_route(self, x: Exchange, routing_key: str, queues: tuple[Queue, ...]
                     ) -> tuple[Queue, ...]:
        # (a headers exchange routes on the headers, not the key)
        if x.cache_routes and x.type != "headers":
            routes = x.routes
            if not routes:
                self.cached.append(x)
            elif len(routes) >= ROUTE_CACHE:
                routes.clear()
            routes[routing_key] = queues
        return queues

    def route_keys(self, x: Exchange, routing_keys: list[str],
                   headers: dict[str, Any] | None) -> Sequence[Queue]:
        """Route with several keys (CC / BCC headers, dead-letter keys); each queue once.

        As RabbitMQ's ``rabbit_exchange:route``: each exchange on the way routes the
        message with all its keys at once, and its alternate exchange takes it only when
        none of them matched (not once per key that matched nothing). Not cached."""
        if len(routing_keys) == 1:
            return self.route(x, routing_keys[0], headers)
        queues: dict[str, Queue] = {}
        seen = {x.name}
        work = [x]
        while work:
            ex = work.pop(0)
            ds: dict[Dest, None] = {}
            for rk in routing_keys:
                if ex is self.default:
                    ds[("queue", rk)] = None
                else:
                    ds.update(dict.fromkeys(ex.route(rk, headers)))
            if not ds and ex.alternate is not None:
                ds[("exchange", ex.alternate)] = None
            work += self._reach(ds, queues, seen)
        return list(queues.values())

    # --- dead-lettering ----------------------------------------------------------------

    def dead_letter(self, q: Queue, m: QMsg, reason: str, wall_time: float
                    ) -> tuple[Exchange, list[str], Content] | None:
        """Build the dead-lettered copy of ``m`` leaving ``q`` for ``reason``.

        Returns (dead-letter exchange, routing keys, new content) or None when the queue
        has no (existing) dead-letter exchange. The caller routes it, dropping queues that
        would close a fully automatic cycle (see :meth:`is_cycle`).
        """
        if q.dlx is None:
            return None
        x = self.exchanges.get(q.dlx)
        if x is None:
            return None
        props = m.properties
        headers = dict(props.headers or {})
        keys = [m.routing_key]
        cc = headers.get("CC")
        if isinstance(cc, list):
            keys += [k for k in cc if isinstance(k, str)]
        deaths: list[dict[str, Any]] = list(headers.get("x-death") or [])
        entry = None
        for i, d in enumerate(deaths):
            if d.get("queue") == q.name and d.get("reason") == reason:
                entry = dict(d)
                entry["count"] = int(entry.get("count", 1)) + 1
                del deaths[i]
                break
        if entry is None:
            entry = {"count": 1, "reason": reason, "queue": q.name,
                     "time": datetime.datetime.fromtimestamp(int(wall_time),
                                                             datetime.timezone.utc),
                     "exchange": m.exchange, "routing-keys": list(keys)}
            if props.expiration is not None:
                entry["original-expiration"] = props.expiration
        deaths.insert(0, entry)
        headers["x-death"] = deaths
        if "x-first-death-reason" not in headers:
            headers["x-first-death-reason"] = reason
            headers["x-first-death-queue"] = q.name
            headers["x-first-death-exchange"] = m.exchange
        if q.dlrk is not None:
            rks = [q.dlrk]
            headers.pop("CC", None)  # RabbitMQ removes CC when it sets the key
        else:
            # The message's own routing keys: BCC ones too (RabbitMQ keeps them).
            rks = list(getattr(m, "routing_keys", None) or keys)
        new_props = props.copy(headers=headers, expiration=None)
        if len(rks) > 1:
            return x, rks, RoutedContent(m.body, x.name, rks[0], new_props, None, rks)
        return x, rks, Content(m.body, x.name, rks[0], new_props)

    @staticmethod
    def is_cycle(target: Queue, content: Content) -> bool:
        """A fully automatic dead-letter cycle: ``target`` already saw this message die
        and no death since then was a rejection (RabbitMQ drops such messages)."""
        deaths = (content.properties.headers or {}).get("x-death") or []
        for d in deaths:
            if d.get("reason") == "rejected":
                return False
            if d.get("queue") == target.name:
                return True
        return False

    # --- persistence helpers -----------------------------------------------------------

    def persist_push(self, q: Queue, m: QMsg, wall_expiry: float | None) -> None:
        if q.durable and m.persistent and q.exclusive_owner is None:
            self.ops.append(st.PutMessage(message_record(self.name, q.name, m, wall_expiry)))

    def persist_remove(self, q: Queue, m: QMsg) -> None:
        if q.durable and m.persistent and q.exclusive_owner is None:
            self.ops.append(st.DeleteMessage(self.name, q.name, m.seq))

    def _check(self) -> None:
        for x in self.exchanges.values():
            assert not x.routes or x in self.cached, f"uncleared route cache {x.name!r}"
            for rk, cached in list(x.routes.items()):
                x.routes.pop(rk)
                fresh = self.route(x, rk, None)
                x.routes[rk] = cached
                assert list(fresh) == list(cached), f"stale route cache {x.name!r} {rk!r}"
            if x is not self.default:
                x._check()
                for (kind, dname), _rk, _a in x.bindings:
                    where: Any = self.queues if kind == "queue" else self.exchanges
                    assert dname in where, f"binding of {x.name!r} to missing {kind} {dname!r}"
        for q in self.queues.values():
            q._check()
            assert (("queue", q.name), q.name, None) in self.default.bindings


def _erl_type(v: Any) -> str:
    """The AMQP field type RabbitMQ names for a value pika sent (bytes go as 'x')."""
    return "binary" if isinstance(v, (bytes, bytearray)) else amqp_type(v)


def _erl_value(v: Any) -> str:
    """A value as RabbitMQ's error texts print it (Erlang terms)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (bytes, bytearray)):
        return f'<<"{bytes(v).decode("utf-8", "replace")}">>'
    if v is None:
        return "undefined"
    return str(v)


def message_record(vhost: str, queue: str, m: QMsg, wall_expiry: float | None
                   ) -> st.MessageRecord:
    return st.MessageRecord(vhost, queue, m.seq, m.exchange, m.routing_key, m.body,
                            m.properties.to_dict(), m.redelivered, wall_expiry, 0,
                            getattr(m, "returns", 0), getattr(m, "routing_keys", None))


def content_from_record(r: st.MessageRecord) -> Content:
    props = BasicProperties.from_dict(r.properties)
    if r.routing_keys is not None:
        return RoutedContent(r.body, r.exchange, r.routing_key, props, None,
                             list(r.routing_keys))
    return Content(r.body, r.exchange, r.routing_key, props)
