#!/usr/bin/env python3
"""Plots one bench/run_bench.sh result (the JSON summarize.py writes): lamina's
speed over llama.cpp's for every (model, test, threads), with the 1.2x bar of
the kernels issue, and each decode's share of the memory-bandwidth roofline
for both programs, with the 85 % bar.

usage: bench/plot_cpu.py build-ref/bench-DATE.json [-o bench.png]"""

import argparse
import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("results")
    ap.add_argument("-o", "--out", default="bench-cpu.png")
    args = ap.parse_args()
    with open(args.results) as f:
        doc = json.load(f)
    rows = [e for e in doc["summary"] if e["ratio"] is not None]
    roof = doc.get("roofline", [])

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 0.28 * len(rows) + 1.8),
                                   gridspec_kw=dict(width_ratios=[3, 2]))
    labels = ["%s %s t%d" % (e["model"].replace("-Instruct", ""), e["test"], e["threads"]) for e in rows]
    ratios = [e["ratio"] for e in rows]
    colors = ["tab:blue" if e["test"].startswith("pp") else "tab:orange" for e in rows]
    y = range(len(rows))
    ax1.barh(y, ratios, color=colors)
    ax1.axvline(1.0, color="black", linewidth=0.8)
    ax1.axvline(1.2, color="red", linestyle="--", linewidth=0.8, label="1.2x bar")
    ax1.set_yticks(list(y), labels, fontsize=7)
    ax1.invert_yaxis()
    ax1.set_xlabel("lamina t/s / llama.cpp t/s (prefill blue, decode orange)")
    for i, r in enumerate(ratios):
        ax1.text(r + 0.03, i, "%.2f" % r, va="center", fontsize=6)
    ax1.legend(loc="lower right", fontsize=7)

    if roof:
        rl = ["%s t%d" % (r["model"].replace("-Instruct", ""), r["threads"]) for r in roof]
        yy = range(len(roof))
        ax2.barh([i - 0.2 for i in yy], [r["lamina_pct"] for r in roof], height=0.4, label="lamina")
        ax2.barh([i + 0.2 for i in yy], [r["llama_pct"] for r in roof], height=0.4, label="llama.cpp")
        ax2.axvline(85, color="red", linestyle="--", linewidth=0.8, label="85 % bar")
        ax2.set_yticks(list(yy), rl, fontsize=7)
        ax2.invert_yaxis()
        ax2.set_xlim(0, 100)
        ax2.set_xlabel("decode speed, % of the read-bandwidth roofline")
        ax2.legend(loc="lower right", fontsize=7)
    fig.suptitle("CPU, %s, %s (%s CPUs), lamina %s" % (
        doc.get("date", ""), doc["machine"].get("cpu_model", ""), doc["machine"].get("n_cpus", ""),
        (doc.get("lamina_commit") or "?").split()[0]), fontsize=9)
    fig.tight_layout()
    fig.savefig(args.out, dpi=80)


if __name__ == "__main__":
    main()
