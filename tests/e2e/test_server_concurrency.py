"""Many clients at once, clients that leave mid-request, and shutdown.

Concurrent greedy streams must each produce exactly the text the same
request produces alone. A client that disconnects must have its request
cancelled at once (seen in /metrics: nothing left running, its K/V blocks
back) while the server keeps serving. SIGTERM lets running requests finish
within the grace period and exits 0; past it, they are cancelled."""

import signal
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import openai
import pytest

from conftest import read_until_closed, request
from test_server_basic import metrics

PROMPTS = ["Write a haiku about the moon.", "What is 2 + 2?", "Name three fruits.", "Say hello in French."]


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=600)


def greedy_stream(client, prompt, max_tokens=16):
    chunks = client.chat.completions.create(model="m", messages=[{"role": "user", "content": prompt}],
                                            temperature=0, max_tokens=max_tokens, stream=True)
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def greedy(client, prompt, max_tokens=16):
    r = client.chat.completions.create(model="m", messages=[{"role": "user", "content": prompt}],
                                       temperature=0, max_tokens=max_tokens)
    return r.choices[0].message.content


def wait_idle(server, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        m = metrics(server)
        if m["lamina_requests_running"] == 0 and m["lamina_requests_waiting"] == 0 and \
                m["lamina_requests_in_flight"] == 0:
            return m
        time.sleep(0.05)
    raise AssertionError(f"requests still running after {timeout} s: {m}")


def test_8_parallel_streams_same_prompt(client, server):
    alone = greedy(client, PROMPTS[0])
    with ThreadPoolExecutor(8) as pool:
        texts = list(pool.map(lambda _: greedy_stream(client, PROMPTS[0]), range(8)))
    assert texts == [alone] * 8
    m = wait_idle(server)
    assert m["lamina_kv_blocks_used"] == 0


def test_32_concurrent_streaming_clients(client, server):
    alone = {p: greedy(client, p, 12) for p in PROMPTS}
    jobs = [PROMPTS[i % len(PROMPTS)] for i in range(32)]
    with ThreadPoolExecutor(32) as pool:
        texts = list(pool.map(lambda p: greedy_stream(client, p, 12), jobs))
    assert texts == [alone[p] for p in jobs]
    wait_idle(server)


def open_stream(server, max_tokens=2000):
    """A raw streaming request; returns the socket and what it read, once the
    first chunks arrived."""
    host, port = server.hostport()
    sock = socket.create_connection((host, port), timeout=120)
    body = ('{"messages": [{"role": "user", "content": "Tell me a very long story."}], "stream": true, '
            f'"max_tokens": {max_tokens}, "ignore_eos": true}}').encode()
    sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
    got = b""
    while got.count(b"data: ") < 4:
        got += sock.recv(65536)
    return sock, got


def test_disconnect_mid_stream_cancels(server, client):
    before = metrics(server)
    socks = [open_stream(server)[0] for _ in range(3)]
    m = metrics(server)
    assert m["lamina_requests_running"] >= 1 and m["lamina_kv_blocks_used"] > 0
    for s in socks:
        s.close()
    t0 = time.time()
    m = wait_idle(server, timeout=10)
    assert time.time() - t0 < 5  # cancelled at once, not after 2000 tokens
    assert m["lamina_kv_blocks_used"] == 0
    aborted = 'lamina_sequences_finished_total{reason="abort"}'
    assert m[aborted] - before[aborted] == 3
    assert greedy(client, PROMPTS[1], 4)  # still serving
    assert "client disconnected" in server.stderr()


def test_disconnect_while_waiting_for_a_non_streaming_reply(server):
    before = metrics(server)
    host, port = server.hostport()
    body = b'{"prompt": "Once upon a time", "max_tokens": 2000, "ignore_eos": true}'
    sock = socket.create_connection((host, port), timeout=60)
    sock.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
    deadline = time.time() + 60
    while metrics(server)["lamina_requests_running"] == 0 and time.time() < deadline:
        time.sleep(0.05)
    sock.close()
    m = wait_idle(server, timeout=10)
    assert m["lamina_kv_blocks_used"] == 0
    # counted as the client's doing (nginx's 499), not as the server being unavailable
    gone = 'lamina_requests_total{endpoint="/v1/completions",status="499"}'
    unavailable = 'lamina_requests_total{endpoint="/v1/completions",status="503"}'
    deadline = time.time() + 10
    while m.get(gone, 0) - before.get(gone, 0) < 1 and time.time() < deadline:
        time.sleep(0.05)
        m = metrics(server)
    assert m.get(gone, 0) - before.get(gone, 0) == 1
    assert m.get(unavailable, 0) == before.get(unavailable, 0)


def test_sigterm_lets_running_requests_finish(fresh_server):
    s = fresh_server("--shutdown-timeout", "300")  # ample even under ThreadSanitizer
    client = openai.OpenAI(base_url=s.url + "/v1", api_key="x", max_retries=0, timeout=300)
    alone = greedy(client, PROMPTS[2], 24)
    result = {}

    def run():
        result["text"] = greedy_stream(client, PROMPTS[2], 24)

    t = threading.Thread(target=run)
    t.start()
    deadline = time.time() + 60
    while metrics(s)["lamina_requests_running"] == 0 and time.time() < deadline:
        time.sleep(0.02)
    s.proc.send_signal(signal.SIGTERM)
    t.join(120)
    assert result["text"] == alone
    assert s.proc.wait(60) == 0
    assert "SIGTERM received" in s.stderr()


def test_sigint_past_the_grace_period_cancels(fresh_server):
    s = fresh_server("--shutdown-timeout", "0")
    sock, got = open_stream(s, max_tokens=3000)
    assert b"error" not in got
    s.proc.send_signal(signal.SIGINT)
    rest = read_until_closed(sock, 30)
    assert b"shutting down" in rest and b"data: [DONE]" in rest, (got, rest, s.stderr())
    assert s.proc.wait(30) == 0
    assert "cancelling 1 request" in s.stderr()


def test_second_signal_ends_the_grace_period_at_once(fresh_server):
    s = fresh_server("--shutdown-timeout", "300")
    sock, got = open_stream(s, max_tokens=3000)
    assert b"error" not in got
    s.proc.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    assert s.alive()  # the first signal waits for the stream
    t0 = time.time()
    s.proc.send_signal(signal.SIGTERM)
    assert s.proc.wait(10) == 0
    assert time.time() - t0 < 6
    rest = read_until_closed(sock, 10)
    assert b"shutting down" in rest, rest[-500:]
