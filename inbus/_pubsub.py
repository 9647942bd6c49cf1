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
* Shard channels (SSUBSCRIBE / SPUBLISH, Redis 7) are a namespace of their own, as on a
  non-cluster Redis 7.0: ``spublish`` reaches only shard subscribers (``smessage``),
  ``publish`` never does, patterns never match them; ``ssubscribe`` / ``sunsubscribe``
  confirm with the subscriber's count of shard channels alone, and (p)subscribe /
  (p)unsubscribe with its channels + patterns alone. SHARDCHANNELS and SHARDNUMSUB see
  only shard subscriptions.

Values: :func:`encode` turns a channel, pattern or message into bytes by redis-py's
rules (the shell calls it before taking its lock).

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

__all__ = ["Registry", "Message", "encode"]

S = TypeVar("S", bound=Hashable)
Message = dict[str, Any]


def encode(value: object, what: str = "value") -> bytes:
    """Encode a channel, pattern or message as redis-py does.

    >>> encode("é"), encode(42), encode(1.5), encode(b"x")
    (b'\\xc3\\xa9', b'42', b'1.5', b'x')
    """
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{what} must be bytes, str, int or float, "
                        f"not {type(value).__name__}")
    return repr(value).encode()


def _names(args: tuple[Any, ...], what: str = "channel") -> list[Any]:
    # redis-py's list_or_args: a list or tuple as the first argument is expanded.
    if args and isinstance(args[0], (list, tuple)):
        return [*args[0], *args[1:]]
    return list(args)



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
    __slots__ = ("channels", "patterns", "shards")

    def __init__(self) -> None:
        self.channels: dict[bytes, None] = {}
        self.patterns: dict[bytes, None] = {}
        self.shards: dict[bytes, None] = {}

    def count(self) -> int:
        """What (p)subscribe and (p)unsubscribe confirmations carry."""
        return len(self.channels) + len(self.patterns)

    def total(self) -> int:
        return len(self.channels) + len(self.patterns) + len(self.shards)


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
        self._shards: dict[bytes, dict[S, None]] = {}
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

    def ssubscribe(self, sub: S, channels: Iterable[bytes]) -> list[Message]:
        """SSUBSCRIBE: as SUBSCRIBE, counting shard channels only.

        >>> r: Registry[str] = Registry()
        >>> _ = r.subscribe("bob", [b"a"])
        >>> [(m["type"], m["data"]) for m in r.ssubscribe("bob", [b"a", b"b"])]
        [('ssubscribe', 1), ('ssubscribe', 2)]
        """
        mine = self._subs.setdefault(sub, _Subs())
        out = []
        for ch in channels:
            if ch not in mine.shards:
                mine.shards[ch] = None
                self._shards.setdefault(ch, {})[sub] = None
            out.append(_confirm("ssubscribe", ch, len(mine.shards)))
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
        return self._drop(sub, list(channels), "unsubscribe")

    def punsubscribe(self, sub: S, patterns: Iterable[bytes] = ()) -> list[Message]:
        """PUNSUBSCRIBE; names are literal pattern strings, not globs."""
        return self._drop(sub, list(patterns), "punsubscribe")

    def sunsubscribe(self, sub: S, channels: Iterable[bytes] = ()) -> list[Message]:
        """SUNSUBSCRIBE; no names means every shard channel (none held: one confirmation,
        None). Counts are of shard channels only."""
        return self._drop(sub, list(channels), "sunsubscribe")

    def _drop(self, sub: S, names: list[bytes], kind: str = "unsubscribe") -> list[Message]:
        mine = self._subs.get(sub)
        shard = kind == "sunsubscribe"

        def count() -> int:
            if mine is None:
                return 0
            return len(mine.shards) if shard else mine.count()

        held: dict[bytes, None] = {}
        if mine is not None:
            held = {"unsubscribe": mine.channels, "punsubscribe": mine.patterns,
                    "sunsubscribe": mine.shards}[kind]
        if not names:
            names = list(held)
            if not names:
                return [_confirm(kind, None, count())]
        out = []
        for name in names:
            if name in held:
                del held[name]
                self._forget(sub, name, kind)
            out.append(_confirm(kind, name, count()))
        if mine is not None and not mine.total():
            del self._subs[sub]
        return out

    def _forget(self, sub: S, name: bytes, kind: str) -> None:
        if kind == "punsubscribe":
            entry = self._patterns[name]
            del entry.subscribers[sub]
            if not entry.subscribers:
                del self._patterns[name]
                self._index.remove(entry)
        else:
            table = self._shards if kind == "sunsubscribe" else self._channels
            subs = table[name]
            del subs[sub]
            if not subs:
                del table[name]

    def drop(self, sub: S) -> None:
        """Forget every subscription of ``sub`` at once, without confirmations."""
        mine = self._subs.pop(sub, None)
        if mine is None:
            return
        for ch in mine.channels:
            self._forget(sub, ch, "unsubscribe")
        for pat in mine.patterns:
            self._forget(sub, pat, "punsubscribe")
        for ch in mine.shards:
            self._forget(sub, ch, "sunsubscribe")

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

    def spublish(self, channel: bytes, data: bytes) -> list[tuple[S, Message]]:
        """SPUBLISH: an ``smessage`` to each shard subscriber of ``channel``; channel and
        pattern subscribers get nothing. ``len(result)`` is what ``SPUBLISH`` returns.

        >>> r: Registry[str] = Registry()
        >>> _ = r.subscribe("ann", [b"a"]); _ = r.psubscribe("ann", [b"*"])
        >>> _ = r.ssubscribe("bob", [b"a"])
        >>> [(s, m["type"]) for s, m in r.spublish(b"a", b"x")]
        [('bob', 'smessage')]
        """
        subs = self._shards.get(channel)
        if not subs:
            return []
        return [(s, {"type": "smessage", "pattern": None, "channel": channel, "data": data})
                for s in subs]

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

    def subscriptions(self, sub: S) -> tuple[list[bytes], list[bytes], list[bytes]]:
        """The channels, patterns and shard channels ``sub`` holds, in subscription order."""
        mine = self._subs.get(sub)
        if mine is None:
            return [], [], []
        return list(mine.channels), list(mine.patterns), list(mine.shards)

    def count(self, sub: S) -> int:
        """How many channels + patterns + shard channels ``sub`` holds (0: it has left
        subscribed mode)."""
        mine = self._subs.get(sub)
        return mine.total() if mine is not None else 0

    def channels(self, pattern: bytes | None = None) -> list[bytes]:
        """PUBSUB CHANNELS [pattern]: active channels (with a subscriber), glob-filtered."""
        if pattern is None:
            return list(self._channels)
        match = compile_glob(pattern).match
        return [ch for ch in self._channels if match(ch)]

    def numsub(self, channels: Iterable[bytes]) -> list[tuple[bytes, int]]:
        """PUBSUB NUMSUB: channel subscribers only; patterns are not counted."""
        return [(ch, len(self._channels.get(ch, ()))) for ch in channels]

    def shardchannels(self, pattern: bytes | None = None) -> list[bytes]:
        """PUBSUB SHARDCHANNELS [pattern]: shard channels with a subscriber, glob-filtered."""
        if pattern is None:
            return list(self._shards)
        match = compile_glob(pattern).match
        return [ch for ch in self._shards if match(ch)]

    def shardnumsub(self, channels: Iterable[bytes]) -> list[tuple[bytes, int]]:
        """PUBSUB SHARDNUMSUB: shard subscribers only."""
        return [(ch, len(self._shards.get(ch, ()))) for ch in channels]

    def numpat(self) -> int:
        """PUBSUB NUMPAT: distinct patterns over all subscribers."""
        return len(self._patterns)

    def _check(self) -> None:
        """Invariant checker for tests: the three views agree."""
        for sub, mine in self._subs.items():
            assert mine.total() > 0
            for ch in mine.channels:
                assert sub in self._channels[ch]
            for ch in mine.shards:
                assert sub in self._shards[ch]
            for pat in mine.patterns:
                assert sub in self._patterns[pat].subscribers
        for ch, subs in self._channels.items():
            assert subs and all(ch in self._subs[s].channels for s in subs)
        for ch, subs in self._shards.items():
            assert subs and all(ch in self._subs[s].shards for s in subs)
        for pat, entry in self._patterns.items():
            assert entry.subscribers and entry.glob.pattern == pat
            assert all(pat in self._subs[s].patterns for s in entry.subscribers)
