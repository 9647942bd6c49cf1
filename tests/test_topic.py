"""Tests for inbus._topic: the pure topic trie and its cached router.

The edge-case table was checked against a real RabbitMQ 3.10 (one queue bound with the
pattern, one publish with the key); hypothesis compares the trie with the naive matcher
in tests/reference.py; a state machine interleaves add/remove/match/route with _check().
"""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from inbus._topic import TopicRouter, TopicTrie
from tests.reference import topic_matches

LONG = ".".join(f"w{i}" for i in range(100))  # a 100-word key

# (id, pattern, key, matches?)
EDGE_CASES = [
    # the empty key is zero words
    ("empty-pattern-empty-key", "", "", True),
    ("hash-matches-empty-key", "#", "", True),
    ("star-not-empty-key", "*", "", False),
    ("empty-pattern-not-word", "", "a", False),
    ("word-not-empty-key", "a", "", False),
    ("empty-pattern-not-two-empty-words", "", ".", False),
    ("hash-hash-empty-key", "#.#", "", True),
    ("hash-dot-not-empty-key", "#.", "", False),
    ("dot-hash-not-empty-key", ".#", "", False),
    # empty words are words
    ("dot-is-two-empty-words", "*.*", ".", True),
    ("dot-literal", ".", ".", True),
    ("star-not-dot", "*", ".", False),
    ("hash-dot", "#", ".", True),
    ("empty-middle-word", "a.*.b", "a..b", True),
    ("empty-middle-literal", "a..b", "a..b", True),
    ("empty-middle-not-word", "a..b", "a.x.b", False),
    ("trailing-empty-word", "a.", "a.", True),
    ("trailing-empty-word-needed", "a.", "a", False),
    ("star-empty-last-word", "*.", "a.", True),
    ("hash-then-empty-word", "#.", ".", True),
    ("star-matches-empty-word", "a.*", "a.", True),
    # * is exactly one word
    ("star-one-word", "a.*", "a.b", True),
    ("star-not-two-words", "a.*", "a.b.c", False),
    ("star-not-zero-words", "a.*", "a", False),
    ("star-star", "*.*", "a.b", True),
    ("star-star-not-three", "*.*", "a.b.c", False),
    # # is zero or more words
    ("hash-zero-words-at-end", "a.#", "a", True),
    ("hash-zero-words-in-middle", "a.#.b", "a.b", True),
    ("hash-one-word-in-middle", "a.#.b", "a.x.b", True),
    ("hash-many-words-in-middle", "a.#.b", "a.x.y.z.b", True),
    ("hash-in-middle-wrong-end", "a.#.b", "a.x.c", False),
    ("hash-zero-words-at-start", "#.a", "a", True),
    ("hash-anything", "#", "a.b.c", True),
    ("hash-hash-anything", "#.#", "a.b", True),
    ("repeated-hash-zero", "a.#.#.b", "a.b", True),
    ("repeated-hash-many", "a.#.#.#.b", "a.x.y.z.w.b", True),
    ("repeated-hash-no-end", "#.#.a", "b", False),
    ("hash-star-not-empty", "#.*", "", False),
    ("hash-star-one", "#.*", "a", True),
    ("hash-star-many", "#.*", "a.b.c", True),
    ("star-hash-star-one-word", "*.#.*", "a", False),
    ("star-hash-star-two-words", "*.#.*", "a.b", True),
    ("star-hash-star-many", "*.#.*", "a.b.c.d", True),
    ("star-hash-last-literal", "*.#.z", "a.z", True),
    ("hash-star-hash", "#.*.#", "", False),
    ("hash-star-hash-one", "#.*.#", "x", True),
    # wildcards only as whole words
    ("a-star-b-literal", "a*b", "a*b", True),
    ("a-star-b-not-glob", "a*b", "axb", False),
    ("hash-a-literal", "#a", "#a", True),
    ("hash-a-not-suffix", "#a", "xa", False),
    ("a-hash-literal", "a#", "a#", True),
    ("star-star-literal-word", "**", "ab", False),
    ("star-star-literal-itself", "**", "**", True),
    # key words * and # are plain words
    ("key-star-is-a-word", "a.*", "a.*", True),
    ("key-star-not-wildcard", "a.b", "a.*", False),
    ("key-hash-not-wildcard", "a.b", "a.#", False),
    ("key-hash-by-hash", "#", "#", True),
    # no regex semantics anywhere
    ("regex-dot-not-any", "a.b", "aXb", False),
    ("regex-plus-literal", "a+", "aa", False),
    ("regex-brackets-literal", "[a]", "[a]", True),
    ("regex-anchor-literal", "^a$", "a", False),
    # case and unicode
    ("case-sensitive", "a", "A", False),
    ("unicode-star", "日本.*", "日本.東京", True),
    ("unicode-literal-mismatch", "日本.*", "中国.東京", False),
    ("unicode-no-normalisation", "é", "e\u0301", False),
    ("unicode-no-casefold", "straße", "STRASSE", False),
    ("emoji-hash", "🐇.#", "🐇.🥕.🥕", True),
    # many-word keys
    ("long-key-hash-tail", "w0.#", LONG, True),
    ("long-key-hash-head", "#.w99", LONG, True),
    ("long-key-hash-both", "#.w50.#", LONG, True),
    ("long-key-hashes-missing-word", "#.w50.#.w49.#", LONG, False),
    ("long-key-star-too-short", "*.*.*", LONG, False),
    ("long-key-100-stars", ".".join(["*"] * 100), LONG, True),
    ("long-key-99-stars", ".".join(["*"] * 99), LONG, False),
    ("long-key-literal", LONG, LONG, True),
]


@pytest.mark.parametrize(("pattern", "key", "expected"),
                         [pytest.param(p, k, e, id=i) for i, p, k, e in EDGE_CASES])
def test_edge_cases(pattern: str, key: str, expected: bool) -> None:
    assert topic_matches(pattern, key) is expected  # the reference agrees with RabbitMQ
    trie: TopicTrie[str] = TopicTrie()
    trie.add(pattern, "q")
    trie.add("never.matches.this.#.zzz", "other")
    assert trie.match(key) == ({"q"} if expected else set())
    router: TopicRouter[str] = TopicRouter()
    router.add(pattern, "q")
    for _ in range(2):  # uncached, then cached
        assert router.route(key) == (frozenset({"q"}) if expected else frozenset())
    trie._check()


def test_all_edge_cases_in_one_trie() -> None:
    # Every pattern bound at once (with its own destination), so the patterns share nodes
    # and several ``#`` sit on one path: each key must still get exactly its matches.
    trie: TopicTrie[int] = TopicTrie()
    for n, (_, pattern, _, _) in enumerate(EDGE_CASES):
        trie.add(pattern, n)
    trie._check()
    for _, _, key, _ in EDGE_CASES:
        want = {n for n, (_, p, _, _) in enumerate(EDGE_CASES) if topic_matches(p, key)}
        assert trie.match(key) == want


def test_dest_with_several_matching_patterns_is_returned_once() -> None:
    trie: TopicTrie[str] = TopicTrie()
    for pattern in ("#", "a.#", "a.*", "*.b", "a.b", "#.b", "#.#"):
        assert trie.add(pattern, "q")
    trie.add("a.b", "q2")
    assert len(trie) == 8
    assert trie.match("a.b") == {"q", "q2"}
    router: TopicRouter[str] = TopicRouter()
    for pattern in ("#", "a.#", "a.*"):
        router.add(pattern, "q")
    assert router.route("a.b") == frozenset({"q"})


def test_add_remove_return_values_and_len() -> None:
    trie: TopicTrie[str] = TopicTrie()
    assert trie.add("a.b", "q") and not trie.add("a.b", "q")
    assert trie.add("a.b", "r") and trie.add("a", "q")
    assert len(trie) == 3
    assert not trie.remove("a.b", "x")  # pattern bound, dest not
    assert not trie.remove("a.c", "q")  # pattern never bound
    assert not trie.remove("a.b.c", "q")  # walks past a leaf
    assert not trie.remove("", "q")  # the root holds no dests
    assert trie.remove("a.b", "q") and not trie.remove("a.b", "q")
    assert len(trie) == 2
    assert trie.match("a.b") == {"r"}
    trie._check()


def test_removing_everything_leaves_one_empty_root() -> None:
    patterns = ["", "#", "*", "a", "a.b", "a.*", "a.#", "#.#.a", "*.#.*", ".", "a..b", "x.#.#.y"]
    trie: TopicTrie[int] = TopicTrie()
    for d in range(3):
        for p in patterns:
            trie.add(p, d)
    trie._check()
    for d in range(3):
        for p in reversed(patterns):
            assert trie.remove(p, d)
            trie._check()
    root = trie._root
    assert (root.words, root.star, root.hash, root.dests) == ({}, None, None, None)
    assert len(trie) == 0 and trie._deep == 0


def test_remove_keeps_shared_prefix() -> None:
    trie: TopicTrie[str] = TopicTrie()
    trie.add("a.b.c", "q")
    trie.add("a", "q")
    trie.remove("a.b.c", "q")
    trie._check()
    assert list(trie._root.words) == ["a"] and trie._root.words["a"].words == {}
    assert trie.match("a") == {"q"}


def test_check_catches_broken_invariants() -> None:
    from inbus._topic import _Node

    trie: TopicTrie[str] = TopicTrie()
    trie.add("a.b", "q")
    trie._root.words["x"] = _Node()  # an empty node that was not pruned
    with pytest.raises(AssertionError):
        trie._check()
    trie = TopicTrie()
    trie.add("a.#", "q")
    trie._len = 2
    with pytest.raises(AssertionError):
        trie._check()


def test_route_cache_hit_invalidation_and_bound() -> None:
    router: TopicRouter[str] = TopicRouter(cache_size=2)
    router.add("a.*", "q")
    first = router.route("a.b")
    assert router.route("a.b") is first  # served from the cache
    router.add("#", "all")
    assert router.route("a.b") == {"q", "all"}
    assert not router.add("#", "all")  # no change: cache kept
    assert router.route("a.b") == {"q", "all"}
    router.remove("a.*", "q")
    assert router.route("a.b") == {"all"}
    for key in ("x", "y", "z", "w"):
        router.route(key)
        assert len(router._cache) <= 2
    router._check()
    assert router.match_uncached("a.b") == {"all"}
    assert len(router) == 1


def test_route_cache_disabled_and_bad_size() -> None:
    router: TopicRouter[str] = TopicRouter(cache_size=0)
    router.add("a", "q")
    assert router.route("a") == {"q"} and router._cache == {}
    with pytest.raises(ValueError, match="cache_size"):
        TopicRouter(cache_size=-1)


# --- complexity guard ----------------------------------------------------------------------

ADVERSARIAL = [
    "#.#.#.#.#.#.#.#.a",
    "#.#.#.#.#.#.#.#.#.#.#.#.a",
    "#.x.#.x.#.x.#.x.#.x.#.a",
    "*.#.*.#.*.#.*.#.*.#.a",
    "#.*.#.*.#.*.#.*.#.*.#.*.#.*.a",
]


@pytest.mark.timeout(20)  # an exponential walk would hang here: fail instead
def test_many_hashes_against_long_keys_stay_polynomial() -> None:
    trie: TopicTrie[str] = TopicTrie()
    for p in ADVERSARIAL:
        trie.add(p, p)
    keys = [".".join(["x"] * n + ["b"]) for n in (60, 80, 120)]
    t0 = time.perf_counter()
    for key in keys:
        assert trie.match(key) == set()  # no key ends with "a": every path must be explored
    for key in keys:
        assert trie.match(key[:-1] + "a") == set(ADVERSARIAL)
    router: TopicRouter[str] = TopicRouter()
    router.add(ADVERSARIAL[0], "q")
    assert router.match_uncached(".".join(["x"] * 200)) == frozenset()
    assert time.perf_counter() - t0 < 2.0


# --- hypothesis: the trie against the reference matcher ------------------------------------

pattern_words = st.sampled_from(["a", "b", "", "*", "#"])
key_words = st.sampled_from(["a", "b", "", "c", "*", "#"])
patterns = st.lists(pattern_words, max_size=6).map(".".join)
keys = st.lists(key_words, max_size=8).map(".".join)
bindings = st.lists(st.tuples(patterns, st.integers(0, 4)), max_size=25)


def expected(binds: list[tuple[str, int]] | set[tuple[str, int]], key: str) -> set[int]:
    return {d for p, d in binds if topic_matches(p, key)}


@settings(max_examples=300, deadline=None)
@given(binds=bindings, ks=st.lists(keys, min_size=1, max_size=10))
def test_match_equals_reference(binds: list[tuple[str, int]], ks: list[str]) -> None:
    trie: TopicTrie[int] = TopicTrie()
    for p, d in binds:
        trie.add(p, d)
    trie._check()
    assert len(trie) == len(set(binds))
    for key in ks:
        assert trie.match(key) == expected(binds, key)


@settings(max_examples=200, deadline=None)
@given(binds=bindings, data=st.data(), ks=st.lists(keys, min_size=1, max_size=8))
def test_match_after_random_removals(binds: list[tuple[str, int]], data: st.DataObject,
                                     ks: list[str]) -> None:
    trie: TopicTrie[int] = TopicTrie()
    for p, d in binds:
        trie.add(p, d)
    live = set(binds)
    gone = data.draw(st.lists(st.sampled_from(binds), max_size=len(binds))) if binds else []
    for p, d in gone:
        assert trie.remove(p, d) == ((p, d) in live)
        live.discard((p, d))
        trie._check()
    for key in ks:
        assert trie.match(key) == expected(live, key)


@settings(max_examples=150, deadline=None)
@given(before=bindings, after=bindings, ks=st.lists(keys, min_size=1, max_size=8))
def test_route_equals_match_across_changes(before: list[tuple[str, int]],
                                           after: list[tuple[str, int]],
                                           ks: list[str]) -> None:
    router: TopicRouter[int] = TopicRouter(cache_size=4)
    trie: TopicTrie[int] = TopicTrie()
    for p, d in before:
        router.add(p, d)
        trie.add(p, d)
    for key in ks:
        assert router.route(key) == trie.match(key)
    for i, (p, d) in enumerate(after):  # alternately bind new pairs and unbind old ones
        if i % 2 and before:
            p, d = before[i % len(before)]
            assert router.remove(p, d) == trie.remove(p, d)
        else:
            assert router.add(p, d) == trie.add(p, d)
        for key in ks:
            assert router.route(key) == trie.match(key) == router.match_uncached(key)
    router._check()


class TopicMachine(RuleBasedStateMachine):
    """Random interleavings of add/remove/match/route, checked against a set model."""

    def __init__(self) -> None:
        super().__init__()
        self.router: TopicRouter[int] = TopicRouter(cache_size=3)
        self.model: set[tuple[str, int]] = set()

    @rule(p=patterns, d=st.integers(0, 3))
    def add(self, p: str, d: int) -> None:
        assert self.router.add(p, d) == ((p, d) not in self.model)
        self.model.add((p, d))

    @precondition(lambda self: bool(self.model))
    @rule(data=st.data())
    def remove_bound(self, data: st.DataObject) -> None:
        p, d = data.draw(st.sampled_from(sorted(self.model)))
        assert self.router.remove(p, d)
        self.model.discard((p, d))

    @rule(p=patterns, d=st.integers(0, 3))
    def remove_any(self, p: str, d: int) -> None:
        assert self.router.remove(p, d) == ((p, d) in self.model)
        self.model.discard((p, d))

    @rule(key=keys)
    def route(self, key: str) -> None:
        assert self.router.route(key) == expected(self.model, key)

    @rule(key=keys)
    def match(self, key: str) -> None:
        assert self.router._trie.match(key) == expected(self.model, key)
        assert self.router.match_uncached(key) == expected(self.model, key)

    @invariant()
    def consistent(self) -> None:
        self.router._check()
        assert len(self.router) == len(self.model)
        if not self.model:
            root = self.router._trie._root
            assert (root.words, root.star, root.hash, root.dests) == ({}, None, None, None)


TestTopicMachine = TopicMachine.TestCase
TestTopicMachine.settings = settings(max_examples=100, stateful_step_count=40, deadline=None)
