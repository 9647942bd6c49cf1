"""A small benchmark harness shared by every benchmark in this folder.

A *case* is a function ``run(n) -> None`` that does ``n`` operations (setup belongs outside
it or in a ``setup`` callable). Each case runs ``repeats`` times; the harness reports the
min / median / max cost per operation and, because machines here are noisy, the *ratio* of
each row's median to a reference row measured in the same run. Results go to stdout as a
table and to a JSON file.

Usage::

    from harness import Suite
    s = Suite("topic routing", repeats=5)
    s.add("floor: dict lookup", lambda n: ..., n=100_000, group="K=10")
    s.add("inbus: route", lambda n: ..., n=100_000, group="K=10", ref="floor: dict lookup")
    s.run()
    s.report()
    s.write_json("benchmarks/results/topic.json")
"""

from __future__ import annotations

import gc
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Case:
    name: str
    run: Callable[[int], Any]
    n: int
    group: str = ""
    ref: str | None = None  # name of the row (same group) this one is compared with
    setup: Callable[[], Any] | None = None
    note: str = ""


@dataclass
class Result:
    name: str
    group: str
    n: int
    per_op_s: list[float] = field(default_factory=list)
    ref: str | None = None
    note: str = ""
    skipped: str = ""

    @property
    def median(self) -> float:
        return statistics.median(self.per_op_s) if self.per_op_s else float("nan")


def machine_info() -> dict[str, Any]:
    return {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "machine": platform.machine(),
        "processor": platform.processor() or _cpu_model(),
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "date": time.strftime("%Y-%m-%d"),
    }


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def fmt_time(s: float) -> str:
    if s != s:  # nan
        return "-"
    if s < 1e-6:
        return f"{s * 1e9:.0f} ns"
    if s < 1e-3:
        return f"{s * 1e6:.2f} µs"
    if s < 1:
        return f"{s * 1e3:.2f} ms"
    return f"{s:.2f} s"


class Suite:
    def __init__(self, title: str, repeats: int = 5) -> None:
        self.title = title
        self.repeats = repeats
        self.cases: list[Case] = []
        self.results: list[Result] = []
        self._skips: list[tuple[int, Result]] = []  # (number of cases added before, row)

    def add(self, name: str, run: Callable[[int], Any], n: int, *, group: str = "",
            ref: str | None = None, setup: Callable[[], Any] | None = None,
            note: str = "") -> None:
        self.cases.append(Case(name, run, n, group, ref, setup, note))

    def skip(self, name: str, why: str, *, group: str = "") -> None:
        """Record a row that could not run (e.g. an optional peer is not installed).

        After ``run`` it is reported where it was added among the cases, not first."""
        row = Result(name, group, 0, skipped=why)
        self.results.append(row)
        self._skips.append((len(self.cases), row))

    def run(self) -> list[Result]:
        # Interleave repeats (case A, B, C, A, B, C, ...) so slow drifts of a noisy machine
        # spread over every row instead of penalising whichever ran last.
        results = {id(c): Result(c.name, c.group, c.n, ref=c.ref, note=c.note)
                   for c in self.cases}
        for _ in range(self.repeats):
            for c in self.cases:
                if c.setup is not None:
                    c.setup()
                gc.collect()
                gc_was = gc.isenabled()
                gc.disable()
                t0 = time.perf_counter()
                c.run(c.n)
                dt = time.perf_counter() - t0
                if gc_was:
                    gc.enable()
                results[id(c)].per_op_s.append(dt / c.n)
        skipped = {id(row) for _, row in self._skips}
        rows = [r for r in self.results if id(r) not in skipped]
        pending = list(self._skips)
        for i, c in enumerate(self.cases):
            while pending and pending[0][0] <= i:
                rows.append(pending.pop(0)[1])
            rows.append(results[id(c)])
        rows.extend(row for _, row in pending)
        self.results = rows
        return self.results

    def _find(self, group: str, name: str) -> Result | None:
        for r in self.results:
            if r.group == group and r.name == name and not r.skipped:
                return r
        return None

    def ratio(self, name: str, ref: str, group: str = "") -> float:
        a, b = self._find(group, name), self._find(group, ref)
        if a is None or b is None:
            return float("nan")
        return a.median / b.median

    def report(self, file: Any = None) -> str:
        lines = [f"## {self.title}", "",
                 f"{self.repeats} repeats; per-operation cost min / median / max; ratio = "
                 "median / median of the reference row measured in the same run", "",
                 "| group | case | n | min | median | max | ratio |",
                 "|---|---|---:|---:|---:|---:|---|"]
        for r in self.results:
            if r.skipped:
                lines.append(f"| {r.group} | {r.name} | - | - | - | - | skipped: {r.skipped} |")
                continue
            ratio = ""
            if r.ref:
                ref = self._find(r.group, r.ref)
                if ref is not None:
                    ratio = f"{r.median / ref.median:.2f}x {r.ref}"
            lines.append(
                f"| {r.group} | {r.name} | {r.n} | {fmt_time(min(r.per_op_s))} | "
                f"{fmt_time(r.median)} | {fmt_time(max(r.per_op_s))} | {ratio} |")
        text = "\n".join(lines) + "\n"
        print(text, file=file or sys.stdout, flush=True)
        return text

    def write_json(self, path: str) -> None:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        data = {"title": self.title, "repeats": self.repeats, "machine": machine_info(),
                "results": [asdict(r) | {"median": r.median} for r in self.results]}
        with open(path, "w") as f:
            json.dump(data, f, indent=1)
