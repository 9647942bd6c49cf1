"""Test helpers and the inbus pytest plugin.

- :class:`ManualClock`: virtual time for ``Bus(clock=...)``. TTLs, ``x-expires`` and
  dead-lettering of expired messages happen when you call ``advance()``, instantly and
  deterministically; nothing sleeps and no timer thread runs.
- Fixtures (the plugin is registered through the ``pytest11`` entry point ``inbus``):
  ``bus`` (a fresh Bus, closed after the test; the test fails if a callback raised on a
  background thread), ``manual_clock`` and ``clock_bus`` (a Bus on a ManualClock),
  ``inbus_pika`` / ``inbus_redis`` (the ``pika`` / ``redis`` modules replaced by inbus's
  look-alikes for the duration of the test, so code under test talks to the bus).
- Helpers: :func:`capture` (the messages published to an exchange), :func:`queue_counts`
  (exact ready / unacked counts) and :func:`explain` (which bindings of an exchange
  match a routing key, and why).

>>> clock = ManualClock()
>>> clock.advance(1.5)
>>> clock.monotonic()
1.5
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["ManualClock", "capture", "explain", "queue_counts"]


class ManualClock:
    """A clock that only moves when told. ``time()`` starts at ``start_time``."""

    def __init__(self, start_time: float = 1_700_000_000.0) -> None:
        self._mono = 0.0
        self._wall = start_time
        self._subscribers: list[Callable[[], None]] = []

    def monotonic(self) -> float:
        """Seconds advanced so far (what TTLs and ``x-expires`` are measured on)."""
        return self._mono

    def time(self) -> float:
        """Wall-clock seconds: ``start_time`` plus the seconds advanced."""
        return self._wall

    def advance(self, seconds: float) -> None:
        """Move time forward and let every bus on this clock expire what is due, at
        once, in this thread (no timer thread runs on a manual clock).

        >>> from inbus import Bus
        >>> clock = ManualClock(); bus = Bus(clock=clock); ch = bus.channel()
        >>> _ = ch.queue_declare("q", arguments={"x-message-ttl": 1000})
        >>> ch.basic_publish("", "q", b"soon stale"); clock.advance(0.999)
        >>> queue_counts(bus, "q")
        (1, 0)
        >>> clock.advance(0.001); queue_counts(bus, "q")
        (0, 0)
        """
        if seconds < 0:
            raise ValueError("seconds must be >= 0: a clock does not go back")
        self._mono += seconds
        self._wall += seconds
        for cb in list(self._subscribers):
            cb()

    def _subscribe(self, cb: Callable[[], None]) -> None:
        self._subscribers.append(cb)

    def _unsubscribe(self, cb: Callable[[], None]) -> None:
        if cb in self._subscribers:
            self._subscribers.remove(cb)


def queue_counts(bus: Any, queue: str, vhost: str = "/") -> tuple[int, int]:
    """(ready, unacked) of a queue, exactly.

    >>> from inbus import Bus
    >>> b = Bus(); ch = b.channel(); _ = ch.queue_declare("q")
    >>> ch.basic_publish("", "q", b"x")
    >>> queue_counts(b, "q")
    (1, 0)
    """
    q = bus.statistics().queue(queue, vhost)
    return q.messages_ready, q.messages_unacknowledged


@contextmanager
def capture(bus: Any, exchange: str, vhost: str = "/") -> Iterator[list[Any]]:
    """Record every message published to ``exchange`` while the block runs (routed or
    not), as objects with ``.exchange .routing_key .body .properties``.

    >>> from inbus import Bus
    >>> b = Bus(); ch = b.channel()
    >>> with capture(b, "amq.topic") as published:
    ...     ch.basic_publish("amq.topic", "audit.irs", b"nobody listens")
    >>> [(m.routing_key, m.body) for m in published]
    [('audit.irs', b'nobody listens')]
    """
    key = (vhost, exchange)
    got: list[Any] = []
    with bus._lock:
        if key in bus._taps:
            raise RuntimeError(f"exchange {exchange!r} in vhost {vhost!r} is already captured")
        bus._taps[key] = got
    try:
        yield got
    finally:
        with bus._lock:
            bus._taps.pop(key, None)


def explain(bus: Any, exchange: str, routing_key: str,
            headers: dict[str, Any] | None = None, vhost: str = "/") -> list[str]:
    """Say which bindings of ``exchange`` match ``routing_key`` (and headers), and why.

    Returns one line per binding, ``"MATCH ..."`` or ``"no    ..."``, plus the queues
    the message would finally reach (exchange-to-exchange and alternate exchanges
    followed).
    """
    from ._exchanges import make_exchange
    from ._topic import TopicTrie

    with bus._lock:
        vh = bus._vhosts[vhost]
        x = vh.exchanges.get(exchange)
        if x is None:
            return [f"no exchange {exchange!r} in vhost {vhost!r}"]
        lines = []
        for (dest, rk, _frozen), args in x.bindings.items():
            if x.type == "topic":
                t: TopicTrie[int] = TopicTrie()
                t.add(rk, 1)
                ok = bool(t.match(routing_key))
                why = f"topic pattern {rk!r} vs key {routing_key!r}"
            elif x.type == "direct":
                ok = rk == routing_key
                why = f"direct key {rk!r} == {routing_key!r}"
            elif x.type == "fanout":
                ok, why = True, "fanout matches everything"
            else:
                probe = make_exchange("headers", "probe")
                probe.bind(dest, rk, args)
                ok = bool(list(probe.route(routing_key, headers)))
                why = f"headers {args!r} vs {headers!r}"
            lines.append(f"{'MATCH' if ok else 'no   '} {dest[0]} {dest[1]!r}: {why}")
        queues = vh.route(x, routing_key, headers)
        lines.append("reaches queues: " + (", ".join(repr(q.name) for q in queues)
                                           or "none (unroutable)"))
        return lines


# --- pytest plugin -------------------------------------------------------------------------

try:
    import pytest
except ImportError:  # pragma: no cover - the plugin needs pytest, the helpers do not
    pytest = None  # type: ignore[assignment]

if pytest is not None:

    @pytest.fixture
    def bus() -> Iterator[Any]:
        """A fresh Bus, closed after the test; fails the test if a callback raised."""
        from . import Bus
        b = Bus()
        yield b
        errors = b.errors
        b.close()
        if errors:
            raise AssertionError(f"a callback raised on a background thread: {errors[0]!r}")

    @pytest.fixture
    def manual_clock() -> ManualClock:
        return ManualClock()

    @pytest.fixture
    def clock_bus(manual_clock: ManualClock) -> Iterator[Any]:
        """A Bus on a ManualClock (``clock_bus._clock.advance(s)`` moves time)."""
        from . import Bus
        b = Bus(clock=manual_clock)
        yield b
        b.close()

    def _patch_module(name: str, replacement: str) -> Iterator[Any]:
        import importlib
        mod = importlib.import_module(replacement)
        saved = {k: v for k, v in sys.modules.items() if k == name or k.startswith(name + ".")}
        sys.modules[name] = mod
        subs = dict(getattr(mod, "_SUBMODULES", {}))  # (pika.spec, pika.adapters...)
        exc = getattr(mod, "exceptions", None)
        if exc is not None:
            subs.setdefault("exceptions", exc)
        for sub, obj in subs.items():
            sys.modules[f"{name}.{sub}"] = obj
        try:
            yield mod
        finally:
            for k in [k for k in sys.modules if k == name or k.startswith(name + ".")]:
                del sys.modules[k]
            sys.modules.update(saved)
            reset = getattr(mod, "reset", None)
            if reset is not None:
                reset()

    @pytest.fixture
    def inbus_pika() -> Iterator[Any]:
        """``import pika`` gives inbus.compat.pika during the test. At its end the fixture
        closes the in-process servers (``inbus.compat.pika.reset()``): a consumer still
        running in another thread sees RabbitMQ shut down, ``ConnectionClosedByBroker``
        320, as pika would."""
        yield from _patch_module("pika", "inbus.compat.pika")

    @pytest.fixture
    def inbus_redis() -> Iterator[Any]:
        """``import redis`` gives inbus.compat.redis during the test."""
        yield from _patch_module("redis", "inbus.compat.redis")
