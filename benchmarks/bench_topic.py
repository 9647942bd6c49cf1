"""Topic routing cost per message against the number of bindings K.

Rows, for K = 10, 100, 1k, 10k, 100k bindings on one topic exchange:

- ``floor: dict.get``            the CPython floor: one dict lookup per key, same loop
- ``inbus route (warm cache)``   ``TopicRouter.route`` with every key already cached
- ``inbus match_uncached``       ``TopicRouter.match_uncached``: the trie walk every time
- ``reference trie (recursive)`` the plain, straightforward recursive trie below: the yardstick
- ``regex scan``                 K compiled regexes (exact RabbitMQ semantics), all tried
- ``kombu memory:// lookup``     ``kombu.transport.virtual.exchange.TopicExchange.lookup``,
                                 what kombu's memory:// channel calls per publish (a scan
                                 of K ``(pattern, regex, queue)`` rows); only K <= 10k,
                                 it is too slow beyond (its cost is linear in K)

Workload: services ``svc<i>`` each own about ten 3-5 word bindings (literal, ``*`` and
``#`` mixed, e.g. ``svc7.order.*``, ``svc7.#.eu``), plus two global patterns (``#.error``,
``*.user.delete.#``). The number of services grows with K, as in a real system. Keys are
made by instantiating a random bound pattern, so each key matches one to a few bindings
whatever K is (the mean is printed). Every implementation must give the same answer on
every key before anything is timed (kombu excepted: its ``#`` is the regex ``.*?``, which
is not RabbitMQ's; the disagreement rate is reported in its note).

Run: ``python benchmarks/bench_topic.py`` (full, writes benchmarks/results/topic.json),
``--quick`` for a short version (what ``python -m inbus bench`` runs).
"""

from __future__ import annotations

import argparse
import os
import random
import re
import sys
from collections.abc import Callable, Iterable
from typing import Any

_HERE = os.path.dirname(os.path.abspath(__file__))
if os.path.dirname(_HERE) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, os.path.dirname(_HERE))
try:
    from benchmarks.harness import Suite
except ImportError:  # pragma: no cover - run with benchmarks/ as the working directory
    from harness import Suite  # type: ignore[no-redef]

from inbus._topic import TopicRouter  # noqa: E402

ENTITIES = ["order", "user", "invoice", "payment", "cart", "item", "stock", "ship",
            "refund", "coupon", "review", "login", "session", "email", "sms", "report",
            "task", "job", "file", "audit"]
ACTIONS = ["create", "update", "delete", "get", "list", "sync", "fail", "retry", "done",
           "start"]
REGIONS = ["eu", "us", "ap", "sa", "af"]
LEVELS = ["info", "warn", "error", "debug"]
GLOBALS = ["#.error", "*.user.delete.#"]
TEMPLATES = ["{s}.{e}.{a}", "{s}.{e}.{a}.{r}", "{s}.{e}.*", "{s}.*.{a}", "{s}.{e}.#",
             "{s}.#.{r}", "{s}.*.{a}.{r}", "{s}.{e}.{a}.{r}.{l}", "{s}.{e}.*.*.{l}",
             "{s}.*.*.{r}"]
VOCAB = ENTITIES + ACTIONS + REGIONS + LEVELS


# --- the yardstick: a plain, straightforward recursive trie --------------------------------

class ReferenceTrie:
    """Nested dicts; ``*`` and ``#`` are children like any word; dests under key None.

    A key word that is literally ``*`` or ``#`` also walks that child as a literal: it
    visits nothing that the wildcard walk does not, so the answer is still exact.
    """

    def __init__(self) -> None:
        self.root: dict[Any, Any] = {}

    def add(self, pattern: str, dest: Any) -> None:
        node = self.root
        for w in pattern.split(".") if pattern else []:
            node = node.setdefault(w, {})
        node.setdefault(None, set()).add(dest)

    def match(self, key: str) -> set[Any]:
        words = key.split(".") if key else []
        n, out = len(words), set()

        def walk(node: dict[Any, Any], i: int) -> None:
            if "#" in node:
                for j in range(i, n + 1):
                    walk(node["#"], j)
            if i == n:
                out.update(node.get(None, ()))
                return
            if words[i] in node:
                walk(node[words[i]], i + 1)
            if "*" in node:
                walk(node["*"], i + 1)

        walk(self.root, 0)
        return out


# --- the naive scan: one compiled regex per binding ----------------------------------------

def topic_regex(pattern: str) -> re.Pattern[str]:
    """An exact regex for a pattern, matched against ``"." + key`` (``""`` for ``""``)."""
    parts = {"*": r"\.[^.]*", "#": r"(?:\.[^.]*)*"}
    words = pattern.split(".") if pattern else []
    return re.compile("".join(parts.get(w) or r"\." + re.escape(w) for w in words))


class RegexScan:
    def __init__(self, bindings: Iterable[tuple[str, Any]]) -> None:
        self.table = [(topic_regex(p).fullmatch, d) for p, d in bindings]

    def match(self, key: str) -> set[Any]:
        s = "." + key if key else ""
        return {d for fullmatch, d in self.table if fullmatch(s)}


# --- workload ------------------------------------------------------------------------------

def make_bindings(k: int, rng: random.Random) -> list[tuple[str, str]]:
    services = max(1, k // 10)
    out = [(p, f"q{i}") for i, p in enumerate(GLOBALS[:k])]
    while len(out) < k:
        t = rng.choice(TEMPLATES)
        p = t.format(s=f"svc{rng.randrange(services)}", e=rng.choice(ENTITIES),
                     a=rng.choice(ACTIONS), r=rng.choice(REGIONS), l=rng.choice(LEVELS))
        out.append((p, f"q{len(out)}"))
    return out


def make_keys(bindings: list[tuple[str, str]], n: int, rng: random.Random) -> list[str]:
    """Keys made from random bound patterns: ``*`` -> a word, ``#`` -> 0-2 words."""
    keys = []
    for _ in range(n):
        words: list[str] = []
        for w in rng.choice(bindings)[0].split("."):
            if w == "*":
                words.append(rng.choice(VOCAB))
            elif w == "#":
                words.extend(rng.choice(VOCAB) for _ in range(rng.randrange(3)))
            else:
                words.append(w)
        keys.append(".".join(words))
    return keys


def _loop(fn: Callable[[str], Any], keys: list[str], n: int) -> Callable[[int], None]:
    seq = (keys * (n // len(keys) + 1))[:n]

    def run(_n: int) -> None:
        for k in seq:
            fn(k)

    return run


# --- the suite -----------------------------------------------------------------------------

def build(suite: Suite, k: int, quick: bool, rng: random.Random) -> None:
    group = f"K={k}"
    bindings = make_bindings(k, rng)
    keys = make_keys(bindings, 1000, rng)
    router: TopicRouter[str] = TopicRouter(cache_size=4096)
    ref = ReferenceTrie()
    for p, d in bindings:
        router.add(p, d)
        ref.add(p, d)
    for key in keys:  # every implementation agrees before anything is timed
        assert router.match_uncached(key) == ref.match(key), key
    mean = sum(len(ref.match(key)) for key in keys) / len(keys)
    for key in keys:  # warm the cache
        router.route(key)
    floor = {key: frozenset() for key in keys}

    fast = 20_000 if quick else 100_000
    suite.add("floor: dict.get", _loop(floor.get, keys, fast), fast, group=group)
    suite.add("inbus route (warm cache)", _loop(router.route, keys, fast), fast, group=group,
              ref="floor: dict.get")
    slow = 5_000 if quick else 20_000
    suite.add("reference trie (recursive)", _loop(ref.match, keys, slow), slow, group=group,
              note=f"{mean:.2f} matching bindings per key on average")
    suite.add("inbus match_uncached", _loop(router.match_uncached, keys, slow), slow,
              group=group, ref="reference trie (recursive)")

    scan_n = max(10, min(slow, 2_000_000 // k // (4 if quick else 1)))
    if k <= (10_000 if quick else 100_000):
        scan = RegexScan(bindings)
        for key in keys[:50]:
            assert scan.match(key) == ref.match(key), key
        suite.add("regex scan", _loop(scan.match, keys, scan_n), scan_n, group=group,
                  ref="reference trie (recursive)")
    else:
        suite.skip("regex scan", "quick run: K <= 10k only (cost is linear in K)", group=group)

    end_to_end(suite, k, bindings, keys, quick)
    kombu_rows(suite, k, bindings, keys, ref, quick, scan_n)


E2E_QUEUES = 100  # bindings are spread over this many queues


def end_to_end(suite: Suite, k: int, bindings: list[tuple[str, str]], keys: list[str],
               quick: bool) -> None:
    """basic_publish through a topic exchange with K bindings into queues (100-byte body),
    with the routing-key caches disabled ("uncached": the vhost's route cache and the topic
    exchange's own, so every publish walks the trie) or warm (both on, the default)."""
    from inbus import Bus

    group = f"K={k}"
    body = b"x" * 100
    n = 5_000 if quick else 20_000
    for cached in (False, True):
        bus = Bus()
        ch = bus.channel()
        ch.exchange_declare("bx", "topic")
        queues = [f"q{i}" for i in range(min(E2E_QUEUES, k))]
        for q in queues:
            ch.queue_declare(q)
        for i, (p, _d) in enumerate(bindings):
            ch.queue_bind(queues[i % len(queues)], "bx", p)
        x = bus._vhosts["/"].exchanges["bx"]
        if not cached:  # both caches off: the vhost's routes and the exchange's own
            x.cache_routes = False
            x.cache_size = 0  # type: ignore[attr-defined]
        seq = (keys * (n // len(keys) + 1))[:n]
        publish = ch.basic_publish

        def setup(ch: Any = ch, queues: list[str] = queues) -> None:
            for q in queues:
                ch.queue_purge(q)

        def run(_n: int, seq: list[str] = seq, publish: Any = publish) -> None:
            for key in seq:
                publish("bx", key, body)

        name = "inbus basic_publish e2e (warm cache)" if cached else \
            "inbus basic_publish e2e (uncached)"
        suite.add(name, run, n, group=group, setup=setup,
                  ref=None if not cached else "inbus basic_publish e2e (uncached)",
                  note=f"{k} bindings over {len(queues)} queues")


def kombu_e2e(suite: Suite, k: int, bindings: list[tuple[str, str]], keys: list[str],
              quick: bool) -> None:
    """kombu memory:// Producer.publish through a topic exchange with K bindings."""
    from kombu import Connection, Exchange, Producer

    group = f"K={k}"
    conn = Connection("memory://")
    ch = conn.channel()
    ex = Exchange(f"bx{k}", type="topic")
    ex(ch).declare()
    queues = [f"kq{k}_{i}" for i in range(min(E2E_QUEUES, k))]
    for q in queues:
        ch.queue_declare(queue=q)
    for i, (p, _d) in enumerate(bindings):
        ch.queue_bind(queue=queues[i % len(queues)], exchange=ex.name, routing_key=p)
    producer = Producer(ch, exchange=ex)
    body = b"x" * 100
    n = max(20, min(5_000, 200_000 // k)) // (4 if quick else 1)
    seq = (keys * (n // len(keys) + 1))[:n]

    def setup() -> None:
        for q in queues:
            ch.queue_purge(q)

    def run(_n: int) -> None:
        for key in seq:
            producer.publish(body, routing_key=key)

    suite.add("kombu memory:// publish e2e", run, n, group=group, setup=setup,
              ref="inbus basic_publish e2e (uncached)")


def kombu_rows(suite: Suite, k: int, bindings: list[tuple[str, str]], keys: list[str],
               ref: ReferenceTrie, quick: bool, scan_n: int) -> None:
    group = f"K={k}"
    kombu_max = 1_000 if quick else 10_000
    try:
        from kombu.transport.virtual.exchange import TopicExchange
    except ImportError:
        suite.skip("kombu memory:// lookup", "kombu not installed (pip install kombu)",
                   group=group)
        return
    if k > kombu_max:
        suite.skip("kombu memory:// lookup",
                   f"K <= {kombu_max:,} only: a linear regex scan, too slow beyond", group=group)
        return
    ex = TopicExchange(None)
    table = [ex.prepare_bind(d, "x", p, None) for p, d in bindings]

    def kombu_lookup(key: str) -> set[str]:
        return ex.lookup(table, "x", key, None)  # type: ignore[no-any-return]

    wrong = sum(kombu_lookup(key) != ref.match(key) for key in keys[:200])  # compiles too
    suite.add("kombu memory:// lookup", _loop(kombu_lookup, keys, scan_n), scan_n,
              group=group, ref="reference trie (recursive)",
              note=f"kombu answer differs from RabbitMQ's on {wrong}/200 keys")
    kombu_e2e(suite, k, bindings, keys, quick)


def main(quick: bool = False, json_path: str | None = None) -> Suite:
    """Run the topic-routing suite; ``quick`` is the short version ``python -m inbus bench``
    runs (K <= 10k, 3 repeats, fewer operations). Returns the Suite (already reported)."""
    rng = random.Random(20240601)
    suite = Suite("Topic routing", repeats=3 if quick else 5)
    ks = [10, 1_000, 10_000] if quick else [10, 100, 1_000, 10_000, 100_000]
    for k in ks:
        build(suite, k, quick, rng)
    suite.run()
    suite.report()
    if json_path:
        suite.write_json(json_path)
    return suite


def main_e2e(json_path: str | None = None) -> Suite:
    """Only the end-to-end rows (inbus basic_publish and kombu's publish), with nothing
    else alive in the process: the full suite also keeps 100k compiled regexes, kombu's
    tables and the reference tries in memory, which slows the large-K rows through cache
    and TLB pressure that is not inbus's own."""
    rng = random.Random(20240601)
    suite = Suite("Topic routing, end to end only", repeats=5)
    for k in (10, 1_000, 10_000, 100_000):
        bindings = make_bindings(k, rng)
        keys = make_keys(bindings, 1000, rng)
        end_to_end(suite, k, bindings, keys, quick=False)
        if k <= 10_000:
            kombu_e2e(suite, k, bindings, keys, quick=False)
    suite.run()
    suite.report()
    if json_path:
        suite.write_json(json_path)
    return suite


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="short run, K <= 10k")
    ap.add_argument("--e2e", action="store_true",
                    help="only the end-to-end rows (results/topic_e2e.json)")
    ap.add_argument("--json", default=None,
                    help="write results here (default: benchmarks/results/topic.json "
                         "for a full run, nothing for --quick)")
    args = ap.parse_args()
    if args.e2e:
        main_e2e(args.json or os.path.join(_HERE, "results", "topic_e2e.json"))
        sys.exit(0)
    path = args.json
    if path is None and not args.quick:
        path = os.path.join(_HERE, "results", "topic.json")
    main(quick=args.quick, json_path=path)
