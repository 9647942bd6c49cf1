"""Topic routing: a trie of binding patterns, matched as a set-of-states automaton.

Pure: no threads, no clock, no I/O. The topic exchange owns one ``TopicRouter`` and
calls ``add`` / ``remove`` on bind / unbind and ``route`` on publish.

Semantics (RabbitMQ's, checked against a real broker)
-----------------------------------------------------
A routing key and a binding pattern are split on ``"."`` into words. The empty string is
zero words; every other string of n dots is n + 1 words, empty ones included (``"a..b"``
is ``a``, ``""``, ``b``). In a pattern the whole word ``*`` matches exactly one word and
the whole word ``#`` matches zero or more; any other word (``"a*b"``, ``"#a"``, ``""``)
matches only itself, case-sensitively. A key's word ``*`` or ``#`` is just a word.
``match`` returns each destination once, however many of its patterns match.

Theory of operation
-------------------
Each node has a dict of literal children, an optional ``*`` child, an optional ``#``
child, and the set of destinations whose pattern ends there. A ``#`` child is a *loop*
node: it may consume any number of further words while staying where it is. ``add``
walks/creates one node per word; ``remove`` walks down and prunes the nodes left empty
on its way back up, so removing every binding leaves a single empty root.

Matching runs the trie as a nondeterministic automaton, one key word at a time, over a
*frontier* of the nodes reachable after the words read so far (RabbitMQ's
``rabbit_db_topic_exchange`` trie walk, done breadth-first instead of by recursion). For
each word, each frontier node contributes its literal child for that word and its ``*``
child, and a loop node contributes itself. Entering a node also enters its ``#`` chain
(``#`` consuming zero words). After the last word the destinations of the frontier nodes
are the answer.

With at most one ``#`` on every root-to-node path, a node is reached at a given word
position in at most one way, so the frontier is a plain list without duplicates. Two
``#`` on one path (``"#.a.#"``) give several ways to the same (node, position), and
without care a chain of k ``#`` costs O(n^k) on an n-word key. So while any such pattern
is bound, the frontier is a set: this is the memo of visited (node, position) pairs.

Complexity
----------
Let w be the words in a key, d the words in a pattern, K the bindings, F the frontier
size (the number of partial matches alive at once: small for real patterns, at most the
number of trie nodes). ``add`` / ``remove`` cost O(d); ``match`` costs O(w * F) plus the
size of the answer, independent of K except through F; memory is O(total pattern
words). ``TopicRouter.route`` adds a bounded cache: a repeated key costs one dict lookup.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Generic, TypeVar

__all__ = ["TopicRouter", "TopicTrie"]

D = TypeVar("D", bound=Hashable)


class _Node(Generic[D]):
    __slots__ = ("words", "star", "hash", "dests", "loop")

    def __init__(self, loop: bool = False) -> None:
        self.words: dict[str, _Node[D]] = {}  # literal children
        self.star: _Node[D] | None = None  # the ``*`` child
        self.hash: _Node[D] | None = None  # the ``#`` child (a loop node)
        self.dests: set[D] | None = None  # never an empty set
        self.loop = loop  # True for a ``#`` node: it consumes any number of words

    def empty(self) -> bool:
        return not (self.dests or self.words or self.star or self.hash)


def _split(s: str) -> list[str]:
    return s.split(".") if s else []


class TopicTrie(Generic[D]):
    """The set of (pattern, destination) bindings of one topic exchange, as a trie.

    >>> t = TopicTrie[str]()
    >>> t.add("a.#", "q1"), t.add("*.b", "q2"), t.add("a.#", "q1")
    (True, True, False)
    >>> sorted(t.match("a.b")), sorted(t.match("a")), sorted(t.match("x.y"))
    (['q1', 'q2'], ['q1'], [])
    """

    __slots__ = ("_root", "_len", "_deep")

    def __init__(self) -> None:
        self._root: _Node[D] = _Node()
        self._len = 0
        self._deep = 0  # bindings whose pattern has two or more ``#`` words

    def __len__(self) -> int:
        """The number of (pattern, destination) pairs. O(1)."""
        return self._len

    def add(self, pattern: str, dest: D) -> bool:
        """Bind ``dest`` to ``pattern``; True if the pair was new. O(words in pattern).

        >>> t = TopicTrie[int](); t.add("a.*", 1), t.add("a.*", 1), len(t)
        (True, False, 1)
        """
        node = self._root
        hashes = 0
        for w in _split(pattern):
            if w == "*":
                nxt = node.star
                if nxt is None:
                    nxt = node.star = _Node()
            elif w == "#":
                hashes += 1
                nxt = node.hash
                if nxt is None:
                    nxt = node.hash = _Node(loop=True)
            else:
                nxt = node.words.get(w)
                if nxt is None:
                    nxt = node.words[w] = _Node()
            node = nxt
        if node.dests is None:
            node.dests = set()
        elif dest in node.dests:
            return False
        node.dests.add(dest)
        self._len += 1
        if hashes >= 2:
            self._deep += 1
        return True

    def remove(self, pattern: str, dest: D) -> bool:
        """Unbind ``dest`` from ``pattern``; True if it was bound. O(words in pattern).

        Nodes left empty are pruned, so after removing every binding the trie is again a
        single empty root.

        >>> t = TopicTrie[int](); t.add("a.#.b", 1); t.remove("a.#.b", 1), t.remove("a", 1)
        True
        (True, False)
        """
        path: list[tuple[_Node[D], str]] = []
        node: _Node[D] | None = self._root
        words = _split(pattern)
        for w in words:
            assert node is not None
            path.append((node, w))
            if w == "*":
                node = node.star
            elif w == "#":
                node = node.hash
            else:
                node = node.words.get(w)
            if node is None:
                return False
        assert node is not None
        if not node.dests or dest not in node.dests:
            return False
        node.dests.discard(dest)
        if not node.dests:
            node.dests = None
        self._len -= 1
        if words.count("#") >= 2:
            self._deep -= 1
        while path and node.empty():
            parent, w = path.pop()
            if w == "*":
                parent.star = None
            elif w == "#":
                parent.hash = None
            else:
                del parent.words[w]
            node = parent
        return True

    def match(self, routing_key: str) -> set[D]:
        """Every destination with a pattern matching ``routing_key``, each once.

        O(words in key * frontier) + size of the answer; see the module docstring.

        >>> t = TopicTrie[str](); t.add("#", "all"); t.add("a.*.c", "x"); t.add("a.#.c", "x")
        True
        True
        True
        >>> sorted(t.match("a.b.c")), sorted(t.match(""))
        (['all', 'x'], ['all'])
        """
        if self._deep:
            return self._match_deep(routing_key)
        root = self._root
        frontier = [root]
        h = root.hash
        while h is not None:
            frontier.append(h)
            h = h.hash
        if routing_key:
            for w in routing_key.split("."):
                nxt: list[_Node[D]] = []
                add = nxt.append
                for node in frontier:
                    c = node.words.get(w)
                    if c is not None:
                        add(c)
                        h = c.hash
                        while h is not None:
                            add(h)
                            h = h.hash
                    c = node.star
                    if c is not None:
                        add(c)
                        h = c.hash
                        while h is not None:
                            add(h)
                            h = h.hash
                    if node.loop:
                        add(node)
                if not nxt:
                    return set()
                frontier = nxt
        out: set[D] = set()
        for node in frontier:
            d = node.dests
            if d:
                out |= d
        return out

    def _match_deep(self, routing_key: str) -> set[D]:
        # The same walk with a set as frontier: each (node, position) is visited once.
        frontier = {self._root}
        h = self._root.hash
        while h is not None:
            frontier.add(h)
            h = h.hash
        for w in _split(routing_key):
            nxt: set[_Node[D]] = set()
            add = nxt.add
            for node in frontier:
                for c in (node.words.get(w), node.star):
                    while c is not None:  # the node, then its ``#`` chain
                        add(c)
                        c = c.hash
                if node.loop:
                    add(node)
            if not nxt:
                return set()
            frontier = nxt
        out: set[D] = set()
        for node in frontier:
            if node.dests:
                out |= node.dests
        return out

    def _check(self) -> None:
        """Check every invariant; raise AssertionError on the first broken one. O(nodes)."""
        root = self._root
        assert not root.loop, "root is not a loop node"
        count = deep = 0
        stack: list[tuple[_Node[D], int]] = [(root, 0)]
        while stack:
            node, hashes = stack.pop()
            if node is not root:
                assert not node.empty(), "empty non-root node was not pruned"
            if node.dests is not None:
                assert node.dests, "dests is None or non-empty, never an empty set"
                count += len(node.dests)
                if hashes >= 2:
                    deep += len(node.dests)
            for w, c in node.words.items():
                assert isinstance(w, str) and w not in ("*", "#"), f"bad literal {w!r}"
                assert not c.loop, "literal child marked as loop"
                stack.append((c, hashes))
            if node.star is not None:
                assert not node.star.loop, "* child marked as loop"
                stack.append((node.star, hashes))
            if node.hash is not None:
                assert node.hash.loop, "# child not marked as loop"
                stack.append((node.hash, hashes + 1))
        assert count == self._len, f"len {self._len} but {count} bindings in the trie"
        assert deep == self._deep, f"deep count {self._deep} but {deep} found"


class TopicRouter(Generic[D]):
    """A ``TopicTrie`` with a bounded cache of routing key -> destinations.

    Any ``add`` or ``remove`` that changes the bindings clears the cache. When the cache
    holds ``cache_size`` keys it is cleared before the next insertion (O(1) amortised,
    and no bookkeeping on the hot path). ``cache_size=0`` disables it.

    >>> r = TopicRouter[str](); r.add("logs.*", "q"); sorted(r.route("logs.error"))
    True
    ['q']
    """

    __slots__ = ("_trie", "_cache", "_cache_size")

    def __init__(self, cache_size: int = 4096) -> None:
        if cache_size < 0:
            raise ValueError(f"cache_size must be >= 0, got {cache_size!r}")
        self._trie: TopicTrie[D] = TopicTrie()
        self._cache: dict[str, frozenset[D]] = {}
        self._cache_size = cache_size

    def __len__(self) -> int:
        """The number of (pattern, destination) pairs. O(1)."""
        return len(self._trie)

    def add(self, pattern: str, dest: D) -> bool:
        """Bind; True if new (then the cache is cleared). O(words in pattern)."""
        if self._trie.add(pattern, dest):
            self._cache.clear()
            return True
        return False

    def remove(self, pattern: str, dest: D) -> bool:
        """Unbind; True if it was bound (then the cache is cleared). O(words in pattern)."""
        if self._trie.remove(pattern, dest):
            self._cache.clear()
            return True
        return False

    def route(self, routing_key: str) -> frozenset[D]:
        """The destinations for ``routing_key``: O(1) when cached, else ``match_uncached``.

        >>> r = TopicRouter[int](); r.add("#.b", 1); r.route("a.b") is r.route("a.b")
        True
        True
        """
        try:
            return self._cache[routing_key]
        except KeyError:
            pass
        result = frozenset(self._trie.match(routing_key))
        if self._cache_size:
            cache = self._cache
            if len(cache) >= self._cache_size:
                cache.clear()
            cache[routing_key] = result
        return result

    def match_uncached(self, routing_key: str) -> frozenset[D]:
        """The destinations for ``routing_key``, bypassing the cache. See ``TopicTrie.match``."""
        return frozenset(self._trie.match(routing_key))

    def _check(self) -> None:
        """Check the trie's invariants and that every cached answer is still right."""
        self._trie._check()
        assert len(self._cache) <= self._cache_size, "cache over its bound"
        for key, dests in self._cache.items():
            assert dests == self._trie.match(key), f"stale cache entry for {key!r}"
