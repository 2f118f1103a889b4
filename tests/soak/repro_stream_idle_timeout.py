#!/usr/bin/env python3
"""Reproduction (found by the soak): a streaming request whose first token
comes later than --idle-timeout after its request is cut by the server.

The stream gets its headers and the first "role" chunk, then the
connection is closed without an error event and without "data: [DONE]",
and the server logs "client disconnected" for it, although the client
never left. Under load the same happens with the default --idle-timeout of
120 s whenever a streaming request waits in the queue (or is preempted)
for longer than that. Non-streaming requests that wait as long are served.

    .venv/bin/python tests/soak/repro_stream_idle_timeout.py [BINARY]

Exits 1 while the bug reproduces, 0 once the stream completes."""

import json
import re
import socket
import subprocess
import sys
import tempfile
import time

BINARY = sys.argv[1] if len(sys.argv) > 1 else "build/lamina"


def post(host, port, body):
    s = socket.create_connection((host, port), timeout=300)
    b = json.dumps(body).encode()
    s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(b), b))
    return s


def read_all(s):
    got = b""
    while data := s.recv(65536):
        got += data
    return got


def main():
    log = tempfile.NamedTemporaryFile(prefix="lamina-repro-", suffix=".log", delete=False)
    server = subprocess.Popen([BINARY, "serve", "--port", "0", "--max-num-seqs", "1", "--idle-timeout", "2"],
                              stdout=subprocess.PIPE, stderr=log, text=True)
    try:
        host, port = re.search(r"at http://([0-9.]+):(\d+)", server.stdout.readline()).groups()
        port = int(port)
        # holds the only sequence slot for several seconds (longer than --idle-timeout 2)
        busy = post(host, port, {"messages": [{"role": "user", "content": "Tell me a story."}], "max_tokens": 300,
                                 "ignore_eos": True})
        time.sleep(0.5)
        t0 = time.time()
        stream = post(host, port, {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 8, "stream": True})
        got = read_all(stream)
        waited = time.time() - t0
        busy_status = read_all(busy).split(b"\r\n")[0].decode()
    finally:
        server.terminate()
        server.wait(60)
    events = [e for e in got.decode(errors="replace").split("\r\n") if e.startswith("data: ")]
    print(f"the queued stream ended after {waited:.1f} s with {len(events)} events; [DONE]: {b'[DONE]' in got}")
    print(f"the request ahead of it: {busy_status}")
    with open(log.name) as f:
        print("server log:\n" + f.read())
    if b"[DONE]" not in got:
        print("BUG: the stream was cut without an error or [DONE]")
        return 1
    print("ok: the queued stream completed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
