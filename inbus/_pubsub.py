"""The pub/sub subscription registry: who gets what when a channel is published to.

Theory of operation
-------------------
Pure bookkeeping, no threads, no clock, no I/O: the shell (:mod:`inbus.pubsub`) holds the
lock and moves the messages; this module only decides. It follows Redis 7's server:

* ``channel -> subscribers`` and ``pattern -> (compiled glob, subscribers)`` maps, plus
  each subscriber's own channels and patterns, kept in subscription order.
* ``publish(channel, data)`` returns one ``(subscriber, message dict)`` per *delivery*:
  a subscriber on the channel gets a ``message``; every pattern it holds that matches
  gets a ``pmessage`` too. ``len(result)`` is what ``PUBLISH`` returns.
* Every (p)subscribe / (p)unsubscribe answers one confirmation per name given, repeats
  included, carrying the subscriber's running count of channels + patterns. Subscribing
  twice or unsubscribing what is not held still confirms. Unsubscribing everything
  while holding nothing of that kind confirms once with ``channel`` None and count.
* ``punsubscribe`` takes literal pattern strings (``b"a*"`` removes exactly ``a*``).
* NUMPAT counts distinct patterns over all subscribers; CHANNELS and NUMSUB see only
  channel subscriptions, never patterns.

Cost of publish with K patterns that do not match: patterns are indexed by kind so that
most of them are never looked at. Literal patterns sit in a dict keyed by the literal;
patterns with a literal head (``news.*``, ``news.[ab]*``) sit in a dict per head length,
probed with ``channel[:L]`` for each distinct head length L; ``*suffix`` patterns sit in
a dict per suffix length, probed with ``channel[-L:]``. Only patterns that open with a
wildcard and are not ``*suffix`` (``*``, ``?x``, ``*a*b``) are scanned one by one.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from typing import Any, Generic, TypeVar

from inbus._glob import Glob, compile_glob

__all__ = ["Registry", "Message"]

S = TypeVar("S", bound=Hashable)
Message = dict[str, Any]


class _Pattern(Generic[S]):
    __slots__ = ("glob", "check", "subscribers")

    def __init__(self, glob: Glob) -> None:
        self.glob = glob
        # None when being found in the index already proves the match.
        self.check = None if glob.kind in ("literal", "prefix", "suffix") else glob.match
        self.subscribers: dict[S, None] = {}


class _Index(Generic[S]):
    """Patterns grouped so that publish touches few of them (see the module docstring)."""

    __slots__ = ("exact", "heads", "tails", "scan")

    def __init__(self) -> None:
        self.exact: dict[bytes, list[_Pattern[S]]] = {}  # b"a", b"[a]", b"\\a" share one
        self.heads: dict[int, dict[bytes, list[_Pattern[S]]]] = {}
        self.tails: dict[int, dict[bytes, list[_Pattern[S]]]] = {}
        self.scan: list[_Pattern[S]] = []

    def _bucket(self, entry: _Pattern[S]) -> tuple[dict[int, dict[bytes, list[_Pattern[S]]]],
                                                  bytes] | None:
        g = entry.glob
        if g.kind == "suffix":
            return self.tails, g.literal
        if g.literal:
            return self.heads, g.literal
        return None

    def add(self, entry: _Pattern[S]) -> None:
        g = entry.glob
        if g.kind == "literal":
            self.exact.setdefault(g.literal, []).append(entry)
            return
        where = self._bucket(entry)
        if where is None:
            self.scan.append(entry)
            return
        table, key = where
        table.setdefault(len(key), {}).setdefault(key, []).append(entry)

    def remove(self, entry: _Pattern[S]) -> None:
        g = entry.glob
        if g.kind == "literal":
            same = self.exact[g.literal]
            same.remove(entry)
            if not same:
                del self.exact[g.literal]
            return
        where = self._bucket(entry)
        if where is None:
            self.scan.remove(entry)
            return
        table, key = where
        by_key = table[len(key)]
        bucket = by_key[key]
        bucket.remove(entry)
        if not bucket:
            del by_key[key]
            if not by_key:
                del table[len(key)]

    def matching(self, channel: bytes) -> list[_Pattern[S]]:
        found: list[_Pattern[S]] = []
        if self.exact:
            same = self.exact.get(channel)
            if same:
                found.extend(same)
        n = len(channel)
        for length, by_key in self.heads.items():
            if length <= n:
                bucket = by_key.get(channel[:length])
                if bucket:
                    found.extend(x for x in bucket if x.check is None or x.check(channel))
        for length, by_key in self.tails.items():
            if length <= n:
                bucket = by_key.get(channel[n - length:])
                if bucket:
                    found.extend(bucket)
        for x in self.scan:
            if x.check is not None and x.check(channel):
                found.append(x)
        return found


class _Subs:
    __slots__ = ("channels", "patterns")

    def __init__(self) -> None:
        self.channels: dict[bytes, None] = {}
        self.patterns: dict[bytes, None] = {}

    def count(self) -> int:
        return len(self.channels) + len(self.patterns)


def _confirm(kind: str, name: bytes | None, count: int) -> Message:
    return {"type": kind, "pattern": None, "channel": name, "data": count}


class Registry(Generic[S]):
    """Redis's pub/sub state for one hub. Subscribers are any hashable objects.

    >>> r: Registry[str] = Registry()
    >>> [m["data"] for m in r.subscribe("alice", [b"news", b"news"])]
    [1, 1]
    >>> _ = r.psubscribe("alice", [b"n*"])
    >>> [(s, m["type"]) for s, m in r.publish(b"news", b"hi")]
    [('alice', 'message'), ('alice', 'pmessage')]
    """

    def __init__(self) -> None:
        self._channels: dict[bytes, dict[S, None]] = {}
        self._patterns: dict[bytes, _Pattern[S]] = {}
        self._index: _Index[S] = _Index()
        self._subs: dict[S, _Subs] = {}

    # -- subscriptions: each returns the confirmations, in order -------------------------

    def subscribe(self, sub: S, channels: Iterable[bytes]) -> list[Message]:
        """SUBSCRIBE: one confirmation per name (repeats included). O(names)."""
        mine = self._subs.setdefault(sub, _Subs())
        out = []
        for ch in channels:
            if ch not in mine.channels:
                mine.channels[ch] = None
                self._channels.setdefault(ch, {})[sub] = None
            out.append(_confirm("subscribe", ch, mine.count()))
        return out

    def psubscribe(self, sub: S, patterns: Iterable[bytes]) -> list[Message]:
        """PSUBSCRIBE: compiles a pattern the first time any subscriber uses it."""
        mine = self._subs.setdefault(sub, _Subs())
        out = []
        for pat in patterns:
            if pat not in mine.patterns:
                mine.patterns[pat] = None
                entry = self._patterns.get(pat)
                if entry is None:
                    entry = self._patterns[pat] = _Pattern(compile_glob(pat))
                    self._index.add(entry)
                entry.subscribers[sub] = None
            out.append(_confirm("psubscribe", pat, mine.count()))
        return out

    def unsubscribe(self, sub: S, channels: Iterable[bytes] = ()) -> list[Message]:
        """UNSUBSCRIBE; no names means every channel (none held: one confirmation, None)."""
        return self._drop(sub, list(channels), pattern=False)

    def punsubscribe(self, sub: S, patterns: Iterable[bytes] = ()) -> list[Message]:
        """PUNSUBSCRIBE; names are literal pattern strings, not globs."""
        return self._drop(sub, list(patterns), pattern=True)

    def _drop(self, sub: S, names: list[bytes], *, pattern: bool) -> list[Message]:
        kind = "punsubscribe" if pattern else "unsubscribe"
        mine = self._subs.get(sub)
        held = (mine.patterns if pattern else mine.channels) if mine is not None else {}
        if not names:
            names = list(held)
            if not names:
                return [_confirm(kind, None, mine.count() if mine is not None else 0)]
        out = []
        for name in names:
            if name in held:
                del held[name]
                self._forget(sub, name, pattern=pattern)
            out.append(_confirm(kind, name, mine.count() if mine is not None else 0))
        if mine is not None and not mine.count():
            del self._subs[sub]
        return out

    def _forget(self, sub: S, name: bytes, *, pattern: bool) -> None:
        if pattern:
            entry = self._patterns[name]
            del entry.subscribers[sub]
            if not entry.subscribers:
                del self._patterns[name]
                self._index.remove(entry)
        else:
            subs = self._channels[name]
            del subs[sub]
            if not subs:
                del self._channels[name]

    def drop(self, sub: S) -> None:
        """Forget every subscription of ``sub`` at once, without confirmations."""
        mine = self._subs.pop(sub, None)
        if mine is None:
            return
        for ch in mine.channels:
            self._forget(sub, ch, pattern=False)
        for pat in mine.patterns:
            self._forget(sub, pat, pattern=True)

    # -- publishing and introspection ----------------------------------------------------

    def publish(self, channel: bytes, data: bytes) -> list[tuple[S, Message]]:
        """PUBLISH: every delivery, channel subscribers first. O(receivers + index probes).

        >>> r: Registry[int] = Registry()
        >>> r.publish(b"nobody", b"x")
        []
        """
        out: list[tuple[S, Message]] = []
        subs = self._channels.get(channel)
        if subs:
            out = [(s, {"type": "message", "pattern": None, "channel": channel, "data": data})
                   for s in subs]
        if self._patterns:
            for entry in self._index.matching(channel):
                pat = entry.glob.pattern
                out.extend((s, {"type": "pmessage", "pattern": pat, "channel": channel,
                                "data": data}) for s in entry.subscribers)
        return out

    @property
    def by_channel(self) -> dict[bytes, dict[S, None]]:
        """channel -> subscribers, for the shell's publish fast path. Do not modify."""
        return self._channels

    @property
    def by_pattern(self) -> dict[bytes, Any]:
        """pattern -> entry; truthy when any pattern is subscribed. Do not modify."""
        return self._patterns

    def pattern_matches(self, channel: bytes) -> list[tuple[bytes, dict[S, None]]]:
        """``(pattern, subscribers)`` for every subscribed pattern matching ``channel``."""
        return [(e.glob.pattern, e.subscribers) for e in self._index.matching(channel)]

    def subscriptions(self, sub: S) -> tuple[list[bytes], list[bytes]]:
        """The channels and patterns ``sub`` holds, in subscription order."""
        mine = self._subs.get(sub)
        if mine is None:
            return [], []
        return list(mine.channels), list(mine.patterns)

    def count(self, sub: S) -> int:
        """How many channels + patterns ``sub`` holds."""
        mine = self._subs.get(sub)
        return mine.count() if mine is not None else 0

    def channels(self, pattern: bytes | None = None) -> list[bytes]:
        """PUBSUB CHANNELS [pattern]: active channels (with a subscriber), glob-filtered."""
        if pattern is None:
            return list(self._channels)
        match = compile_glob(pattern).match
        return [ch for ch in self._channels if match(ch)]

    def numsub(self, channels: Iterable[bytes]) -> list[tuple[bytes, int]]:
        """PUBSUB NUMSUB: channel subscribers only; patterns are not counted."""
        return [(ch, len(self._channels.get(ch, ()))) for ch in channels]

    def numpat(self) -> int:
        """PUBSUB NUMPAT: distinct patterns over all subscribers."""
        return len(self._patterns)

    def _check(self) -> None:
        """Invariant checker for tests: the three views agree."""
        for sub, mine in self._subs.items():
            assert mine.count() > 0
            for ch in mine.channels:
                assert sub in self._channels[ch]
            for pat in mine.patterns:
                assert sub in self._patterns[pat].subscribers
        for ch, subs in self._channels.items():
            assert subs and all(ch in self._subs[s].channels for s in subs)
        for pat, entry in self._patterns.items():
            assert entry.subscribers and entry.glob.pattern == pat
            assert all(pat in self._subs[s].patterns for s in entry.subscribers)
