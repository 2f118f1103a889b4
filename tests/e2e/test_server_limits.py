"""Authentication, body size limit, queue full, and malformed input: each
answered with the right status in the API's own error shape, and no input
ever takes the server down."""

import json
import os
import random
import socket
import threading
import time

import anthropic
import openai
import pytest

from conftest import request
from test_server_basic import metrics

CHAT = {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2}
MSG = {"model": "m", "max_tokens": 2, "messages": [{"role": "user", "content": "Hi"}]}


def test_api_key(fresh_server):
    s = fresh_server("--api-key", "s3cret")
    good = openai.OpenAI(base_url=s.url + "/v1", api_key="s3cret", max_retries=0)
    assert good.chat.completions.create(model="m", **CHAT).choices
    for key in ("wrong", "s3cre", "s3cret2", ""):
        bad = openai.OpenAI(base_url=s.url + "/v1", api_key=key or "x", max_retries=0)
        with pytest.raises(openai.AuthenticationError) as e:
            bad.chat.completions.create(model="m", **CHAT)
        assert e.value.status_code == 401 and e.value.body["code"] == "invalid_api_key"
    r = request(s, "POST", "/v1/chat/completions", CHAT)
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    for path in ("/v1/models", "/tokenize"):
        assert request(s, "GET" if "models" in path else "POST", path, None if "models" in path else
                       {"content": "x"}).status_code == 401
    assert request(s, "GET", "/health").status_code == 200  # probes need no key
    assert request(s, "GET", "/metrics").status_code == 200
    ant = anthropic.Anthropic(base_url=s.url, api_key="s3cret", max_retries=0)
    assert ant.messages.create(**MSG).content
    with pytest.raises(anthropic.AuthenticationError) as e:
        anthropic.Anthropic(base_url=s.url, api_key="nope", max_retries=0).messages.create(**MSG)
    assert e.value.body["error"]["type"] == "authentication_error"
    r = request(s, "POST", "/v1/messages", MSG, headers={"x-api-key": "s3cret", "anthropic-version": "2023-06-01"})
    assert r.status_code == 200


def test_api_key_from_environment(fresh_server):
    s = fresh_server(env={"LAMINA_API_KEY": "envkey"})
    assert request(s, "POST", "/v1/chat/completions", CHAT).status_code == 401
    r = request(s, "POST", "/v1/chat/completions", CHAT, headers={"Authorization": "Bearer envkey"})
    assert r.status_code == 200


def test_body_too_large(fresh_server):
    s = fresh_server("--max-body-size", "1K")
    big = dict(CHAT, messages=[{"role": "user", "content": "x" * 4096}])
    r = request(s, "POST", "/v1/chat/completions", big)
    assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"
    r = request(s, "POST", "/v1/messages", dict(MSG, messages=[{"role": "user", "content": "x" * 4096}]))
    assert r.status_code == 413 and r.json()["error"]["type"] == "request_too_large"
    assert request(s, "POST", "/v1/chat/completions", CHAT).status_code == 200


def test_default_body_limit_is_8_mib(server):
    r = request(server, "POST", "/tokenize", {"content": "a" * (8 << 20)})
    assert r.status_code == 413
    assert request(server, "GET", "/health").status_code == 200


def test_chunked_body_over_the_limit(fresh_server):
    s = fresh_server("--max-body-size", "1K")
    host, port = s.hostport()
    with socket.create_connection((host, port), timeout=30) as sock:
        chunk = b"x" * 1000
        head = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
        sock.sendall(head + b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(4)) + b"0\r\n\r\n")
        reply = b""
        while data := sock.recv(65536):
            reply += data
    assert reply.startswith(b"HTTP/1.1 413")


def wait_for(server, pred, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        m = metrics(server)
        if pred(m):
            return m
        time.sleep(0.05)
    raise AssertionError(f"metrics never satisfied the condition: {m}")


def test_queue_full(fresh_server):
    s = fresh_server("--max-num-seqs", "1", "--max-queue", "1")
    long = {"messages": [{"role": "user", "content": "Tell me a long story."}], "max_tokens": 3000,
            "ignore_eos": True, "temperature": 0}
    results = {}

    def run(name, body):
        results[name] = request(s, "POST", "/v1/chat/completions", body, timeout=600)

    a = threading.Thread(target=run, args=("a", long), daemon=True)
    a.start()
    wait_for(s, lambda m: m["lamina_requests_running"] == 1)
    b = threading.Thread(target=run, args=("b", dict(long, max_tokens=2)), daemon=True)
    b.start()
    wait_for(s, lambda m: m["lamina_requests_waiting"] == 1)
    r = request(s, "POST", "/v1/chat/completions", CHAT)
    assert r.status_code == 503 and r.json()["error"]["type"] == "server_error"
    assert r.json()["error"]["code"] == "queue_full"
    r = request(s, "POST", "/v1/messages", MSG)
    assert r.status_code == 529 and r.json()["error"]["type"] == "overloaded_error"
    with pytest.raises(openai.APIStatusError) as e:
        openai.OpenAI(base_url=s.url + "/v1", api_key="x", max_retries=0).chat.completions.create(model="m", **CHAT)
    assert e.value.status_code == 503
    s.stop()  # the grace period is too short for 3000 tokens: the server cancels and exits cleanly
    assert s.proc.returncode == 0


FUZZ_PATHS = ["/v1/chat/completions", "/v1/completions", "/v1/messages", "/v1/messages/count_tokens",
              "/tokenize", "/detokenize", "/v1/models", "/health", "/metrics"]


def mutate(rng, value, depth=0):
    choices = [None, True, 0, -1, 2 ** 63, 1e308, -0.5, "", "x" * rng.randint(0, 300), "\u0000", "\ud7ff",
               [], {}, [1, "a", None], {"role": "user"}, {"type": "image_url"}]
    if isinstance(value, dict) and depth < 4:
        out = {k: mutate(rng, v, depth + 1) if rng.random() < 0.3 else v for k, v in value.items()}
        if rng.random() < 0.3:
            out[rng.choice(["n", "stream", "logprobs", "top_logprobs", "stop", "prompt", "echo", "seed", "system",
                            "stop_sequences", "max_tokens", "tokens", "content", "suffix"])] = rng.choice(choices)
        return out
    if isinstance(value, list) and depth < 4:
        return [mutate(rng, v, depth + 1) for v in value] + ([rng.choice(choices)] if rng.random() < 0.2 else [])
    return rng.choice(choices) if rng.random() < 0.5 else value


def test_fuzzed_requests_never_crash(fresh_server):
    s = fresh_server("--ctx-size", "256")
    rng = random.Random(1234)
    seeds = [dict(CHAT, logprobs=True, top_logprobs=2, stop=["a"], n=2, stream=False),
             {"prompt": ["Hi", [1, 2, 3]], "max_tokens": 2, "echo": True, "logprobs": 1},
             dict(MSG, system=[{"type": "text", "text": "x"}], stop_sequences=["b"]),
             {"content": "hello", "with_pieces": True}, {"tokens": [1, 2, 3]}]
    for i in range(300):
        path = rng.choice(FUZZ_PATHS)
        if rng.random() < 0.15:
            body = bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 200)))
        else:
            body = mutate(rng, rng.choice(seeds))
            if isinstance(body, dict) and body.get("stream") is True and rng.random() < 0.5:
                body["stream"] = False
            body = json.dumps(body, allow_nan=True)
        method = "GET" if path in ("/v1/models", "/health", "/metrics") and rng.random() < 0.8 else "POST"
        r = request(s, method, path, body, timeout=120)
        assert r.status_code < 500, (path, body, r.status_code, r.text)
        assert s.alive()
    assert request(s, "GET", "/health").status_code == 200
    m = wait_for(s, lambda m: m["lamina_requests_running"] == 0 and m["lamina_requests_in_flight"] == 0)
    assert m["lamina_kv_blocks_used"] == 0


def test_garbage_on_the_socket(server):
    host, port = server.hostport()
    for junk in (b"\x00\xff" * 100 + b"\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n", b"POST /v1/completions HTTP/1.1\r\n"
                 b"Content-Length: 99999999999999999999\r\n\r\n", b"GET " + b"/a" * 5000 + b" HTTP/1.1\r\n\r\n",
                 os.urandom(4096)):
        with socket.create_connection((host, port), timeout=30) as sock:
            try:
                sock.sendall(junk)
                sock.shutdown(socket.SHUT_WR)
                while sock.recv(65536):
                    pass
            except (ConnectionResetError, BrokenPipeError):
                pass
    assert request(server, "GET", "/health").status_code == 200
