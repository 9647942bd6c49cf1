"""Exchange types: bindings and the routing decision of one exchange.

Theory of operation
-------------------
An exchange keeps its bindings in ``bindings`` (binding key -> arguments) and an index
built for its type; ``route(routing_key, headers)`` returns the destinations, each once.
A destination is a tuple ``(kind, name)`` with kind ``"queue"`` or ``"exchange"``; the
vhost follows exchange destinations (exchange-to-exchange bindings) and applies
alternate exchanges. A binding's identity is (destination, routing key, arguments), as in
RabbitMQ: binding the same queue with the same key but other arguments makes a second
binding. Routing never sees arguments except in the headers exchange.

- direct: ``dict[routing_key, dict[dest, refcount]]``: one dict lookup.
- fanout: every destination.
- topic: the compiled trie of :mod:`inbus._topic`, with its bounded routing-key cache.
- headers: each binding's match spec tested against the message headers (x-match
  ``all`` / ``any`` / ``all-with-x`` / ``any-with-x``; a binding value of None (AMQP void)
  means "key present"; values compare as RabbitMQ compares what pika sent
  (:func:`wire_term`): numbers by value (1 == 1.0) but never equal to a bool, a string
  or a Decimal; a string equals the same bytes; tables and arrays compare in order, with
  their elements' types; ``any`` with no keys matches nothing; ``all`` with no keys
  matches everything).

Pure: no locks, threads, time or I/O.
"""

from __future__ import annotations

import calendar
import datetime
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from ._topic import TopicRouter

__all__ = ["Dest", "EXCHANGE_TYPES", "Exchange", "freeze", "make_exchange"]

Dest = tuple[str, str]  # ("queue" | "exchange", name)
BindingKey = tuple[Dest, str, Any]  # (destination, routing key, frozen arguments)


def freeze(value: Any) -> Any:
    """A hashable form of an arguments table (for binding identity): order-insensitive at
    the top, as RabbitMQ sorts a binding's arguments; values keep their AMQP type, so
    1, True, 1.0 and Decimal(1) are four bindings, as on the wire."""
    if isinstance(value, dict):
        return ("__dict__", frozenset((k, _frozen(v)) for k, v in value.items()))
    return _frozen(value)


def _frozen(value: Any) -> Any:
    if isinstance(value, (dict, list, tuple, bool, float, Decimal, datetime.datetime)):
        return wire_term(value, typed=True)
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    return value


class Exchange:
    """Base exchange; subclasses build the index their routing needs."""

    __slots__ = ("name", "type", "durable", "auto_delete", "internal", "arguments",
                 "bindings", "alternate", "published_in", "unroutable", "routes",
                 "cache_routes")
    type_name = ""

    def __init__(self, name: str, durable: bool = False, auto_delete: bool = False,
                 internal: bool = False, arguments: dict[str, Any] | None = None) -> None:
        self.name = name
        self.type = self.type_name
        self.durable = durable
        self.auto_delete = auto_delete
        self.internal = internal
        self.arguments: dict[str, Any] = dict(arguments or {})
        self.bindings: dict[BindingKey, dict[str, Any]] = {}
        ae = self.arguments.get("alternate-exchange")
        self.alternate: str | None = ae if isinstance(ae, str) and ae else None
        self.published_in = 0
        self.unroutable = 0  # publishes that reached no queue (counted on that rarer path)
        # The vhost's cache of routing key -> queues reached (see VHost.route); the vhost
        # clears it whenever any binding, exchange or queue of the vhost changes.
        self.routes: dict[str, tuple[Any, ...]] = {}
        self.cache_routes = True  # False: never cache (benchmarks of the uncached path)

    @property
    def routed_out(self) -> int:
        """Publishes that reached at least one queue."""
        return self.published_in - self.unroutable

    def bind(self, dest: Dest, routing_key: str, arguments: dict[str, Any]) -> bool:
        """Add a binding; False if an identical one exists. O(1), topic O(words)."""
        key = (dest, routing_key, freeze(arguments))
        if key in self.bindings:
            return False
        self.bindings[key] = dict(arguments)
        self._add(dest, routing_key, arguments, key)
        return True

    def unbind(self, dest: Dest, routing_key: str, arguments: dict[str, Any]) -> bool:
        """Remove a binding; False if there was no such binding."""
        key = (dest, routing_key, freeze(arguments))
        args = self.bindings.pop(key, None)
        if args is None:
            return False
        self._remove(dest, routing_key, args, key)
        return True

    def unbind_destination(self, dest: Dest) -> list[tuple[str, dict[str, Any]]]:
        """Remove every binding to ``dest``; returns their (routing key, arguments)."""
        gone = [(k, a) for k, a in self.bindings.items() if k[0] == dest]
        for key, args in gone:
            del self.bindings[key]
            self._remove(dest, key[1], args, key)
        return [(k[1], a) for k, a in gone]

    def route(self, routing_key: str, headers: dict[str, Any] | None) -> Iterable[Dest]:
        raise NotImplementedError

    def _add(self, dest: Dest, rk: str, args: dict[str, Any], key: BindingKey) -> None:
        raise NotImplementedError

    def _remove(self, dest: Dest, rk: str, args: dict[str, Any], key: BindingKey) -> None:
        raise NotImplementedError

    def _check(self) -> None:
        """Invariant checker for tests: the index agrees with ``bindings``."""
        rebuilt = type(self)(self.name)
        for key, args in self.bindings.items():
            rebuilt._add(key[0], key[1], args, key)
        assert rebuilt._index_state() == self._index_state(), f"index of {self.name!r} drifted"

    def _index_state(self) -> Any:
        raise NotImplementedError


def _inc(d: dict[Dest, int], dest: Dest) -> None:
    d[dest] = d.get(dest, 0) + 1


def _dec(d: dict[Dest, int], dest: Dest) -> None:
    n = d[dest] - 1
    if n:
        d[dest] = n
    else:
        del d[dest]


class DirectExchange(Exchange):
    __slots__ = ("table",)
    type_name = "direct"

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.table: dict[str, dict[Dest, int]] = {}

    def _add(self, dest: Dest, rk: str, args: dict[str, Any], key: BindingKey) -> None:
        d = self.table.get(rk)
        if d is None:
            d = self.table[rk] = {}
        _inc(d, dest)

    def _remove(self, dest: Dest, rk: str, args: dict[str, Any], key: BindingKey) -> None:
        d = self.table[rk]
        _dec(d, dest)
        if not d:
            del self.table[rk]

    def route(self, routing_key: str, headers: dict[str, Any] | None) -> Iterable[Dest]:
        return self.table.get(routing_key, ())

    def _index_state(self) -> Any:
        return self.table


class FanoutExchange(Exchange):
    __slots__ = ("dests",)
    type_name = "fanout"

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.dests: dict[Dest, int] = {}

    def _add(self, dest: Dest, rk: str, args: dict[str, Any], key: BindingKey) -> None:
        _inc(self.dests, dest)

    def _remove(self, dest: Dest, rk: str, args: dict[str, Any], key: BindingKey) -> None:
        _dec(self.dests, dest)

    def route(self, routing_key: str, headers: dict[str, Any] | None) -> Iterable[Dest]:
        return self.dests

    def _index_state(self) -> Any:
        return self.dests


class TopicExchange(Exchange):
    """Topic routing on the compiled trie, with a bounded routing-key cache of results in
    a deterministic order (sorted destinations), so that delivery order never depends on
    string hashing (``PYTHONHASHSEED``)."""

    __slots__ = ("router", "counts", "cache", "cache_size")
    type_name = "topic"

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.router: TopicRouter[Dest] = TopicRouter(cache_size=0)
        self.counts: dict[tuple[str, Dest], int] = {}
        self.cache: dict[str, tuple[Dest, ...]] = {}
        self.cache_size = 4096  # 0 disables the cache (benchmarks of the uncached path)

    def _add(self, dest: Dest, rk: str, args: dict[str, Any], key: BindingKey) -> None:
        k = (rk, dest)
        n = self.counts.get(k, 0)
        self.counts[k] = n + 1
        if not n:
            self.router.add(rk, dest)
            self.cache.clear()

    def _remove(self, dest: Dest, rk: str, args: dict[str, Any], key: BindingKey) -> None:
        k = (rk, dest)
        n = self.counts[k] - 1
        if n:
            self.counts[k] = n
        else:
            del self.counts[k]
            self.router.remove(rk, dest)
            self.cache.clear()

    def route(self, routing_key: str, headers: dict[str, Any] | None) -> Iterable[Dest]:
        """O(1) for a cached key; else the trie match, O(words) typically."""
        try:
            return self.cache[routing_key]
        except KeyError:
            pass
        found = self.router.match_uncached(routing_key)
        result = tuple(sorted(found)) if len(found) > 1 else tuple(found)
        if self.cache_size:
            if len(self.cache) >= self.cache_size:
                self.cache.clear()
            self.cache[routing_key] = result
        return result

    def _index_state(self) -> Any:
        self.router._check()
        for key, dests in self.cache.items():
            assert set(dests) == self.router.match_uncached(key), f"stale cache {key!r}"
        return self.counts


_MATCH_MODES = ("all", "any", "all-with-x", "any-with-x")


def wire_term(v: Any, typed: bool = False) -> Any:
    """``v`` as the Erlang term RabbitMQ compares once pika encoded it: a string and
    bytes are the same binary, numbers compare by value, a bool is an atom (never 1), a
    Decimal is a (scale, digits) pair (never a number), a datetime a timestamp in
    seconds; tables and arrays compare element by element, in order, *with* their
    elements' field types (``typed``: so inside them "1" is not b"1", nor 1 True)."""
    t = type(v)
    if t is bool:
        term: Any = ("t", v)
        return term
    if isinstance(v, str):
        term, tag = v.encode("utf-8"), "S"
    elif isinstance(v, (bytes, bytearray, memoryview)):
        term, tag = bytes(v), "x"
    elif isinstance(v, int):
        term, tag = v, ("I" if -(2**31) <= v < 2**31 else "l")
    elif isinstance(v, Decimal):
        d = v.normalize()
        exp = d.as_tuple().exponent
        scale = -exp if isinstance(exp, int) and exp < 0 else 0
        term, tag = ("D", scale, int(d * (Decimal(10) ** scale))), "D"
    elif isinstance(v, datetime.datetime):
        term, tag = calendar.timegm(v.utctimetuple()), "T"
    elif isinstance(v, dict):
        term, tag = ("F", tuple((k, wire_term(x, True)) for k, x in v.items())), "F"
    elif isinstance(v, (list, tuple)):
        term, tag = ("A", tuple(wire_term(x, True) for x in v)), "A"
    elif v is None:
        term, tag = ("V",), "V"
    else:
        term, tag = v, t.__name__  # (a float, say: pika cannot send one)
    return (tag, term) if typed else term


def _values_equal(a: Any, b: Any) -> bool:
    ta = type(a)
    if ta is type(b) and (ta is str or ta is int or ta is bytes):
        return bool(a == b)  # (the common case)
    return bool(wire_term(a) == wire_term(b))


class HeadersExchange(Exchange):
    __slots__ = ("specs",)
    type_name = "headers"

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        # binding key -> (dest, match_all, with_x, [(header, value)])
        self.specs: dict[BindingKey, tuple[Dest, bool, list[tuple[str, Any]]]] = {}

    @staticmethod
    def match_mode(args: dict[str, Any]) -> str:
        mode = args.get("x-match", "all")
        if isinstance(mode, bytes):
            mode = mode.decode("utf-8", "replace")
        return mode if isinstance(mode, str) else "all"

    def _add(self, dest: Dest, rk: str, args: dict[str, Any], key: BindingKey) -> None:
        mode = self.match_mode(args)
        with_x = mode.endswith("-with-x")
        pairs = [(k, v) for k, v in args.items()
                 if k != "x-match" and (with_x or not k.startswith("x-"))]
        self.specs[key] = (dest, mode.startswith("all"), pairs)

    def _remove(self, dest: Dest, rk: str, args: dict[str, Any], key: BindingKey) -> None:
        del self.specs[key]

    def route(self, routing_key: str, headers: dict[str, Any] | None) -> Iterable[Dest]:
        h = headers or {}
        out: dict[Dest, None] = {}
        for dest, match_all, pairs in self.specs.values():
            if dest in out:
                continue
            if match_all:
                ok = True
                for k, v in pairs:
                    if k not in h or (v is not None and not _values_equal(h[k], v)):
                        ok = False
                        break
            else:
                ok = False
                for k, v in pairs:
                    if k in h and (v is None or _values_equal(h[k], v)):
                        ok = True
                        break
            if ok:
                out[dest] = None
        return out

    def _index_state(self) -> Any:
        return {k: (d, a, tuple(p)) for k, (d, a, p) in self.specs.items()}


EXCHANGE_TYPES: dict[str, type[Exchange]] = {
    "direct": DirectExchange,
    "fanout": FanoutExchange,
    "topic": TopicExchange,
    "headers": HeadersExchange,
}


def make_exchange(type_: str, name: str, durable: bool = False, auto_delete: bool = False,
                  internal: bool = False, arguments: dict[str, Any] | None = None) -> Exchange:
    """Create an exchange of a known type (the caller has validated ``type_``)."""
    return EXCHANGE_TYPES[type_](name, durable, auto_delete, internal, arguments)
