#!/usr/bin/env python3
"""Plots `lamina bench --json` results: aggregate output tokens/s and TTFT
(p50 solid, p99 dashed) against concurrency, one line per results file.

usage: scripts/plot_bench.py [LABEL=]RESULTS.json [...] [-o bench.png] [--title TEXT]

A file given without LABEL= is labelled with its stem. Several files of the
same label (repetitions) are combined by the median of each level."""

import argparse
import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def load(specs):
    """{label: {concurrency: [level, ...]}} in the order labels first appear"""
    series = {}
    for spec in specs:
        label, sep, path = spec.partition("=")
        if not sep:
            label, path = Path(spec).stem, spec
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, ValueError) as e:
            sys.exit(f"plot_bench.py: cannot read {path}: {e}")
        levels = series.setdefault(label, defaultdict(list))
        for lv in data.get("levels", []):
            levels[lv["concurrency"]].append(lv)
    return series


def median_of(levels, key, sub=None):
    return statistics.median(lv[key][sub] if sub else lv[key] for lv in levels)


def plot(series, out, title):
    fig, (ax_tps, ax_ttft) = plt.subplots(1, 2, figsize=(11, 4.2))
    for i, (label, by_conc) in enumerate(series.items()):
        conc = sorted(by_conc)
        color = f"C{i}"
        tps = [median_of(by_conc[c], "output_throughput") for c in conc]
        ax_tps.plot(conc, tps, "o-", color=color, label=label)
        p50 = [median_of(by_conc[c], "ttft_ms", "p50") / 1e3 for c in conc]
        p99 = [median_of(by_conc[c], "ttft_ms", "p99") / 1e3 for c in conc]
        ax_ttft.plot(conc, p50, "o-", color=color, label=f"{label} p50")
        ax_ttft.plot(conc, p99, "s--", color=color, label=f"{label} p99")
    for ax in (ax_tps, ax_ttft):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("concurrent streams")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
        ticks = sorted({c for by_conc in series.values() for c in by_conc})
        ax.set_xticks(ticks, [str(c) for c in ticks])
    ax_tps.set_ylabel("aggregate output tokens/s")
    ax_tps.set_ylim(bottom=0)
    ax_ttft.set_ylabel("time to first token (s)")
    ax_ttft.set_ylim(bottom=0)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", nargs="+", help="[LABEL=]FILE.json written by lamina bench --json")
    ap.add_argument("-o", "--out", default="bench.png", help="PNG to write (default bench.png)")
    ap.add_argument("--title", default="", help="figure title")
    args = ap.parse_args()
    series = load(args.results)
    if not any(series.values()):
        sys.exit("plot_bench.py: no levels in the results")
    plot(series, args.out, args.title)
    print(args.out)


if __name__ == "__main__":
    main()
