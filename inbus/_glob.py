"""Redis 7's glob matcher over bytes, compiled once per pattern.

Theory of operation
-------------------
Redis matches PSUBSCRIBE patterns (and ``PUBSUB CHANNELS pattern``) with
``stringmatchlen`` from ``util.c``. Its rules, as the real server applies them:

* ``?`` matches exactly one byte; ``*`` matches any run of bytes. Runs of ``*`` collapse.
* ``[...]`` matches one byte from a set. Only ``^`` right after ``[`` negates it:
  ``[!a]`` is the set ``{!, a}``. ``x-y`` is a range, in either order (``[z-a]`` is
  ``[a-z]``), compared as *signed* C chars, so ``[a-\\xff]`` is ``\\xff`` plus ``\\x00-a``.
  ``\\`` escapes the next byte inside a set. ``[a-]`` is the range ``a..]``: the ``]``
  is eaten as the range's end and the set runs to the end of the pattern. A set that is
  never closed runs to the end of the pattern; ``[`` alone matches nothing, ``[^`` any byte.
* Outside a set, ``\\`` makes the next byte literal; a trailing ``\\`` is a literal ``\\``.
* The empty channel matches only the empty pattern: ``*`` does not match ``b""``.
  Any non-empty channel is matched by ordinary glob rules.

:func:`tokens` reads a pattern exactly as ``stringmatchlen`` walks it (the walk does not
depend on the string) into literal runs, one-byte sets and stars. :func:`compile_glob`
turns the tokens into one matcher, once, choosing the cheapest exact form:

* no star and no set: byte equality;  ``lit*``: ``startswith``;  ``*lit``: ``endswith``;
  ``*lit*``: ``in``;  ``*``: non-empty;
* no star: one fixed-length ``re`` pattern, ``fullmatch``;
* stars: the pattern splits into star-free segments of fixed length; the head must match
  at the start, the tail at the end, and each middle segment is found at its leftmost
  place after the previous one (the classic greedy glob walk: linear in the channel, so a
  hostile pattern like ``*a*a*a*b`` cannot make publish slow, unlike a backtracking regex).

Nothing here holds state beyond the immutable :class:`Glob`; ``fnmatch`` is never used.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Glob", "compile_glob", "tokens", "literal_prefix"]

_STAR, _BACKSLASH, _QUESTION, _LBRACKET, _RBRACKET, _CARET, _DASH = b"*\\?[]^-"

# A token is (kind, value): ("lit", run of bytes), ("set", frozenset of byte values),
# ("star", b"").
Token = tuple[str, object]

_ALL_BYTES = frozenset(range(256))


def _signed(b: int) -> int:
    return b - 256 if b >= 128 else b


def _read_set(p: bytes, i: int) -> tuple[frozenset[int], int]:
    """Read a ``[...]`` set whose ``[`` is at ``p[i - 1]``; return (members, next index)."""
    n = len(p)
    negate = i < n and p[i] == _CARET
    if negate:
        i += 1
    members: set[int] = set()
    while True:
        if i + 1 < n and p[i] == _BACKSLASH:
            i += 1
            members.add(p[i])
        elif i < n and p[i] == _RBRACKET:
            break
        elif i >= n:  # never closed: the set ends with the pattern
            break
        elif i + 2 < n and p[i + 1] == _DASH:
            lo, hi = sorted((_signed(p[i]), _signed(p[i + 2])))
            members.update(c & 0xFF for c in range(lo, hi + 1))
            i += 2
        else:
            members.add(p[i])
        i += 1
    return (_ALL_BYTES - members if negate else frozenset(members)), i + 1


def tokens(pattern: bytes) -> list[Token]:
    """Split a Redis glob into tokens, exactly as Redis walks it.

    >>> tokens(b"a*[!b]")
    [('lit', b'a'), ('star', b''), ('set', frozenset({33, 98}))]
    """
    out: list[Token] = []
    lit = bytearray()
    p, n, i = pattern, len(pattern), 0
    while i < n:
        c = p[i]
        if c == _STAR or c == _QUESTION or c == _LBRACKET:
            if lit:
                out.append(("lit", bytes(lit)))
                lit.clear()
            if c == _STAR:
                while i + 1 < n and p[i + 1] == _STAR:
                    i += 1
                out.append(("star", b""))
                i += 1
            elif c == _QUESTION:
                out.append(("set", _ALL_BYTES))
                i += 1
            else:
                members, i = _read_set(p, i + 1)
                if len(members) == 1:
                    lit.append(next(iter(members)))
                else:
                    out.append(("set", members))
            continue
        if c == _BACKSLASH and i + 1 < n:
            i += 1
        lit.append(p[i])
        i += 1
    if lit:
        out.append(("lit", bytes(lit)))
    return out


def literal_prefix(toks: list[Token]) -> bytes:
    """The bytes every match must start with (b"" when the pattern opens with a wildcard)."""
    if toks and toks[0][0] == "lit":
        v = toks[0][1]
        assert isinstance(v, bytes)
        return v
    return b""


def _set_regex(members: frozenset[int]) -> bytes:
    if members == _ALL_BYTES:
        return b"."
    parts: list[bytes] = []
    run: list[int] = []
    for b in sorted(members):
        if run and b == run[-1] + 1:
            run.append(b)
            continue
        if run:
            parts.append(_range(run[0], run[-1]))
        run = [b]
    parts.append(_range(run[0], run[-1]))
    return b"[" + b"".join(parts) + b"]"


def _range(lo: int, hi: int) -> bytes:
    return b"\\x%02x" % lo if lo == hi else b"\\x%02x-\\x%02x" % (lo, hi)


def _segment_regex(seg: list[Token]) -> re.Pattern[bytes]:
    parts: list[bytes] = []
    for kind, value in seg:
        if kind == "lit":
            assert isinstance(value, bytes)
            parts.append(re.escape(value))
        else:
            assert isinstance(value, frozenset)
            parts.append(_set_regex(value))
    return re.compile(b"".join(parts), re.S)


def _never(channel: bytes) -> bool:
    return False


@dataclass(frozen=True)
class Glob:
    """A compiled Redis glob: ``match(channel) -> bool``; compile with :func:`compile_glob`.

    ``kind`` names the form chosen ("literal", "prefix", "suffix", "contains", "any",
    "fixed", "general", "never"); ``literal`` is the literal/prefix/suffix bytes where the
    kind has one (registries index patterns by it). Matching is O(len(channel)) at worst.

    >>> compile_glob(b"news.*").match(b"news.sport")
    True
    """

    pattern: bytes
    kind: str
    literal: bytes
    match: Callable[[bytes], bool]


def compile_glob(pattern: bytes) -> Glob:
    """Compile a Redis glob pattern (bytes) into a :class:`Glob`. O(len(pattern)).

    >>> g = compile_glob(b"h[ae]llo")
    >>> g.match(b"hello"), g.match(b"hallo"), g.match(b"hillo")
    (True, True, False)
    >>> compile_glob(b"*").match(b"")
    False
    """
    if not isinstance(pattern, bytes):
        raise TypeError(f"pattern must be bytes, not {type(pattern).__name__}")
    toks = tokens(pattern)
    if any(k == "set" and not v for k, v in toks):
        return Glob(pattern, "never", b"", _never)
    kinds = [k for k, _ in toks]
    lits = [v for k, v in toks if k == "lit"]
    if not toks:  # the empty pattern matches only the empty channel
        return Glob(pattern, "literal", b"", b"".__eq__)
    if kinds == ["lit"]:
        lit = lits[0]
        assert isinstance(lit, bytes)
        return Glob(pattern, "literal", lit, lit.__eq__)
    if kinds == ["star"]:
        return Glob(pattern, "any", b"", bool)
    if kinds == ["lit", "star"]:
        pre = lits[0]
        assert isinstance(pre, bytes)
        return Glob(pattern, "prefix", pre, lambda s: s.startswith(pre))
    if kinds == ["star", "lit"]:
        suf = lits[0]
        assert isinstance(suf, bytes)
        return Glob(pattern, "suffix", suf, lambda s: s.endswith(suf))
    if kinds == ["star", "lit", "star"]:
        mid = lits[0]
        assert isinstance(mid, bytes)
        return Glob(pattern, "contains", mid, lambda s: mid in s)
    if "star" not in kinds:
        return Glob(pattern, "fixed", literal_prefix(toks),
                    _fixed_matcher(_segment_regex(toks)))
    return Glob(pattern, "general", literal_prefix(toks), _general_matcher(toks))


def _fixed_matcher(rx: re.Pattern[bytes]) -> Callable[[bytes], bool]:
    fullmatch = rx.fullmatch

    def match(channel: bytes) -> bool:
        return fullmatch(channel) is not None

    return match


def _seg_len(seg: list[Token]) -> int:
    return sum(len(v) if isinstance(v, bytes) else 1 for _, v in seg)


def _general_matcher(toks: list[Token]) -> Callable[[bytes], bool]:
    segments: list[list[Token]] = [[]]
    for tok in toks:
        if tok[0] == "star":
            segments.append([])
        else:
            segments[-1].append(tok)
    head, middles, tail = segments[0], segments[1:-1], segments[-1]
    head_rx = _segment_regex(head).match if head else None
    head_len, tail_len = _seg_len(head), _seg_len(tail)
    tail_rx = _segment_regex(tail).fullmatch if tail else None
    mids = [_segment_regex(m).search for m in middles if m]
    min_len = head_len + tail_len + sum(_seg_len(m) for m in middles)

    def match(channel: bytes) -> bool:
        n = len(channel)
        if n == 0 or n < min_len:
            return False
        if head_rx is not None and head_rx(channel) is None:
            return False
        end = n - tail_len
        if tail_rx is not None and tail_rx(channel, end) is None:
            return False
        pos = head_len
        for search in mids:
            m = search(channel, pos, end)
            if m is None:
                return False
            pos = m.end()
        return True

    return match
