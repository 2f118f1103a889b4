"""Hostile and greedy clients: oversized headers, too many connections,
slowloris (headers or body trickled a byte at a time), idle sockets, too
many messages, long stop strings, and requests that run past the server's
time limit. Each limit has a flag; each answer is in the API's own error
shape, or the connection is closed when no answer can be sent."""

import json
import socket
import time

import anthropic
import openai
import pytest

from conftest import read_until_closed, request

CHAT = {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2}
MSG = {"model": "m", "max_tokens": 2, "messages": [{"role": "user", "content": "Hi"}]}


def connect(s):
    host, port = s.hostport()
    sock = socket.create_connection((host, port), timeout=30)
    return sock


def closed_within(sock, seconds):
    """Seconds until the server closed SOCK (reads return b'' or reset), or
    None if it is still open after SECONDS; whatever it sent is dropped."""
    t0 = time.time()
    sock.settimeout(0.2)
    while time.time() - t0 < seconds:
        try:
            if sock.recv(65536) == b"":
                return time.time() - t0
        except socket.timeout:
            continue
        except (ConnectionResetError, BrokenPipeError):
            return time.time() - t0
    return None


def http_response(sock, timeout=30):
    """Reads one whole response (Content-Length bodies) and returns (status, headers, body)."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[1:] if ":" in ln)}
    n = int(headers.get("content-length", "0"))
    while len(body) < n:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return status, headers, body


def test_headers_too_large(fresh_server):
    s = fresh_server("--max-header-size", "2K")
    r = request(s, "POST", "/v1/chat/completions", CHAT, headers={"X-Filler": "a" * 3000})
    assert r.status_code == 431
    err = r.json()["error"]
    assert err["code"] == "request_header_fields_too_large" and "--max-header-size" in err["message"]
    r = request(s, "POST", "/v1/messages", MSG, headers={"X-Filler": "a" * 3000})
    assert r.status_code == 431 and r.json()["type"] == "error"
    assert r.json()["error"]["type"] == "request_too_large"
    # just under the limit is fine
    assert request(s, "POST", "/v1/chat/completions", CHAT, headers={"X-Filler": "a" * 1200}).status_code == 200
    # far beyond what the connection's memory can hold: still an answer or a close, never a crash
    with connect(s) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Huge: " + b"b" * 200000 + b"\r\n\r\n")
        try:
            status, _, _ = http_response(sock)
            assert status in (413, 414, 431)
        except (ConnectionResetError, BrokenPipeError, IndexError):
            pass
    assert request(s, "GET", "/health").status_code == 200


def test_too_many_connections(fresh_server):
    s = fresh_server("--max-connections", "3")
    idle = [connect(s) for _ in range(3)]
    try:
        time.sleep(0.3)
        r = request(s, "POST", "/v1/chat/completions", CHAT)
        assert r.status_code == 503 and "--max-connections" in r.json()["error"]["message"]
        r = request(s, "POST", "/v1/messages", MSG)
        assert r.status_code == 529 and r.json()["error"]["type"] == "overloaded_error"
    finally:
        for sock in idle:
            sock.close()
    time.sleep(0.5)
    assert request(s, "POST", "/v1/chat/completions", CHAT).status_code == 200


def test_slowloris_headers_are_cut_off(fresh_server):
    s = fresh_server("--read-timeout", "2")
    with connect(s) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n")
        t0 = time.time()
        gone = False
        while time.time() - t0 < 10:  # one header byte every 0.3 s: never silent, never done
            try:
                sock.sendall(b"X")
            except (BrokenPipeError, ConnectionResetError):
                gone = True
                break
            if closed_within(sock, 0.3) is not None:
                gone = True
                break
        elapsed = time.time() - t0
    assert gone, "a client trickling header bytes kept its connection for 10 s"
    assert 1.5 < elapsed < 6, elapsed
    assert request(s, "POST", "/v1/chat/completions", CHAT).status_code == 200


def test_slow_body_is_refused(fresh_server):
    s = fresh_server("--read-timeout", "2")
    body = json.dumps(CHAT).encode()
    with connect(s) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n" % len(body))
        t0 = time.time()
        answered = None
        for b in body:
            try:
                sock.sendall(bytes([b]))
            except (BrokenPipeError, ConnectionResetError):
                break
            time.sleep(0.2)
            if time.time() - t0 > 10:
                break
        try:
            status, _, payload = http_response(sock, timeout=5)
            answered = status
        except (ConnectionResetError, BrokenPipeError, IndexError, socket.timeout):
            pass
    # either a 408 in OpenAI's shape or a closed connection; never a 200 after 2 s of trickling
    assert answered in (None, 408), answered
    if answered == 408:
        assert json.loads(payload)["error"]["code"] == "request_timeout"
    assert time.time() - t0 < 12


def test_idle_connections_are_closed(fresh_server):
    s = fresh_server("--idle-timeout", "1", "--read-timeout", "60")
    with connect(s) as sock:
        t = closed_within(sock, 8)
    assert t is not None and t < 5, t
    # a keep-alive connection that finished a request is closed when idle too
    body = json.dumps(CHAT).encode()
    with connect(s) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n" % len(body) + body)
        status, headers, _ = http_response(sock)
        assert status == 200
        t = closed_within(sock, 8)
    assert t is not None and t < 5, t


def test_keep_alive_connection_gets_the_longer_of_read_and_idle_timeouts(fresh_server):
    s = fresh_server("--read-timeout", "2", "--idle-timeout", "3")
    body = json.dumps(CHAT).encode()
    req = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
           b"Content-Length: %d\r\n\r\n" % len(body) + body)
    with connect(s) as sock:
        for i in range(3):  # requests in a row on one connection
            if i:
                time.sleep(2.5)  # longer than --read-timeout, within --idle-timeout
            sock.sendall(req)
            assert http_response(sock)[0] == 200
        t = closed_within(sock, 10)
    assert t is not None and 1.5 < t < 5, t


def test_too_many_messages(fresh_server):
    s = fresh_server("--max-messages", "3")
    msgs = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}] * 2
    r = request(s, "POST", "/v1/chat/completions", dict(CHAT, messages=msgs))
    assert r.status_code == 400 and r.json()["error"]["param"] == "messages"
    assert "--max-messages" in r.json()["error"]["message"]
    r = request(s, "POST", "/v1/messages", dict(MSG, messages=msgs + [{"role": "user", "content": "c"}]))
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"
    assert request(s, "POST", "/v1/chat/completions", dict(CHAT, messages=msgs[:3])).status_code == 200


def test_stop_strings_are_bounded(server):
    r = request(server, "POST", "/v1/chat/completions", dict(CHAT, stop=["x" * 1025]))
    assert r.status_code == 400 and r.json()["error"]["param"] == "stop"
    r = request(server, "POST", "/v1/chat/completions", dict(CHAT, stop=[f"s{i}" for i in range(17)]))
    assert r.status_code == 400 and r.json()["error"]["param"] == "stop"
    r = request(server, "POST", "/v1/messages", dict(MSG, stop_sequences=["y" * 2000]))
    assert r.status_code == 400
    assert request(server, "POST", "/v1/chat/completions", dict(CHAT, stop=["x" * 1024])).status_code == 200


LONG = {"messages": [{"role": "user", "content": "Count to a million."}], "max_tokens": 1900,
        "temperature": 0, "ignore_eos": True}


def test_request_timeout(fresh_server):
    s = fresh_server("--request-timeout", "1", "--ctx-size", "2048")
    t0 = time.time()
    r = request(s, "POST", "/v1/chat/completions", LONG)
    assert r.status_code == 504, r.text
    assert r.json()["error"]["code"] == "timeout" and "--request-timeout" in r.json()["error"]["message"]
    assert time.time() - t0 < 8
    ant = anthropic.Anthropic(base_url=s.url, api_key="x", max_retries=0)
    with pytest.raises(anthropic.APIStatusError) as e:
        ant.messages.create(model="m", max_tokens=1900, messages=LONG["messages"], extra_body={"ignore_eos": True})
    assert e.value.status_code == 504 and e.value.body["error"]["type"] == "timeout_error"
    # a stream that runs out of time ends with an error event after its tokens
    client = openai.OpenAI(base_url=s.url + "/v1", api_key="x", max_retries=0)
    got = 0
    with pytest.raises(openai.APIError) as e:
        for chunk in client.chat.completions.create(model="m", stream=True, messages=LONG["messages"],
                                                    max_tokens=1900, extra_body={"ignore_eos": True}):
            got += bool(chunk.choices and chunk.choices[0].delta.content)
    assert got > 0 and "--request-timeout" in str(e.value)
    # short requests are untouched, and nothing is left running
    assert request(s, "POST", "/v1/chat/completions", CHAT).status_code == 200
    m = request(s, "GET", "/metrics").text
    assert "lamina_kv_blocks_used 0" in m


def test_queued_stream_outlives_the_idle_timeout(fresh_server):
    """A stream whose request waits in the queue longer than --idle-timeout
    is kept open with SSE keep-alive comments and completes (found by the
    soak: the connection used to be cut without an error or [DONE])."""
    idle = 1
    s = fresh_server("--max-num-seqs", "1", "--idle-timeout", str(idle), "--ctx-size", "8192")
    host, port = s.hostport()

    def post(body):
        sock = socket.create_connection((host, port), timeout=300)
        b = json.dumps(body).encode()
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(b), b))
        return sock

    # the busy request must outlast the idle timeout a few times over on any
    # machine: its length follows the measured decode speed (a GPU is 10x a CPU)
    story = [{"role": "user", "content": "Tell me a story."}]
    t = time.time()
    assert request(s, "POST", "/v1/chat/completions",
                   {"messages": story, "max_tokens": 64, "ignore_eos": True}).status_code == 200
    busy_tokens = max(600, min(7000, int(64 / (time.time() - t) * 5 * idle)))
    busy = post({"messages": story, "max_tokens": busy_tokens, "ignore_eos": True})
    time.sleep(0.3)
    t0 = time.time()
    queued = post({"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 8, "stream": True})
    got = read_until_closed(queued, 300)
    waited = time.time() - t0
    assert read_until_closed(busy, 300).startswith(b"HTTP/1.1 200")
    assert waited > 2 * idle, f"the busy request ({busy_tokens} tokens) finished too soon ({waited:.1f} s) to test anything"
    assert b": keep-alive" in got and b"data: [DONE]" in got, got[-300:]
