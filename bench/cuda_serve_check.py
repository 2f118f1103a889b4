#!/usr/bin/env python3
"""Greedy chat completions from two lamina servers (a CUDA-backed one and a
CPU one on the same model) compared token by token, standard library only
(the GPU machine has no openai package).

Each prompt is sent to both servers at once (all prompts concurrently, so the
CUDA server batches them) with temperature 0 and the top-2 logprobs of every
token (on the GPU: from its 64 best candidates of each row and the row's
log-normalizer). The two replies must be identical, except that they may part at a
near tie: where the CPU's own top-2 logprob margin is below --tol (twice the
model's fidelity tolerance: either side may sit that far from llama.cpp).
After such a parting the rest is not compared (the contexts differ).

Then the GPU server's own ways of drawing (its argmax, its 64 best
candidates with logit bias and penalties applied on the GPU, a fetched row
when those cannot decide) against a second CUDA server that draws every
token on the host from whole logits rows (LAMINA_CUDA_SAMPLE_ROWS=1), for
greedy, seeded, penalized, biased, top-p-only and min-p-only requests.

    cuda_serve_check.py --gpu http://127.0.0.1:18080 --gpu-rows http://127.0.0.1:18082 \
        --cpu http://127.0.0.1:18081 --tol 0.236
"""
import argparse
import concurrent.futures as cf
import json
import sys
import urllib.request

PROMPTS = [
    "Once upon a time", "The capital of France is", "def fibonacci(n):", "Write a haiku about the sea.",
    "List three prime numbers.", "Translate 'good morning' to Spanish.", "What is 17 times 23?",
    "Explain gravity to a child.", "A recipe for pancakes:", "The quick brown fox", "Why is the sky blue?",
    "Name a famous painter.", "SELECT * FROM", "Dear diary, today", "The meaning of life is",
    "In 1969, astronauts",
]


def ask(base, prompt, max_tokens, logprobs=True, sampling=None):
    req = {"model": "m", "messages": [{"role": "user", "content": prompt}], "max_tokens": max_tokens,
           "temperature": 0}
    req.update(sampling or {})
    if logprobs:
        req.update(logprobs=True, top_logprobs=2)
    req = urllib.request.Request(base + "/v1/chat/completions", json.dumps(req).encode(),
                                 {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=300) as r:
        choice = json.load(r)["choices"][0]
    return (choice["logprobs"]["content"], choice["message"]["content"]) if logprobs else choice["message"]["content"]


def lp_diff(x, y):
    """the largest logprob difference of two equal token sequences: each
    chosen token's, and each top alternative's that both lists hold (a near
    tie may order the alternatives differently)"""
    d = 0.0
    for ex, ey in zip(x, y):
        d = max(d, abs(ex["logprob"] - ey["logprob"]))
        ty = {tuple(t["bytes"]): t["logprob"] for t in ey["top_logprobs"]}
        for tx in ex["top_logprobs"]:
            if tuple(tx["bytes"]) in ty:
                d = max(d, abs(tx["logprob"] - ty[tuple(tx["bytes"])]))
    return d


# prompts neither server saw in the concurrent run: both compute them alone,
# so the two servers' prefix caches hold the same bits for them
SOLO_PROMPTS = ["A short poem about rain:", "The three laws of motion are", "import numpy as np\n",
                "My favourite season is"]


def same_paths(a, sampling, what, label):
    """Each solo prompt asked of the GPU server that draws from whole rows
    on the host and of the GPU server's own paths, with logprobs (with edits
    those take a fetched raw row) and without (the GPU's edits and picks),
    the same requests in the same order on both servers (so their prefix
    caches hold the same blocks); the texts must be equal and the logprobs
    within 1e-3 (the log-normalizer's sum runs in another order). Returns
    how many prompts differ."""
    bad = 0
    worst = 0.0
    for p in SOLO_PROMPTS:
        rows_lp, rows = ask(a.gpu_rows, p, a.max_tokens, sampling=sampling)
        top_lp, top = ask(a.gpu, p, a.max_tokens, sampling=sampling)
        rows_picked = ask(a.gpu_rows, p, a.max_tokens, logprobs=False, sampling=sampling)
        picked = ask(a.gpu, p, a.max_tokens, logprobs=False, sampling=sampling)
        d = lp_diff(rows_lp, top_lp) if top == rows else float("inf")
        worst = max(worst, d)
        if picked != rows_picked or top != rows or d > 1e-3:
            bad += 1
            print(f"DIFFER ({label} vs host rows): {p!r}: {top!r} / {picked!r} vs {rows!r} / {rows_picked!r} "
                  f"(logprobs {d:.2e})")
    print(f"serve check: {what} equal to the host rows' for {len(SOLO_PROMPTS) - bad}/{len(SOLO_PROMPTS)} prompts, "
          f"logprobs within {worst:.1e}")
    return bad


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gpu", required=True)
    ap.add_argument("--gpu-rows", required=True)
    ap.add_argument("--cpu", required=True)
    ap.add_argument("--tol", type=float, required=True)
    ap.add_argument("--max-tokens", type=int, default=48)
    a = ap.parse_args()
    with cf.ThreadPoolExecutor(2 * len(PROMPTS)) as ex:
        futs = [(p, ex.submit(ask, a.gpu, p, a.max_tokens), ex.submit(ask, a.cpu, p, a.max_tokens)) for p in PROMPTS]
        results = [(p, g.result()[0], c.result()[0]) for p, g, c in futs]
    identical = tie = bad = 0
    for p, g, c in results:
        gt = [tuple(e["bytes"]) for e in g]
        ct = [tuple(e["bytes"]) for e in c]
        if gt == ct:
            identical += 1
            continue
        i = next((k for k in range(min(len(gt), len(ct))) if gt[k] != ct[k]), min(len(gt), len(ct)))
        top = c[i]["top_logprobs"] if i < len(c) else []
        margin = top[0]["logprob"] - top[1]["logprob"] if len(top) >= 2 else float("inf")
        if margin < a.tol:
            tie += 1
            print(f"parted at a near tie: {p!r} token {i} (CPU margin {margin:.4f} < {a.tol})")
        else:
            bad += 1
            print(f"DIFFER: {p!r} token {i}: gpu {gt[i] if i < len(gt) else None} cpu {ct[i] if i < len(ct) else None}"
                  f" (CPU margin {margin:.4f} >= {a.tol})")
    # where the texts are identical, the logprobs (the GPU's from its 64 best
    # candidates and its log-normalizer, the CPU's from whole rows) within tol
    worst = max((lp_diff(g, c) for p, g, c in results if [e["bytes"] for e in g] == [e["bytes"] for e in c]),
                default=0.0)
    if worst > a.tol:
        bad += 1
        print(f"DIFFER: logprobs {worst:.4f} apart (> {a.tol})")
    print(f"serve check: {identical}/{len(results)} identical, {tie} parted at a near tie, {bad} differ; "
          f"logprobs of the identical ones within {worst:.4f}")
    # one request at a time (so each runs the same kernels every time): the
    # GPU's argmax or its 64 best candidates (after its edits) must give the
    # text (and the logprobs) of the whole logits rows drawn on the host
    bias = {"logit_bias": {"13": 2.5, "220": -1.5, "11": -100}}
    cases = [
        (None, "GPU-picked greedy text", "GPU argmax / top-64"),
        ({"temperature": 0.9, "top_k": 40, "top_p": 0.95, "seed": 1234}, "seeded sampling from the GPU's top 64",
         "GPU top-64, seeded sampling"),
        ({"frequency_penalty": 0.8, "presence_penalty": 0.5, **bias}, "greedy with penalties and a logit bias",
         "GPU edits + argmax"),
        ({"temperature": 1.0, "top_k": 20, "frequency_penalty": 0.4, "repetition_penalty": 1.2, "seed": 7, **bias},
         "seeded top-k with penalties and a bias", "GPU edits + top-64"),
        ({"temperature": 0.8, "top_k": 0, "top_p": 0.9, "min_p": 0, "seed": 99}, "seeded top-p alone",
         "GPU top-64 + log-normalizer"),
        ({"temperature": 1.1, "top_k": 0, "top_p": 1.0, "min_p": 0.1, "presence_penalty": 0.6, "seed": 5},
         "seeded min-p alone with a penalty", "GPU edits + top-64"),
    ]
    for sampling, what, label in cases:
        bad += same_paths(a, sampling, what, label)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
