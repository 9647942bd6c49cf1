"""Redis glob matching: every rule of util.c's stringmatchlen, and the compiled matcher
checked against the naive reference matcher by hypothesis."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inbus._glob import compile_glob, literal_prefix, tokens
from tests.reference import redis_glob_match

# (pattern, channel, expected) -- each row was checked against Redis 7.0.15.
RULES = [
    (b"*", b"", False),            # '*' does not match the empty channel
    (b"", b"", True),              # the empty pattern matches only the empty channel
    (b"", b"a", False),
    (b"**", b"", False),
    (b"*", b"x", True),
    (b"a*", b"a", True),           # trailing stars match nothing after a byte
    (b"a**", b"a", True),
    (b"?", b"", False),
    (b"?", b"\xff", True),         # '?' is one byte, not one character
    (b"?", "é".encode(), False),  # é is two bytes
    (b"??", "é".encode(), True),
    (b"[!a]", b"!", True),         # '!' is not negation in Redis
    (b"[!a]", b"a", True),
    (b"[!a]", b"b", False),
    (b"[^a]", b"a", False),        # '^' is
    (b"[^a]", b"b", True),
    (b"[z-a]", b"m", True),        # reversed range
    (b"[a-z]", b"m", True),
    (b"[a-z]", b"A", False),
    (b"[a-]", b"^", True),         # the range a..] eats the ']'
    (b"[a-]", b"-", False),
    (b"[a-\xff]", b"\x00", True),  # ranges compare signed chars
    (b"[a-\xff]", b"b", False),
    (b"[\x80-\xff]", b"\x90", True),
    (b"[\x00-\x80]", b"\xff", True),
    (b"[", b"[", False),           # '[' alone matches nothing
    (b"[a", b"a", True),           # an unterminated set runs to the end
    (b"a[", b"a", False),
    (b"[^", b"z", True),
    (b"[^]", b"x", True),
    (b"[]", b"]", False),
    (b"[]]", b"]", False),
    (b"[]]", b"]]", False),
    (b"[\\]]", b"]", True),        # backslash escapes inside a set
    (b"[\\]", b"]", True),
    (b"[\\", b"\\", True),         # a trailing backslash in a set is literal
    (b"\\*", b"*", True),          # escapes outside a set
    (b"\\*", b"x", False),
    (b"\\", b"\\", True),          # a trailing backslash is literal
    (b"a\\", b"a", False),
    (b"\\?", b"?", True),
    (b"h[ae]llo", b"hello", True),
    (b"h*llo", b"hllo", True),
    (b"*a*a*b", b"aaaaab", True),
    (b"*a*a*b", b"ab", False),
    (b"news.*", b"news.", True),
    (b"news.*", b"news", False),
    (b"*.x", b".x", True),
    (b"*mid*", b"mid", True),
    (b"a*b*c", b"abc", True),
    (b"a*b*c", b"acb", False),
    (b"a?*c", b"ac", False),
]


@pytest.mark.parametrize("pattern,channel,expected", RULES)
def test_rules(pattern: bytes, channel: bytes, expected: bool) -> None:
    assert compile_glob(pattern).match(channel) is expected
    assert redis_glob_match(pattern, channel) is expected


def test_kinds() -> None:
    kinds = {p: compile_glob(p).kind for p in
             [b"abc", b"a\\*", b"ab*", b"*ab", b"*ab*", b"*", b"a?c", b"a*b?c", b"[", b""]}
    assert kinds == {b"abc": "literal", b"a\\*": "literal", b"ab*": "prefix",
                     b"*ab": "suffix", b"*ab*": "contains", b"*": "any", b"a?c": "fixed",
                     b"a*b?c": "general", b"[": "never", b"": "literal"}
    assert compile_glob(b"a\\*").literal == b"a*"
    assert compile_glob(b"[x]y*").kind == "prefix"  # a one-byte set is a literal


def test_tokens_and_prefix() -> None:
    assert tokens(b"a**b") == [("lit", b"a"), ("star", b""), ("lit", b"b")]
    assert literal_prefix(tokens(b"ab?")) == b"ab"
    assert literal_prefix(tokens(b"?ab")) == b""


def test_pattern_must_be_bytes() -> None:
    with pytest.raises(TypeError, match="pattern must be bytes"):
        compile_glob("a*")  # type: ignore[arg-type]


def test_hostile_pattern_is_linear() -> None:
    g = compile_glob(b"*a" * 30 + b"*b")
    channel = b"a" * 20_000
    t0 = time.perf_counter()
    assert not g.match(channel)
    assert time.perf_counter() - t0 < 0.5


ALPHABET = b"ab*?[]!^-\\\x00\x80\xff"
patterns = st.lists(st.sampled_from(list(ALPHABET)), max_size=10).map(bytes)
channels = st.lists(st.sampled_from(list(b"ab*?[]!^-\\\x00\x80\xff")), max_size=8).map(bytes)


@settings(max_examples=3000, deadline=None)
@given(patterns, channels)
def test_compiled_equals_reference(pattern: bytes, channel: bytes) -> None:
    assert compile_glob(pattern).match(channel) == redis_glob_match(pattern, channel)


@settings(max_examples=500, deadline=None)
@given(patterns, st.lists(channels, max_size=10))
def test_compiled_once_many_channels(pattern: bytes, chans: list[bytes]) -> None:
    g = compile_glob(pattern)
    assert [g.match(c) for c in chans] == [redis_glob_match(pattern, c) for c in chans]


@settings(max_examples=1000, deadline=None)
@given(st.binary(max_size=6), st.binary(max_size=6))
def test_any_bytes(pattern: bytes, channel: bytes) -> None:
    assert compile_glob(pattern).match(channel) == redis_glob_match(pattern, channel)
