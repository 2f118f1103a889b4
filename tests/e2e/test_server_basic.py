"""The server's plain endpoints and flags: start line, /health, /v1/models,
unknown routes and methods, CORS, /metrics (Prometheus text), /tokenize and
/detokenize (checked against llama.cpp's tokenizer), --served-model-name,
--strict-model, --log-format json."""

import json
import re

import openai
import pytest

from conftest import request


def test_start_line(server):
    line = server.start_line
    assert server.url in line and "SmolLM2-135M-Instruct.Q4_1" in line
    assert "curl " + server.url + "/v1/chat/completions" in line


def test_health(server):
    r = request(server, "GET", "/health")
    assert r.status_code == 200 and r.json() == {"status": "ok"}


def test_models(server):
    r = request(server, "GET", "/v1/models")
    assert r.status_code == 200
    body = r.json()
    assert body["object"] == "list" and len(body["data"]) == 1
    m = body["data"][0]
    assert m["id"] == "SmolLM2-135M-Instruct.Q4_1" and m["object"] == "model" and m["owned_by"] == "lamina"
    assert isinstance(m["created"], int)
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="x", max_retries=0)
    assert [x.id for x in client.models.list()] == [m["id"]]
    assert client.models.retrieve(m["id"]).id == m["id"]
    assert client.models.retrieve("gpt-4o").id == "gpt-4o"  # any name is accepted (echoed)


def test_unknown_route_and_method(server):
    r = request(server, "GET", "/v1/nothing")
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "unknown_url" and "/v1/nothing" in r.json()["error"]["message"]
    r = request(server, "GET", "/v1/chat/completions")
    assert r.status_code == 405 and "POST" in r.headers["allow"]
    r = request(server, "DELETE", "/health")
    assert r.status_code == 405
    r = request(server, "GET", "/v1/models/a/b")
    assert r.status_code == 404


def test_no_cors_headers_by_default(server):
    r = request(server, "GET", "/health", headers={"Origin": "http://example.com"})
    assert "access-control-allow-origin" not in r.headers


def test_cors(fresh_server):
    s = fresh_server("--cors-origin", "http://app.example")
    r = request(s, "OPTIONS", "/v1/chat/completions",
                headers={"Origin": "http://app.example", "Access-Control-Request-Method": "POST"})
    assert r.status_code == 204
    assert r.headers["access-control-allow-origin"] == "http://app.example"
    assert "POST" in r.headers["access-control-allow-methods"]
    assert "authorization" in r.headers["access-control-allow-headers"].lower()
    r = request(s, "GET", "/v1/models")
    assert r.headers["access-control-allow-origin"] == "http://app.example"


def parse_metrics(text):
    values = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_]+="[^"]*",?)*\})? (\S+)$', line)
        assert m, f"not a Prometheus sample line: {line!r}"
        values[m.group(1) + (m.group(2) or "")] = float(m.group(3))
    return values


def metrics(server):
    r = request(server, "GET", "/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    return parse_metrics(r.text)


def test_metrics(server):
    before = metrics(server)
    r = request(server, "POST", "/v1/chat/completions",
                {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 3, "temperature": 0})
    assert r.status_code == 200
    request(server, "POST", "/v1/chat/completions", b"{")
    after = metrics(server)
    key = 'lamina_requests_total{endpoint="/v1/chat/completions",status="200"}'
    assert after[key] == before.get(key, 0) + 1
    key400 = 'lamina_requests_total{endpoint="/v1/chat/completions",status="400"}'
    assert after[key400] == before.get(key400, 0) + 1
    usage = r.json()["usage"]
    assert after["lamina_prompt_tokens_total"] - before["lamina_prompt_tokens_total"] == usage["prompt_tokens"]
    assert after["lamina_generation_tokens_total"] - before["lamina_generation_tokens_total"] == \
        usage["completion_tokens"]
    for name in ("lamina_requests_waiting", "lamina_requests_running", "lamina_kv_blocks_used",
                 "lamina_kv_blocks_free", "lamina_kv_blocks_total", "lamina_kv_blocks_cached",
                 "lamina_prefix_cache_hit_tokens_total", "lamina_requests_in_flight"):
        assert name in after, name
    assert after["lamina_kv_blocks_used"] + after["lamina_kv_blocks_free"] == after["lamina_kv_blocks_total"]
    for hist in ("lamina_time_to_first_token_seconds", "lamina_inter_token_latency_seconds"):
        buckets = sorted(((float(k.split('le="')[1].rstrip('"}')) if "+Inf" not in k else float("inf")), v)
                         for k, v in after.items() if k.startswith(hist + "_bucket"))
        counts = [v for _, v in buckets]
        assert counts == sorted(counts) and counts[-1] == after[hist + "_count"]
    assert after["lamina_time_to_first_token_seconds_count"] >= before.get(
        "lamina_time_to_first_token_seconds_count", 0) + 1
    assert after["lamina_inter_token_latency_seconds_count"] >= before.get(
        "lamina_inter_token_latency_seconds_count", 0) + 2


TEXTS = ["Hello world", "  leading spaces and\ttabs\n\nnewlines", "ünïcødé ✓ 日本語 🚀",
         "<|im_start|>user\nHi<|im_end|>", "", "1234567890 3.14159"]


@pytest.mark.parametrize("text", TEXTS)
def test_tokenize_matches_llama_cpp(server, reference, text):
    r = request(server, "POST", "/tokenize", {"content": text})
    assert r.status_code == 200
    assert r.json()["tokens"] == reference.tokenize(text, add_bos=False, special=True)
    r = request(server, "POST", "/tokenize", {"content": text, "parse_special": False})
    assert r.json()["tokens"] == reference.tokenize(text, add_bos=False, special=False)
    r = request(server, "POST", "/tokenize", {"content": text, "with_pieces": True})
    pieces = r.json()["tokens"]
    joined = b"".join(p["piece"].encode() if isinstance(p["piece"], str) else bytes(p["piece"]) for p in pieces)
    assert joined == text.encode()
    ids = [p["id"] for p in pieces]
    r = request(server, "POST", "/detokenize", {"tokens": ids})
    assert r.status_code == 200 and r.json()["content"] == text


def test_tokenize_add_special(server, reference):
    r = request(server, "POST", "/tokenize", {"content": "Hi", "add_special": True})
    assert r.json()["tokens"] == reference.tokenize("Hi", add_bos=True)


@pytest.mark.parametrize("path,body", [
    ("/tokenize", {}), ("/tokenize", {"content": 5}), ("/tokenize", {"content": "x", "with_pieces": "y"}),
    ("/detokenize", {}), ("/detokenize", {"tokens": [1, -1]}), ("/detokenize", {"tokens": [10 ** 9]}),
    ("/detokenize", {"tokens": ["a"]}),
])
def test_tokenize_errors(server, path, body):
    r = request(server, "POST", path, body)
    assert r.status_code == 400 and r.json()["error"]["message"]


def test_served_model_name_and_strict(fresh_server):
    s = fresh_server("--served-model-name", "smol", "--strict-model")
    assert request(s, "GET", "/v1/models").json()["data"][0]["id"] == "smol"
    client = openai.OpenAI(base_url=s.url + "/v1", api_key="x", max_retries=0)
    r = client.chat.completions.create(model="smol", messages=[{"role": "user", "content": "Hi"}], max_tokens=2)
    assert r.model == "smol"
    with pytest.raises(openai.NotFoundError) as e:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "Hi"}], max_tokens=2)
    assert e.value.body["code"] == "model_not_found" and e.value.body["param"] == "model"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gpt-4o")
    r = request(s, "POST", "/v1/messages", {"model": "claude", "max_tokens": 2,
                                            "messages": [{"role": "user", "content": "Hi"}]})
    assert r.status_code == 404 and r.json()["error"]["type"] == "not_found_error"


def test_json_log_format(fresh_server):
    s = fresh_server("--log-format", "json")
    request(s, "GET", "/health")
    request(s, "POST", "/v1/completions", {"prompt": "Hi", "max_tokens": 2})
    s.stop()
    lines = [json.loads(line) for line in s.stderr().splitlines() if line.startswith("{")]
    reqs = [x for x in lines if "path" in x][-2:]  # after the fixture's /health polls
    assert [(x["method"], x["path"], x["status"]) for x in reqs] == [("GET", "/health", 200),
                                                                     ("POST", "/v1/completions", 200)]
    assert reqs[1]["completion_tokens"] == 2 and reqs[1]["duration_ms"] > 0
    assert any(x.get("msg") == "stopped" for x in lines)
