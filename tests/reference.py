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

def _signed_char(b: int) -> int:
    return b - 256 if b >= 128 else b


def redis_glob_match(pattern: bytes, string: bytes) -> bool:
    """Redis 7 ``stringmatchlen`` (util.c), walked byte by byte as the C code does."""
    p, s, plen, slen = 0, 0, len(pattern), len(string)
    while p < plen and s < slen:
        c = pattern[p]
        if c == 42:  # '*': try the rest of the pattern at every non-empty suffix
            while p + 1 < plen and pattern[p + 1] == 42:
                p += 1
            if p + 1 == plen:
                return True
            return any(redis_glob_match(pattern[p + 1:], string[i:]) for i in range(s, slen))
        if c == 91:  # '['
            p += 1
            negate = p < plen and pattern[p] == 94
            p += negate
            hit = False
            while True:
                if p + 1 < plen and pattern[p] == 92:
                    p += 1
                    hit |= pattern[p] == string[s]
                elif p < plen and pattern[p] == 93:
                    break
                elif p >= plen:
                    p -= 1
                    break
                elif p + 2 < plen and pattern[p + 1] == 45:
                    lo, hi = sorted((_signed_char(pattern[p]), _signed_char(pattern[p + 2])))
                    hit |= lo <= _signed_char(string[s]) <= hi
                    p += 2
                else:
                    hit |= pattern[p] == string[s]
                p += 1
            if hit == negate:
                return False
        elif c != 63:  # not '?': a literal byte, maybe escaped
            if c == 92 and p + 1 < plen:
                p += 1
            if pattern[p] != string[s]:
                return False
        s += 1
        p += 1
        if s == slen:
            while p < plen and pattern[p] == 42:
                p += 1
    return p == plen and s == slen


# --- broker model (owned by the stateful broker tests) -------------------------------------
