"""`lamina bench` against a real `lamina serve`: the JSON it writes (counts,
token totals, throughput, percentiles recomputed here with numpy from the
per-request times), the prefix-cache hit rate it reads from the server's
usage, the Anthropic API, the progress bar on a terminal, and its errors
(bad flags exit 2; an unreachable server, a refused key or failed requests
exit 1 with a message)."""

import json
import os
import pty
import socket
import subprocess
import sys

import numpy as np
import pytest

from conftest import LAMINA, REPO

SMALL = ["--concurrency", "1,2", "--num-prompts", "4", "--input-len", "32", "--output-len", "8"]


def bench(*args, env=None, timeout=120):
    if not LAMINA.exists():
        pytest.fail(f"{LAMINA} not built (scripts/setup builds it)")
    full_env = dict(os.environ)
    full_env.pop("LAMINA_API_KEY", None)
    full_env.update(env or {})
    return subprocess.run([str(LAMINA), "bench", *map(str, args)], cwd=REPO, env=full_env, capture_output=True,
                          text=True, timeout=timeout)


def run_json(server, tmp_path, *args):
    out = tmp_path / "bench.json"
    r = bench("--url", server.url, "--json", out, *args)
    assert r.returncode == 0, r.stderr
    return json.loads(out.read_text()), r


def check_percentiles(summary, values):
    """summary {n, mean, p50, p90, p99} against numpy on the raw values"""
    assert summary["n"] == len(values)
    assert summary["p50"] <= summary["p90"] <= summary["p99"]
    assert summary["mean"] == pytest.approx(np.mean(values), rel=1e-9, abs=1e-6)
    for p in (50, 90, 99):
        assert summary[f"p{p}"] == pytest.approx(np.percentile(values, p), rel=1e-9, abs=1e-6)


def test_small_run_json(server, tmp_path):
    data, r = run_json(server, tmp_path, *SMALL, "--seed", "101")
    assert r.stderr == ""  # no progress bar when stderr is not a terminal
    assert "out tok/s" in r.stdout and "TTFT" in r.stdout
    cfg = data["config"]
    assert cfg["url"] == server.url and cfg["api"] == "openai" and cfg["endpoint"] == "/v1/completions"
    assert (cfg["num_prompts"], cfg["input_len"], cfg["output_len"], cfg["shared_prefix"]) == (4, 32, 8, 0)
    assert cfg["model"] == "SmolLM2-135M-Instruct.Q4_1"
    assert [lv["concurrency"] for lv in data["levels"]] == [1, 2]
    for lv in data["levels"]:
        reqs = lv["requests"]
        assert (lv["num_requests"], lv["completed"], lv["failed"]) == (4, 4, 0)
        assert len(reqs) == 4 and all(q["ok"] and q["error"] is None for q in reqs)
        # token ids sent as the prompt: the server counts exactly input-len;
        # ignore_eos: every request runs to output-len
        assert all(q["sent_tokens"] == 32 and q["prompt_tokens"] == 32 for q in reqs)
        assert all(q["completion_tokens"] == 8 for q in reqs)
        assert all(1 <= q["chunks"] <= 8 and len(q["itl_ms"]) == q["chunks"] - 1 for q in reqs)
        assert (lv["prompt_tokens"], lv["output_tokens"]) == (4 * 32, 4 * 8)
        assert lv["duration_s"] > 0
        assert lv["output_throughput"] == pytest.approx(lv["output_tokens"] / lv["duration_s"], rel=1e-6)
        assert lv["request_throughput"] == pytest.approx(4 / lv["duration_s"], rel=1e-6)
        assert lv["output_throughput"] > 0 and lv["request_throughput"] > 0
        # the wall time of a level covers its longest request, and at
        # concurrency 1 the requests one after another
        e2e = [q["e2e_ms"] for q in reqs]
        assert lv["duration_s"] * 1e3 >= max(e2e) * 0.999
        if lv["concurrency"] == 1:
            assert lv["duration_s"] * 1e3 >= sum(e2e) * 0.999
        ttft = [q["ttft_ms"] for q in reqs]
        assert all(0 < t <= e for t, e in zip(ttft, e2e))
        check_percentiles(lv["ttft_ms"], ttft)
        check_percentiles(lv["itl_ms"], [g for q in reqs for g in q["itl_ms"]])
        check_percentiles(lv["e2e_ms"], e2e)
        tpot = [(q["e2e_ms"] - q["ttft_ms"]) / (q["completion_tokens"] - 1) for q in reqs]
        check_percentiles(lv["tpot_ms"], tpot)
        cached = sum(q["cached_tokens"] for q in reqs)
        assert lv["cached_tokens"] == cached
        assert lv["prefix_cache_hit_rate"] == pytest.approx(cached / lv["prompt_tokens"])


def test_plot_script(server, tmp_path):
    import matplotlib  # noqa: F401  (installed by scripts/setup)
    data, _ = run_json(server, tmp_path, *SMALL, "--seed", "606")
    png = tmp_path / "bench.png"
    r = subprocess.run([sys.executable, str(REPO / "scripts" / "plot_bench.py"), f"lamina={tmp_path / 'bench.json'}",
                        "-o", str(png)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_shared_prefix_hits_the_cache(server, tmp_path):
    data, _ = run_json(server, tmp_path, "--concurrency", "1", "--num-prompts", "3", "--input-len", "80",
                       "--shared-prefix", "64", "--output-len", "2", "--seed", "202")
    reqs = data["levels"][0]["requests"]
    assert all(q["prompt_tokens"] == 80 for q in reqs)
    # the first prompt computes the prefix, the others reuse its 4 full blocks
    assert reqs[0]["cached_tokens"] == 0
    assert all(q["cached_tokens"] == 64 for q in reqs[1:])
    assert data["levels"][0]["prefix_cache_hit_rate"] == pytest.approx(128 / 240)


def test_levels_do_not_share_prompts(server, tmp_path):
    """each level has its own prompts (and prefix), so a later level is not
    served from what an earlier one left in the cache"""
    data, _ = run_json(server, tmp_path, "--concurrency", "1,1", "--num-prompts", "2", "--input-len", "48",
                       "--shared-prefix", "32", "--output-len", "2", "--seed", "303")
    for lv in data["levels"]:
        assert [q["cached_tokens"] for q in lv["requests"]] == [0, 32]


def test_anthropic_api(server, tmp_path):
    data, _ = run_json(server, tmp_path, "--api", "anthropic", "--concurrency", "2", "--num-prompts", "2",
                       "--input-len", "32", "--output-len", "8", "--seed", "404")
    assert data["config"]["endpoint"] == "/v1/messages"
    lv = data["levels"][0]
    assert lv["completed"] == 2
    for q in lv["requests"]:
        # the text goes through the chat template, which adds its own tokens;
        # without ignore_eos the reply may end before max_tokens
        assert q["prompt_tokens"] > 32
        assert 1 <= q["completion_tokens"] <= 8
        assert q["ttft_ms"] > 0


def test_progress_bar_on_a_terminal(server, tmp_path):
    master, slave = pty.openpty()
    try:
        p = subprocess.run([str(LAMINA), "bench", "--url", server.url, "--concurrency", "1", "--num-prompts", "2",
                            "--input-len", "16", "--output-len", "2", "--seed", "505"], cwd=REPO,
                           stdout=subprocess.PIPE, stderr=slave, timeout=120)
        os.close(slave)
        slave = -1
        bar = b""
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            bar += chunk
    finally:
        if slave >= 0:
            os.close(slave)
        os.close(master)
    assert p.returncode == 0
    assert b"concurrency 1" in bar and b"2/2" in bar and b"\r" in bar


@pytest.mark.parametrize("args, needle", [
    (["--concurrency", "0"], "--concurrency"),
    (["--concurrency", "1,x"], "--concurrency"),
    (["--concurrency", ""], "--concurrency"),
    (["--num-prompts", "-3"], "--num-prompts"),
    (["--input-len", "12abc"], "--input-len"),
    (["--api", "grpc"], "--api"),
    (["--temperature", "5"], "--temperature"),
    (["--shared-prefix", "64", "--input-len", "32"], "--shared-prefix"),
    (["--url", "ftp://x"], "--url"),
    (["--frobnicate", "1"], "--frobnicate"),
    (["--url"], "--url"),
], ids=lambda v: " ".join(v) if isinstance(v, list) else None)
def test_bad_flags_exit_2(args, needle):
    r = bench(*args)
    assert r.returncode == 2, r.stderr
    assert needle in r.stderr and "usage: lamina bench" in r.stderr


def test_help():
    r = bench("--help")
    assert r.returncode == 0 and "usage: lamina bench" in r.stdout


def test_unreachable_server():
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = bench("--url", f"http://127.0.0.1:{port}", *SMALL, timeout=60)
    assert r.returncode == 1
    assert f"cannot use the server at http://127.0.0.1:{port}" in r.stderr
    assert "connect" in r.stderr.lower()
    assert r.stdout == ""


def test_token_text_with_a_nul_byte(tmp_path):
    """A token may decode to a NUL byte, which a server sends as "\\u0000"
    (lamina does, for byte tokens of a model's vocabulary): the bench must
    read such events, not count the request as failed. The replies come from
    a stand-in server here, since no real model is sure to emit that byte
    for the bench's random prompts."""
    import http.server
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def reply(self, body, ctype="application/json"):
            data = body.encode()
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            self.reply(json.dumps({"object": "list", "data": [{"id": "stand-in", "object": "model"}]}))

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])) or b"{}")
            if self.path == "/tokenize":
                self.reply(json.dumps({"tokens": list(range(4 * len(body["content"].split()) + 64))}))
            elif self.path == "/detokenize":
                self.reply(json.dumps({"content": " ".join("w" for _ in body["tokens"])}))
            else:
                events = [{"choices": [{"index": 0, "text": t}]} for t in ("a\u0000", "\u0000", "b")]
                events.append({"choices": [{"index": 0, "text": "", "finish_reason": "length"}],
                               "usage": {"prompt_tokens": 32, "completion_tokens": 3}})
                sse = "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"
                self.reply(sse, "text/event-stream")

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        out = tmp_path / "nul.json"
        r = bench("--url", f"http://127.0.0.1:{httpd.server_address[1]}", "--concurrency", "1", "--num-prompts",
                  "2", "--input-len", "16", "--output-len", "3", "--json", out, timeout=60)
        assert r.returncode == 0, r.stderr
        lv = json.loads(out.read_text())["levels"][0]
        assert (lv["completed"], lv["failed"]) == (2, 0)
    finally:
        httpd.shutdown()


def test_api_key(fresh_server, tmp_path):
    s = fresh_server("--api-key", "sesame")
    r = bench("--url", s.url, *SMALL)
    assert r.returncode == 1 and "HTTP 401" in r.stderr
    out = tmp_path / "k.json"
    r = bench("--url", s.url, "--concurrency", "1", "--num-prompts", "1", "--input-len", "16", "--output-len", "2",
              "--json", out, env={"LAMINA_API_KEY": "sesame"})
    assert r.returncode == 0, r.stderr
    assert json.loads(out.read_text())["levels"][0]["completed"] == 1


def test_failed_requests_exit_1(server, tmp_path):
    """a request the server refuses (prompt + max_tokens beyond its context)
    is a failed request: counted, its message kept, exit code 1"""
    out = tmp_path / "f.json"
    r = bench("--url", server.url, "--concurrency", "2", "--num-prompts", "2", "--input-len", "16", "--output-len",
              "1000000", "--json", out)
    assert r.returncode == 1
    assert "2 of 2 requests failed" in r.stderr and "HTTP 400" in r.stderr
    lv = json.loads(out.read_text())["levels"][0]
    assert (lv["completed"], lv["failed"]) == (0, 2)
    assert all(not q["ok"] and "max_tokens" in q["error"] for q in lv["requests"])
