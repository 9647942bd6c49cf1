"""Naive reference models that the real implementation is checked against.

Each section is short and obviously right (slow is fine): hypothesis compares inbus with
them. Sections: topic matching, Redis glob matching, the broker model.
"""

from __future__ import annotations

# --- topic matching (owned by the topic-router tests) --------------------------------------


def topic_matches(pattern: str, key: str) -> bool:
    """RabbitMQ topic matching by recursion on word lists (exponential in ``#``; fine here).

    Both strings split on "."; "" is zero words; ``*`` is one word, ``#`` zero or more;
    any other pattern word, however it looks, matches only the identical key word.
    """

    def m(p: list[str], k: list[str]) -> bool:
        if not p:
            return not k
        if p[0] == "#":
            return any(m(p[1:], k[i:]) for i in range(len(k) + 1))
        if not k:
            return False
        return (p[0] == "*" or p[0] == k[0]) and m(p[1:], k[1:])

    return m(pattern.split(".") if pattern else [], key.split(".") if key else [])


# --- Redis glob matching (owned by the pub/sub tests) --------------------------------------

# --- broker model (owned by the stateful broker tests) -------------------------------------
