"""Plot benchmarks/results/topic.json as route cost per message against K (log-log).

Run: ``python benchmarks/plot_topic.py [results/topic.json] [results/topic.png]``.
Each line is one implementation: the marker is the median of the repeats, the band spans
min..max. Needs matplotlib (the ``plot`` extra).
"""

from __future__ import annotations

import json
import os
import sys
from collections import defaultdict

HERE = os.path.dirname(os.path.abspath(__file__))

STYLE = {  # name -> (colour, marker); rows not listed are drawn in grey
    "kombu memory:// lookup": ("tab:red", "v"),
    "regex scan": ("tab:orange", "s"),
    "reference trie (recursive)": ("tab:purple", "D"),
    "inbus match_uncached": ("tab:blue", "o"),
    "inbus route (warm cache)": ("tab:green", "^"),
    "floor: dict.get": ("black", "."),
    "kombu memory:// publish e2e": ("darkred", "x"),
    "inbus basic_publish e2e (uncached)": ("navy", "P"),
    "inbus basic_publish e2e (warm cache)": ("darkgreen", "*"),
}


def plot(src: str, dst: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(src) as f:
        data = json.load(f)
    series: dict[str, list[tuple[int, float, float, float]]] = defaultdict(list)
    for r in data["results"]:
        if r["skipped"] or not r["group"].startswith("K="):
            continue
        t = r["per_op_s"]
        series[r["name"]].append((int(r["group"][2:]), min(t), r["median"], max(t)))

    fig, ax = plt.subplots(figsize=(8, 5.5), dpi=120)
    order = [n for n in STYLE if n in series] + sorted(set(series) - set(STYLE))
    for name in order:
        pts = sorted(series[name])
        ks = [p[0] for p in pts]
        colour, marker = STYLE.get(name, ("grey", "x"))
        ax.plot(ks, [p[2] * 1e6 for p in pts], marker=marker, color=colour, label=name)
        ax.fill_between(ks, [p[1] * 1e6 for p in pts], [p[3] * 1e6 for p in pts],
                        color=colour, alpha=0.15, linewidth=0)
    ax.axhline(0.5, color="tab:green", linestyle=":", linewidth=1)
    ax.text(11, 0.55, "target: warm route ≤ 0.5 µs", color="tab:green", fontsize=8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("bindings on the topic exchange (K)")
    ax.set_ylabel("cost per routed message (µs, median; band = min..max)")
    m = data["machine"]
    ax.set_title(f"Topic routing cost vs bindings\n{m['processor']}, {m['cores']} cores, "
                 f"{m['implementation']} {m['python']}, {m['date']}", fontsize=10)
    ax.grid(True, which="major", alpha=0.4)
    ax.grid(True, which="minor", alpha=0.1)
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    fig.savefig(dst)
    print(f"wrote {dst}")


if __name__ == "__main__":
    src = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "results", "topic.json")
    dst = sys.argv[2] if len(sys.argv) > 2 else os.path.join(HERE, "results", "topic.png")
    plot(src, dst)
