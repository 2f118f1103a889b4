"""Summarize one run of bench/run_bench.sh: raw per-run files -> JSON + markdown table.

Input (--raw-dir), one file per (side, round, model, threads):
  llama-<round>-<model>-t<T>.json    llama-bench -o json: a list of tests, each with
                                     n_prompt, n_gen, n_threads, samples_ts (t/s per rep)
  lamina-<round>-<model>-t<T>.jsonl  lamina perf: one JSON object per test with
                                     test ("pp128"), threads, tokens_per_s (median of reps)
  quiet.tsv                          one line per run: side, round, model, threads,
                                     idle % before it, seconds waited for that,
                                     CPU cores other processes used during it
A side's number for one round is the median of its reps (llama-bench's avg_ts is
kept in the raw JSON too); the table shows the median over rounds and the
spread (min-max over rounds) in a second table.
"""

import argparse
import json
import os
import re
import statistics
import sys

RUN_FILE = re.compile(r"^(llama|lamina)-(\d+)-(.+)-t(\d+)\.(json|jsonl)$")


def llama_tests(path):
    """(test name, t/s median of reps, avg_ts) for each test in one llama-bench run."""
    with open(path) as f:
        runs = json.load(f)
    for r in runs:
        if r["n_prompt"] and not r["n_gen"]:
            name = "pp%d" % r["n_prompt"]
        elif r["n_gen"] and not r["n_prompt"]:
            name = "tg%d" % r["n_gen"]
        else:
            name = "pp%d+tg%d" % (r["n_prompt"], r["n_gen"])
        yield name, statistics.median(r["samples_ts"]), r["avg_ts"], r


def lamina_tests(path):
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line.startswith("{"):
                r = json.loads(line)
                yield r["test"], r["tokens_per_s"], None, r


def load_runs(raw_dir):
    """rows: dicts with side, round, model, threads, test, tps, avg_tps, raw."""
    rows = []
    quiet = load_quiet(raw_dir)
    for fname in sorted(os.listdir(raw_dir)):
        m = RUN_FILE.match(fname)
        if not m:
            continue
        side, rnd, model, threads = m.group(1), int(m.group(2)), m.group(3), int(m.group(4))
        path = os.path.join(raw_dir, fname)
        reader = llama_tests if side == "llama" else lamina_tests
        try:
            tests = list(reader(path))
        except (OSError, ValueError, KeyError) as e:
            sys.exit("summarize.py: cannot read %s: %s (see %s.log)" % (path, e, path))
        q = quiet.get((side, rnd, model, threads), {})
        for test, tps, avg, raw in tests:
            rows.append(dict(side=side, round=rnd, model=model, threads=threads, test=test,
                             tps=tps, avg_tps=avg, raw=raw, **q))
    return rows


def load_quiet(raw_dir):
    """(side, round, model, threads) -> dict(idle_before_pct, waited_s, others_cores)"""
    path = os.path.join(raw_dir, "quiet.tsv")
    quiet = {}
    if not os.path.exists(path):
        return quiet
    with open(path) as f:
        for line in f:
            side, rnd, model, threads, idle, waited, others = line.rstrip("\n").split("\t")
            quiet[(side, int(rnd), model, int(threads))] = dict(
                idle_before_pct=int(idle), waited_s=int(waited), others_cores=float(others))
    return quiet


BW_FILE = re.compile(r"^bw-(\d+)-membw-t(\d+)\.jsonl$")


def load_bandwidth(raw_dir):
    """threads -> median over rounds of the best read bandwidth (bytes/s)"""
    by_threads = {}
    for fname in os.listdir(raw_dir):
        m = BW_FILE.match(fname)
        if not m:
            continue
        with open(os.path.join(raw_dir, fname)) as f:
            for line in f:
                if line.startswith("{"):
                    by_threads.setdefault(int(m.group(2)), []).append(json.loads(line)["bytes_per_s"])
    return {t: statistics.median(v) for t, v in by_threads.items()}


def roofline(summary, rows, bandwidth):
    """decode rows with the bandwidth ceiling: bandwidth / weight bytes per token"""
    wbytes = {}
    for r in rows:
        if r["side"] == "lamina" and r["raw"] and "weight_bytes_per_token" in r["raw"]:
            wbytes[r["model"]] = r["raw"]["weight_bytes_per_token"]
    out = []
    for e in summary:
        if not e["test"].startswith("tg") or e["model"] not in wbytes or e["threads"] not in bandwidth:
            continue
        ceiling = bandwidth[e["threads"]] / wbytes[e["model"]]
        pct = lambda side: 100.0 * e[side]["median"] / ceiling if e[side]["median"] else None
        out.append(dict(model=e["model"], test=e["test"], threads=e["threads"], weight_mb=wbytes[e["model"]] / 1e6,
                        bandwidth_gbs=bandwidth[e["threads"]] / 1e9, ceiling_tps=ceiling,
                        llama_pct=pct("llama"), lamina_pct=pct("lamina"), ratio=e["ratio"]))
    return out


def roofline_markdown(roof):
    lines = ["| model | test | threads | MB / token | read GB/s | ceiling t/s | llama.cpp % | lamina % | lamina / llama.cpp |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in roof:
        lines.append("| %s | %s | %d | %.1f | %.2f | %.1f | %s | %s | %s |" % (
            r["model"], r["test"], r["threads"], r["weight_mb"], r["bandwidth_gbs"], r["ceiling_tps"],
            fmt(r["llama_pct"], "%.0f %%"), fmt(r["lamina_pct"], "%.0f %%"), fmt(r["ratio"], "%.2f")))
    return "\n".join(lines)


def test_order(test):
    return (0 if test.startswith("pp") else 1, test)


def summarize(rows):
    keys = sorted({(r["model"], r["test"], r["threads"]) for r in rows},
                  key=lambda k: (k[0], test_order(k[1]), k[2]))
    out = []
    for model, test, threads in keys:
        entry = dict(model=model, test=test, threads=threads)
        for side in ("llama", "lamina"):
            vals = [r["tps"] for r in rows
                    if (r["side"], r["model"], r["test"], r["threads"]) == (side, model, test, threads)]
            others = [r["others_cores"] for r in rows if "others_cores" in r and
                      (r["side"], r["model"], r["test"], r["threads"]) == (side, model, test, threads)]
            entry[side] = dict(median=statistics.median(vals) if vals else None,
                               min=min(vals) if vals else None, max=max(vals) if vals else None,
                               rounds=vals, others_cores_max=max(others) if others else None)
        a, b = entry["llama"]["median"], entry["lamina"]["median"]
        entry["ratio"] = b / a if a and b else None
        out.append(entry)
    return out


def fmt(x, spec="%.1f"):
    return spec % x if x is not None else "-"


def spread(s):
    """max-min over rounds, in percent of the median"""
    if s["median"] is None or len(s["rounds"]) < 2:
        return "-"
    return "%.1f%%" % (100.0 * (s["max"] - s["min"]) / s["median"])


def markdown(summary):
    lines = ["| model | test | threads | llama.cpp t/s | lamina t/s | lamina / llama.cpp |",
             "| --- | --- | ---: | ---: | ---: | ---: |"]
    for e in summary:
        lines.append("| %s | %s | %d | %s | %s | %s |" % (
            e["model"], e["test"], e["threads"], fmt(e["llama"]["median"]), fmt(e["lamina"]["median"]),
            fmt(e["ratio"], "%.2f")))
    lines += ["", "Spread over rounds, (max - min) / median, and the most CPU other processes",
              "took during any of those runs (cores):", "",
              "| model | test | threads | llama.cpp spread | lamina spread | others, llama.cpp runs | others, lamina runs |",
              "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for e in summary:
        lines.append("| %s | %s | %d | %s | %s | %s | %s |" % (
            e["model"], e["test"], e["threads"], spread(e["llama"]), spread(e["lamina"]),
            fmt(e["llama"]["others_cores_max"], "%.2f"), fmt(e["lamina"]["others_cores_max"], "%.2f")))
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--raw-dir", required=True)
    ap.add_argument("--out", required=True)
    for name in ("date", "cpu-model", "n-cpus", "lamina-cpu", "lamina-commit", "llama-cpp-source",
                 "llama-cmd", "lamina-cmd", "load-before", "load-after"):
        ap.add_argument("--" + name, default="")
    ap.add_argument("--rounds", type=int, required=True)
    ap.add_argument("--reps", type=int, required=True)
    args = ap.parse_args()

    rows = load_runs(args.raw_dir)
    if not rows:
        sys.exit("summarize.py: no results in " + args.raw_dir)
    summary = summarize(rows)
    bandwidth = load_bandwidth(args.raw_dir)
    roof = roofline(summary, rows, bandwidth)
    doc = dict(
        date=args.date,
        machine=dict(cpu_model=args.cpu_model, n_cpus=args.n_cpus, lamina_info_cpu=args.lamina_cpu,
                     loadavg_before=args.load_before, loadavg_after=args.load_after),
        lamina_commit=args.lamina_commit,
        llama_cpp_source=args.llama_cpp_source,
        commands=dict(llama_cpp=args.llama_cmd, lamina=args.lamina_cmd),
        rounds=args.rounds, reps=args.reps,
        method="per round: median of reps; table: median over rounds",
        summary=summary,
        read_bandwidth_bytes_per_s=bandwidth,
        roofline=roof,
        runs=rows,
    )
    with open(args.out, "w") as f:
        json.dump(doc, f, indent=1)

    print("machine: %s (%s CPUs); lamina %s" % (args.cpu_model, args.n_cpus, args.lamina_cpu))
    print("load average (1/5/15 min): %s before, %s after" % (args.load_before, args.load_after))
    print("lamina: %s" % args.lamina_commit)
    print("llama.cpp: %s" % args.llama_cpp_source)
    print("llama.cpp command: %s" % args.llama_cmd)
    print("lamina command:    %s" % args.lamina_cmd)
    print("%d rounds x %d reps; per round the median of reps, shown the median over rounds" %
          (args.rounds, args.reps))
    print()
    print(markdown(summary))
    if roof:
        print()
        print("Decode against the memory-bandwidth roofline (read bandwidth: lamina perf --mem-bandwidth, best of 5")
        print("passes over 1 GiB, median over rounds; ceiling = bandwidth / weight bytes one token reads):")
        print()
        print(roofline_markdown(roof))


if __name__ == "__main__":
    main()
