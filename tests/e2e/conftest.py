"""Fixtures for the end-to-end suites: a real `lamina serve` on a free
loopback port with the default model.

The server is started with --port 0; its start line on stdout names the
address it got. `server` is shared by a whole test session; tests that need
other flags (an API key, a tiny queue, ...) start their own with
`start_server(...)`. The binary is build/lamina (override with LAMINA_BIN)."""

import http.client
import json
import os
import re
import signal
import subprocess
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LAMINA = Path(os.environ.get("LAMINA_BIN", REPO / "build" / "lamina")).resolve()
# extra flags for every `lamina serve` the suites start, e.g. "--device cuda" to run the
# server suites against a CUDA-backed server (bench/cuda_device.sh e2e)
SERVE_ARGS = os.environ.get("LAMINA_SERVE_ARGS", "").split()


def device_args():
    """The device flags of SERVE_ARGS (--device X, --batch-invariant), for
    `lamina generate` to run where the server runs."""
    out, args = [], iter(SERVE_ARGS)
    for a in args:
        if a == "--device":
            out += [a, next(args, "cpu")]
        elif a == "--batch-invariant":
            out.append(a)
    return out

DEFAULT_MODEL = REPO / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"
START_TIMEOUT_S = 120


class Server:
    """A running `lamina serve`; stderr (the request log) goes to a file."""

    def __init__(self, args=(), env=None):
        if not LAMINA.exists():
            pytest.fail(f"{LAMINA} not built (scripts/setup builds it)")
        if not DEFAULT_MODEL.exists():
            pytest.fail(f"{DEFAULT_MODEL} not present (scripts/setup installs it)")
        full_env = dict(os.environ)
        full_env.pop("LAMINA_API_KEY", None)
        full_env.update(env or {})
        self.log = tempfile.NamedTemporaryFile(prefix="lamina-serve-", suffix=".log", delete=False)
        self.proc = subprocess.Popen([str(LAMINA), "serve", "--port", "0", *SERVE_ARGS, *map(str, args)], cwd=REPO,
                                     env=full_env, stdout=subprocess.PIPE, stderr=self.log, text=True)
        self.start_line = self._read_start_line()
        m = re.search(r"at (http://[^ ]+)", self.start_line)
        assert m, f"no address in the start line: {self.start_line!r}"
        self.url = m.group(1)
        self._wait_healthy()

    def _read_start_line(self):
        result = {}

        def reader():
            result["line"] = self.proc.stdout.readline()

        t = threading.Thread(target=reader, daemon=True)
        t.start()
        t.join(START_TIMEOUT_S)
        line = result.get("line", "")
        if not line:
            self.proc.kill()
            raise RuntimeError(f"lamina serve did not start:\n{self.stderr()}")
        return line

    def _wait_healthy(self):
        deadline = time.time() + START_TIMEOUT_S
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=5) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"/health never answered 200:\n{self.stderr()}")

    def hostport(self):
        m = re.match(r"http://\[?([^\]]+?)\]?:(\d+)$", self.url)
        return m.group(1), int(m.group(2))

    def stderr(self):
        with open(self.log.name, encoding="utf-8", errors="replace") as f:
            return f.read()

    def alive(self):
        return self.proc.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout=60):
        """Sends SIG and returns the exit code (kills after TIMEOUT)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()
        return self.proc.returncode

    def close(self):
        self.stop()
        log = self.stderr()
        os.unlink(self.log.name)
        assert_no_sanitizer_report(log)


# Reports of a sanitized build (LAMINA_BIN=build-asan/lamina): a leak or
# memory error at any time, including the exit after SIGTERM, fails the test
# that owned the server.
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:", "WARNING: ThreadSanitizer")


def assert_no_sanitizer_report(log):
    for mark in SANITIZER_MARKS:
        i = log.find(mark)
        assert i < 0, f"sanitizer report in the server log:\n{log[max(0, i - 200):i + 4000]}"


def read_until_closed(sock, timeout):
    """Everything SOCK receives until the server closes it (a reset counts as
    closed); the socket is closed afterwards."""
    got = b""
    sock.settimeout(timeout)
    try:
        while data := sock.recv(65536):
            got += data
    except ConnectionResetError:
        pass
    sock.close()
    return got


def start_server(*args, env=None):
    return Server(args, env)


@pytest.fixture(scope="session")
def server():
    s = Server()
    yield s
    code = s.stop()
    log = s.stderr()
    os.unlink(s.log.name)
    assert_no_sanitizer_report(log)
    assert code == 0, f"lamina serve exited with {code}:\n{log[-4000:]}"


@pytest.fixture
def fresh_server():
    """A factory for servers with extra flags, stopped after the test."""
    started = []

    def make(*args, env=None):
        s = Server(args, env)
        started.append(s)
        return s

    yield make
    for s in started:
        s.close()


class Reference:
    """Independent references: the model's chat template rendered by Python
    jinja2 (as Hugging Face transformers does) and llama.cpp's tokenizer
    (llama-cpp-python, vocab only)."""

    def __init__(self, model_path):
        import jinja2
        import jinja2.sandbox
        from gguf import GGUFReader
        import llama_cpp

        reader = GGUFReader(str(model_path))

        def field(key):
            f = reader.fields.get(key)
            if f is None:
                return None
            v = f.parts[f.data[0]]
            return bytes(v).decode() if f.types[0].name == "STRING" else v[0]

        self.template_source = field("tokenizer.chat_template")
        tokens = reader.fields["tokenizer.ggml.tokens"]
        bos, eos = field("tokenizer.ggml.bos_token_id"), field("tokenizer.ggml.eos_token_id")
        self.bos_token = bytes(tokens.parts[tokens.data[bos]]).decode() if bos is not None else ""
        self.eos_token = bytes(tokens.parts[tokens.data[eos]]).decode() if eos is not None else ""
        self.add_bos = bool(field("tokenizer.ggml.add_bos_token"))

        def raise_exception(msg):
            raise jinja2.exceptions.TemplateError(msg)

        env = jinja2.sandbox.ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                                           extensions=["jinja2.ext.loopcontrols"])
        env.globals["raise_exception"] = raise_exception
        self.template = env.from_string(self.template_source)
        self.llama = llama_cpp.Llama(str(model_path), vocab_only=True, verbose=False)

    def chat_prompt(self, messages, add_generation_prompt=True):
        return self.template.render(messages=messages, add_generation_prompt=add_generation_prompt,
                                    bos_token=self.bos_token, eos_token=self.eos_token)

    def tokenize(self, text, add_bos=True, special=True):
        return self.llama.tokenize(text.encode(), add_bos=add_bos and self.add_bos, special=special)

    def chat_tokens(self, messages):
        text = self.chat_prompt(messages)
        if self.add_bos and self.bos_token and text.startswith(self.bos_token):
            text = text[len(self.bos_token):]
        return self.tokenize(text)


@pytest.fixture(scope="session")
def reference():
    try:
        return Reference(DEFAULT_MODEL)
    except ImportError as e:
        pytest.fail(f"reference packages missing (scripts/setup installs them): {e}")


class Response:
    def __init__(self, status, headers, body):
        self.status_code = status
        self.headers = headers
        self.content = body

    @property
    def text(self):
        return self.content.decode("utf-8", "replace")

    def json(self):
        return json.loads(self.content)


def request(server, method, path, body=None, headers=None, timeout=300):
    """One raw HTTP request (stdlib only): BODY is bytes, str or a JSON value."""
    if body is not None and not isinstance(body, (bytes, str)):
        body = json.dumps(body)
    if isinstance(body, str):
        body = body.encode()
    hdrs = {"Content-Type": "application/json"} if body is not None else {}
    hdrs.update(headers or {})
    conn = http.client.HTTPConnection(*server.hostport(), timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=hdrs)
        r = conn.getresponse()
        return Response(r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
    finally:
        conn.close()
