"""Command line: ``python -m inbus demo | bench [--quick] [NAME...] | inspect FILE``.

- ``demo`` runs the example flows in ``examples/`` (hello world, work queues, fair
  dispatch, durable, publish/subscribe, routing, topics, RPC, pub/sub) end to end and
  prints what happened.
- ``bench`` runs the benchmarks in ``benchmarks/`` (``--quick``: a short version) and
  prints the tables with ratios against the peers measured in the same run.
- ``inspect FILE`` prints what a durable bus file holds (read-only), like rabbitmqctl's
  list_vhosts / list_exchanges / list_queues / list_bindings.

``demo`` and ``bench`` need a checkout of the repository (they run its examples/ and
benchmarks/ folders).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import runpy
import sys

DEMO_ORDER = ("hello_world", "work_queues", "fair_dispatch", "durable", "publish_subscribe",
              "routing_direct", "routing_topic", "rpc", "pubsub")


def _repo_dir(name: str) -> str | None:
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for base in (os.getcwd(), here):
        d = os.path.join(base, name)
        if os.path.isdir(d):
            return d
    return None


def demo() -> int:
    d = _repo_dir("examples")
    if d is None:
        print("inbus demo: no examples/ folder found; run it from a checkout of inbus")
        return 1
    names = [n for n in DEMO_ORDER if os.path.exists(os.path.join(d, n + ".py"))]
    names += sorted(f[:-3] for f in os.listdir(d)
                    if f.endswith(".py") and not f.startswith("_") and f[:-3] not in names)
    for n in names:
        print(f"\n=== examples/{n}.py " + "=" * max(0, 60 - len(n)), flush=True)
        runpy.run_path(os.path.join(d, n + ".py"), run_name="__main__")
    print(f"\ninbus demo: {len(names)} example flows ran")
    return 0


def bench(quick: bool, only: list[str]) -> int:
    d = _repo_dir("benchmarks")
    if d is None:
        print("inbus bench: no benchmarks/ folder found; run it from a checkout of inbus")
        return 1
    sys.path.insert(0, d)
    files = sorted(f for f in os.listdir(d) if f.startswith("bench_") and f.endswith(".py"))
    for f in files:
        name = f[6:-3]
        if only and name not in only:
            continue
        spec = importlib.util.spec_from_file_location(f"inbus_bench_{name}",
                                                      os.path.join(d, f))
        assert spec is not None and spec.loader is not None
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        main = getattr(mod, "main", None)
        if main is not None:
            print(f"\n### benchmarks/{f} (quick={quick})", flush=True)
            main(quick=quick)
    return 0


def inspect_file(path: str) -> int:
    from ._errors import PersistenceError
    from ._inspect import inspect
    try:
        print(inspect(path))
    except PersistenceError as e:
        print(f"inbus inspect: {e}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m inbus", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("demo", help="run the example flows end to end")
    b = sub.add_parser("bench", help="run the benchmarks")
    b.add_argument("--quick", action="store_true", help="a short version")
    b.add_argument("names", nargs="*", help="only these (e.g. topic pubsub consume sqlite)")
    i = sub.add_parser("inspect", help="print what a durable bus file holds")
    i.add_argument("file")
    args = ap.parse_args(argv)
    if args.cmd == "demo":
        return demo()
    if args.cmd == "bench":
        return bench(args.quick, args.names)
    return inspect_file(args.file)


if __name__ == "__main__":
    sys.exit(main())
