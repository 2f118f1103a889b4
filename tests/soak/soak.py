#!/usr/bin/env python3
"""A bounded soak test of `lamina serve`, on loopback only.

Starts its own server (a small K/V pool so that preemption and prefix-cache
eviction happen, a 1 MiB body limit, an API key), computes the reference
answer of every request of a fixed pool alone, then runs CLIENTS concurrent
clients for DURATION seconds, each looping over a random mix of request kinds
(soak_kinds.py): OpenAI chat and legacy completions and Anthropic messages,
streaming or not, through the official SDKs; long shared prefixes; seeded
sampling; clients that disconnect mid-answer; slow clients; malformed JSON;
oversized bodies; wrong API keys.

Pass criteria: every answer is right (pool requests give exactly their
reference text, finish reason and token counts; errors have the right status
in the right API's shape; 503/529 queue-full answers are counted apart);
no request hangs past the client timeout; the server never dies; after the
load, its RSS has not grown by more than max(10 %, 32 MiB) since the
warm-up and its open fds are back to what they were before the load;
/metrics shows no K/V block in use and no 5xx other than queue-full; SIGTERM
then exits 0 within the shutdown grace period.

    .venv/bin/python tests/soak/soak.py --duration 600 --clients 64 [--binary PATH] [--json FILE]
"""

import argparse
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import soak_kinds  # noqa: E402
import soak_pool  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
DEFAULT_BINARY = Path(os.environ.get("LAMINA_BIN", REPO / "build" / "lamina"))
FD_SLACK = 4
MAX_FAILURES_KEPT = 50
SANITIZER_MARKS = ("AddressSanitizer", "LeakSanitizer", "ThreadSanitizer", "runtime error:")


@dataclass
class Config:
    duration: float = 600          # seconds of load
    clients: int = 64
    binary: str = str(DEFAULT_BINARY)
    seed: int = 1
    pool: str = "full"             # "small" for the short soak
    ctx_size: int = 1024
    kv_cache_mib: int = 32         # 91 blocks of 16 tokens with the default model: preemption under load
    max_body: int = 1 << 20        # bytes (--max-body-size)
    max_queue: int = 4096
    shutdown_timeout: int = 30     # seconds (--shutdown-timeout)
    request_timeout: float = 300   # seconds a client waits for any answer (or stream chunk): past it, a hang
    warmup: float | None = None    # seconds before the first RSS/fd sample: min(20 % of duration, 30)
    keep_log: bool = False


class Server:
    def __init__(self, cfg):
        binary = Path(cfg.binary)
        if not binary.exists():
            raise SystemExit(f"{binary} not built (scripts/setup builds it)")
        self.log = tempfile.NamedTemporaryFile(prefix="lamina-soak-", suffix=".log", delete=False)
        env = {k: v for k, v in os.environ.items() if k != "LAMINA_API_KEY"}
        args = [str(binary), "serve", "--port", "0", "--ctx-size", cfg.ctx_size, "--kv-cache-mib", cfg.kv_cache_mib,
                "--max-body-size", cfg.max_body, "--max-queue", cfg.max_queue, "--api-key", soak_kinds.API_KEY,
                "--shutdown-timeout", cfg.shutdown_timeout]
        if "--max-connections" in subprocess.run([str(binary), "serve", "--help"], capture_output=True,
                                                 text=True, timeout=60).stdout:
            # each client holds up to 5 connections (4 SDK clients, 1 raw): stay clear of the limit
            args += ["--max-connections", max(256, 8 * cfg.clients)]
        self.proc = subprocess.Popen(list(map(str, args)), cwd=REPO, env=env, stdout=subprocess.PIPE,
                                     stderr=self.log, text=True)
        line = self._start_line()
        m = re.search(r"at (http://([0-9.]+):(\d+))", line)
        if not m:
            self.proc.kill()
            raise RuntimeError(f"no address in the start line {line!r}:\n{self.stderr()[-3000:]}")
        self.url, self.host, self.port = m.group(1), m.group(2), int(m.group(3))
        self._wait_healthy()

    def _start_line(self):
        got = {}
        t = threading.Thread(target=lambda: got.setdefault("line", self.proc.stdout.readline()), daemon=True)
        t.start()
        t.join(120)
        if not got.get("line"):
            self.proc.kill()
            raise RuntimeError(f"lamina serve did not start:\n{self.stderr()[-3000:]}")
        return got["line"]

    def _wait_healthy(self):
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=5) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"/health never answered 200:\n{self.stderr()[-3000:]}")

    def stderr(self):
        with open(self.log.name, encoding="utf-8", errors="replace") as f:
            return f.read()

    def alive(self):
        return self.proc.poll() is None

    def rss_kib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    def fds(self):
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def metrics(self):
        with urllib.request.urlopen(self.url + "/metrics", timeout=30) as r:
            text = r.read().decode()
        values = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, value = line.rsplit(" ", 1)
                values[name] = float(value)
        return values

    def stop(self, timeout):
        """SIGTERM, then the exit code (None if it had to be killed after TIMEOUT)."""
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                return None
        return self.proc.returncode


class Stats:
    """Outcomes by kind, failures, latencies; shared by the client threads."""

    def __init__(self):
        self.lock = threading.RLock()
        self.by_kind = {}
        self.failures = []        # the first MAX_FAILURES_KEPT, as "kind: message"
        self.n_failures = 0
        self.n_first = 0
        self.tokens = 0
        self.latency = {}

    def record(self, kind, outcome, seconds, tokens=0, message=None):
        with self.lock:
            counts = self.by_kind.setdefault(kind, {"ok": 0, "overloaded": 0, "failed": 0})
            counts[outcome] += 1
            self.tokens += tokens
            self.latency.setdefault(kind, []).append(seconds)
            if message:
                self.fail(f"{kind}: {message}")

    def fail(self, message, first=False):
        """Records a failure; FIRST puts it before the per-request ones (the
        server's death, a leak)."""
        with self.lock:
            self.n_failures += 1
            if first:
                self.failures.insert(self.n_first, message)
                self.n_first += 1
                del self.failures[MAX_FAILURES_KEPT + self.n_first:]
            elif len(self.failures) < MAX_FAILURES_KEPT + self.n_first:
                self.failures.append(message)


class Client(threading.Thread):
    """One soak client: a loop of random request kinds until the deadline."""

    def __init__(self, i, cfg, server, pool, refs, stats, stop):
        super().__init__(name=f"soak-client-{i}", daemon=True)
        self.index, self.n_clients, self.rng = i, cfg.clients, random.Random(cfg.seed * 1000003 + i)
        self.worker = soak_kinds.Worker(server.url, server.host, server.port, pool, refs, cfg.request_timeout,
                                        cfg.max_body)
        self.stats, self.stop = stats, stop
        self.deadline = None      # monotonic time after which no request starts (set before start())
        self.current = None       # (kind, monotonic start) of the request in progress
        self.names = list(soak_kinds.KINDS)
        self.weights = [soak_kinds.KINDS[k][1] for k in self.names]

    def run(self):
        try:
            # client i starts with kinds i, i + N, i + 2N, ... (N clients): every kind runs early
            first = list(range(self.index, len(self.names), self.n_clients))
            while not self.stop.is_set() and time.monotonic() < self.deadline:
                kind = self.names[first.pop(0)] if first else self.rng.choices(self.names, self.weights)[0]
                t0 = time.monotonic()
                self.current = (kind, t0)
                try:
                    outcome, tokens = soak_kinds.KINDS[kind][0](self.worker, self.rng)
                except soak_kinds.Wrong as x:
                    self.stats.record(kind, "failed", time.monotonic() - t0, message=str(x))
                except Exception as x:  # anything unexpected is a failure too, with its type
                    self.stats.record(kind, "failed", time.monotonic() - t0, message=f"{type(x).__name__}: {x}")
                else:
                    self.stats.record(kind, outcome, time.monotonic() - t0, tokens)
                self.current = None
        finally:
            self.worker.close()


def percentile(values, q):
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))] if s else 0.0


def monitor(server, clients, stats, cfg, t_start, samples, stop, done):
    """Until DONE: the server must stay alive and no request may run past
    twice the client timeout; takes the warm RSS/fd sample."""
    warmup = cfg.warmup if cfg.warmup is not None else min(0.2 * cfg.duration, 30)
    flagged = set()
    while not done.wait(0.5):
        if not server.alive():
            stats.fail(f"the server died during the load (exit code {server.proc.returncode})", first=True)
            stop.set()
            return
        now = time.monotonic()
        if "warm" not in samples and now - t_start >= warmup:
            try:
                samples["warm"] = {"rss_kib": server.rss_kib(), "fds": server.fds(), "at_s": round(now - t_start, 1)}
            except OSError:
                continue  # it just died: the next round says so
        for c in clients:
            cur = c.current
            if cur and now - cur[1] > 2 * cfg.request_timeout and (c.name, cur[1]) not in flagged:
                flagged.add((c.name, cur[1]))
                stats.fail(f"{cur[0]}: hang: {c.name}'s request has run {now - cur[1]:.0f} s", first=True)


def wait_drained(server, timeout=60):
    """The metrics once nothing is running or waiting (or after TIMEOUT)."""
    deadline = time.monotonic() + timeout
    while True:
        m = server.metrics()
        idle = m["lamina_requests_running"] == 0 and m["lamina_requests_waiting"] == 0 and \
            m["lamina_requests_in_flight"] == 0
        if idle or time.monotonic() > deadline:
            return m
        time.sleep(0.2)


def settle_fds(server, target, timeout=20):
    """Open fds once back to TARGET (connection threads finish closing), or after TIMEOUT."""
    deadline = time.monotonic() + timeout
    while server.fds() > target and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(1.0)
    return server.fds()


def check_metrics(m, stats):
    """No K/V block held, nothing running, no unexpected status or error."""
    for name in ("lamina_kv_blocks_used", "lamina_requests_running", "lamina_requests_waiting",
                 "lamina_requests_in_flight"):
        if m[name] != 0:
            stats.fail(f"after the load, /metrics shows {name} {m[name]:g} (want 0)", first=True)
    errors = m.get('lamina_sequences_finished_total{reason="error"}', 0)
    if errors:
        stats.fail(f"/metrics counts {errors:g} sequences that ended in an engine error", first=True)
    # 499: a client that left before its answer (the soak's disconnecting kinds)
    allowed = {"200", "400", "401", "413", "499", "503", "529"}
    for key, value in m.items():
        st = re.match(r'lamina_requests_total\{endpoint="([^"]*)",status="(\d+)"\}', key)
        if st and value and st.group(2) not in allowed:
            stats.fail(f"/metrics counts {value:g} answers with status {st.group(2)} on {st.group(1)}", first=True)


def check_coverage(stats, m):
    """The run must have exercised what it claims to."""
    for kind in soak_kinds.KINDS:
        if not stats.by_kind.get(kind, {}).get("ok"):
            stats.fail(f"coverage: no {kind} request completed correctly")
    if not m.get("lamina_preemptions_total"):
        stats.fail("coverage: no sequence was preempted (the K/V pool was never short)")
    if not m.get("lamina_prefix_cache_hit_tokens_total"):
        stats.fail("coverage: the prefix cache was never hit")


def run(cfg):
    """Runs the whole soak; returns the summary (a JSON-able dict)."""
    stats = Stats()
    t_begin = time.monotonic()
    server = Server(cfg)
    summary = {"config": asdict(cfg), "server": server.url}
    samples, metrics_end, exit_code = {}, {}, None
    try:
        pool = soak_pool.build_pool(cfg.pool)
        try:
            refs = soak_pool.compute_references(server.url, soak_kinds.API_KEY, pool, cfg.request_timeout,
                                                repeat=cfg.pool == "full")
        except soak_pool.ReferenceMismatch as x:
            stats.fail(f"references: {x}", first=True)
            refs = None
        except Exception as x:  # the server died or hung before the load
            stats.fail(f"references: {type(x).__name__}: {x}", first=True)
            refs = None
        summary["references_s"] = round(time.monotonic() - t_begin, 1)
        if refs is not None:
            samples["idle"] = {"rss_kib": server.rss_kib(), "fds": settle_fds(server, 0, timeout=1)}
            try:
                metrics_end = load(cfg, server, pool, refs, stats, samples, summary)
            except OSError as x:  # /proc or /metrics unreadable: the server is gone
                stats.fail(f"after the load: {type(x).__name__}: {x}", first=True)
    finally:
        if server.alive():
            exit_code = server.stop(cfg.shutdown_timeout + 30)
            if exit_code != 0:
                stats.fail(f"after SIGTERM the server exited with {exit_code} "
                           f"(None: still running {cfg.shutdown_timeout + 30} s later, killed)", first=True)
        else:
            exit_code = server.proc.returncode
            stats.fail(f"the server was dead at the end (exit code {exit_code})", first=True)
        log = server.stderr()
        for mark in SANITIZER_MARKS:
            if mark in log:
                stats.fail(f"the server log has a sanitizer report ({mark!r})", first=True)
        if stats.n_failures == 0 and not cfg.keep_log:
            os.unlink(server.log.name)
        else:
            summary["server_log"] = server.log.name
    summary.update(finish(stats, samples, metrics_end, exit_code, time.monotonic() - t_begin))
    return summary


def load(cfg, server, pool, refs, stats, samples, summary):
    """The load phase and the checks right after it; returns the final metrics."""
    stop, done = threading.Event(), threading.Event()
    clients = [Client(i, cfg, server, pool, refs, stats, stop) for i in range(cfg.clients)]
    t_start = time.monotonic()
    for c in clients:
        c.deadline = t_start + cfg.duration
        c.start()
    watch = threading.Thread(target=monitor, args=(server, clients, stats, cfg, t_start, samples, stop, done),
                             daemon=True)
    watch.start()
    join_deadline = t_start + cfg.duration + 2 * cfg.request_timeout + 30
    for c in clients:
        c.join(max(0.0, join_deadline - time.monotonic()))
    done.set()
    watch.join()
    stuck = [c.name for c in clients if c.is_alive()]
    if stuck:
        stats.fail(f"hang: {len(stuck)} clients still waiting for an answer at the end: {stuck[:8]}", first=True)
    summary["load_s"] = round(time.monotonic() - t_start, 1)
    if not server.alive():
        return {}
    m = wait_drained(server)
    samples["end"] = {"rss_kib": server.rss_kib(), "fds": settle_fds(server, samples["idle"]["fds"])}
    m = server.metrics()
    check_metrics(m, stats)
    if "warm" not in samples:
        stats.fail("the load ended before the warm-up sample", first=True)
    else:
        warm, end = samples["warm"]["rss_kib"], samples["end"]["rss_kib"]
        if end - warm > max(0.10 * warm, 32 * 1024):
            stats.fail(f"RSS grew from {warm} KiB (after the warm-up) to {end} KiB after the load", first=True)
    if samples["end"]["fds"] > samples["idle"]["fds"] + FD_SLACK:
        stats.fail(f"open fds: {samples['idle']['fds']} before the load, {samples['end']['fds']} after it", first=True)
    check_coverage(stats, m)
    return m


def finish(stats, samples, m, exit_code, seconds):
    by_kind = dict(sorted(stats.by_kind.items()))
    latency = {k: {"p50_s": round(percentile(v, 0.5), 3), "p99_s": round(percentile(v, 0.99), 3),
                   "max_s": round(max(v), 3)} for k, v in sorted(stats.latency.items())}
    keep = ("lamina_kv_blocks_used", "lamina_kv_blocks_cached", "lamina_kv_blocks_total", "lamina_preemptions_total",
            "lamina_prefix_cache_hit_tokens_total", "lamina_generation_tokens_total", "lamina_prompt_tokens_total",
            "lamina_engine_steps_total")
    return {
        "passed": stats.n_failures == 0,
        "n_failures": stats.n_failures,
        "failures": stats.failures,
        "total_requests": sum(sum(c.values()) for c in by_kind.values()),
        "requests": by_kind,
        "latency": latency,
        "tokens_generated_checked": stats.tokens,
        "samples": samples,
        "metrics_end": {k: m[k] for k in keep if k in m} |
        {k: v for k, v in m.items() if k.startswith("lamina_sequences_finished_total")},
        "exit_code": exit_code,
        "duration_s": round(seconds, 1),
    }


def print_summary(s, out=sys.stdout):
    p = lambda *a: print(*a, file=out)  # noqa: E731
    cfg = s["config"]
    p(f"lamina soak: {cfg['clients']} clients, {cfg['duration']:g} s of load ({s.get('load_s', 0)} s with the "
      f"drain), {s['duration_s']} s in all; references took {s.get('references_s', '?')} s")
    p(f"{'kind':<16}{'ok':>8}{'overload':>10}{'failed':>8}{'p50 s':>9}{'p99 s':>9}{'max s':>9}")
    for kind, c in s["requests"].items():
        lat = s["latency"].get(kind, {})
        p(f"{kind:<16}{c['ok']:>8}{c['overloaded']:>10}{c['failed']:>8}{lat.get('p50_s', 0):>9.2f}"
          f"{lat.get('p99_s', 0):>9.2f}{lat.get('max_s', 0):>9.2f}")
    p(f"total requests {s['total_requests']}, tokens generated (checked) {s['tokens_generated_checked']}")
    for name in ("idle", "warm", "end"):
        if name in s["samples"]:
            x = s["samples"][name]
            p(f"{name:>5}: RSS {x['rss_kib'] / 1024:.1f} MiB, {x['fds']} open fds")
    for k, v in s["metrics_end"].items():
        p(f"  {k} {v:g}")
    p(f"exit code after SIGTERM: {s['exit_code']}")
    if s.get("server_log"):
        p(f"server log: {s['server_log']}")
    p(f"{'PASSED' if s['passed'] else 'FAILED'}: {s['n_failures']} failures")
    for f in s["failures"]:
        p(f"  - {f}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=600, help="seconds of load (default 600)")
    ap.add_argument("--clients", type=int, default=64, help="concurrent clients (default 64)")
    ap.add_argument("--binary", default=str(DEFAULT_BINARY), help="lamina binary (default build/lamina or $LAMINA_BIN)")
    ap.add_argument("--json", help="also write the summary to this file")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--pool", choices=["full", "small"], default="full")
    ap.add_argument("--kv-cache-mib", type=int, default=32)
    ap.add_argument("--request-timeout", type=float, default=300, help="client timeout in seconds (a hang)")
    ap.add_argument("--keep-log", action="store_true", help="keep the server log even when the soak passes")
    a = ap.parse_args(argv)
    cfg = Config(duration=a.duration, clients=a.clients, binary=a.binary, seed=a.seed, pool=a.pool,
                 kv_cache_mib=a.kv_cache_mib, request_timeout=a.request_timeout, keep_log=a.keep_log)
    summary = run(cfg)
    print_summary(summary)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(summary, f, indent=2)
    return 0 if summary["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
