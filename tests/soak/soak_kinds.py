"""The soak test's request kinds. Each takes a worker (its SDK clients, the
pool, the references) and a random generator, sends one request (or one
deliberately broken exchange), checks the answer, and returns
(outcome, tokens generated): outcome is "ok", or "overloaded" for a 503
(OpenAI) / 529 (Anthropic) queue-full answer, which is a correct answer
under overload. Anything else wrong raises Wrong with the details."""

import http.client
import json
import select
import socket
import time

import anthropic
import openai

API_KEY = "soak-key"
MODEL = "soak"
ANTHROPIC_STOP = {"stop": "end_turn", "length": "max_tokens"}
CHAT, COMPLETIONS, MESSAGES = "/v1/chat/completions", "/v1/completions", "/v1/messages"


class Wrong(Exception):
    """The server answered wrongly (or not at all)."""


class Worker:
    """One client of the soak: its own SDK clients (so its own connections)."""

    def __init__(self, url, host, port, pool, refs, timeout, max_body):
        self.url, self.host, self.port = url, host, port
        self.pool, self.refs, self.timeout, self.max_body = pool, refs, timeout, max_body
        self.oai = openai.OpenAI(base_url=url + "/v1", api_key=API_KEY, max_retries=0, timeout=timeout)
        self.ant = anthropic.Anthropic(base_url=url, api_key=API_KEY, max_retries=0, timeout=timeout)
        self.oai_bad = openai.OpenAI(base_url=url + "/v1", api_key="not-" + API_KEY, max_retries=0, timeout=timeout)
        self.ant_bad = anthropic.Anthropic(base_url=url, api_key=API_KEY + "x", max_retries=0, timeout=timeout)
        greedy = [e for e in pool if e.seed is None]
        self.chat = [e for e in greedy if e.api == "chat" and not e.prefix]
        self.completions = [e for e in greedy if e.api == "completion" and not e.prefix]
        self.messages = [e for e in self.chat if e.anthropic_ok()]
        self.prefixed = [e for e in greedy if e.prefix]
        self.sampled = [e for e in pool if e.seed is not None]
        self.long = [e for e in greedy if e.ignore_eos]

    def close(self):
        for c in (self.oai, self.ant, self.oai_bad, self.ant_bad):
            c.close()


def short(value, n=300):
    s = repr(value)
    return s if len(s) <= n else s[:n] + "..."


def mismatch(e, what, want, got):
    raise Wrong(f"{e.id}: {what} differs from the reference alone: want {short(want)}, got {short(got)}")


# ---- checks shared by the SDK and raw paths (answers as dicts) ----

def check_usage(e, ref, usage, n=1):
    if usage["prompt_tokens"] != ref.prompt_tokens:
        mismatch(e, "usage.prompt_tokens", ref.prompt_tokens, usage["prompt_tokens"])
    if usage["completion_tokens"] != n * ref.completion_tokens:
        mismatch(e, "usage.completion_tokens", n * ref.completion_tokens, usage["completion_tokens"])
    if usage["total_tokens"] != usage["prompt_tokens"] + usage["completion_tokens"]:
        raise Wrong(f"{e.id}: usage.total_tokens is not prompt + completion: {usage}")
    cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0
    if not 0 <= cached <= usage["prompt_tokens"]:
        raise Wrong(f"{e.id}: cached_tokens {cached} outside [0, prompt_tokens]: {usage}")
    return usage["completion_tokens"]


def check_openai(e, ref, answer, n=1):
    """A non-streaming chat or legacy completion answer."""
    choices = answer["choices"]
    if sorted(c["index"] for c in choices) != list(range(n)):
        raise Wrong(f"{e.id}: want {n} choices, got {short(choices)}")
    for c in choices:
        text = c["message"]["content"] if e.api == "chat" else c["text"]
        if text != ref.text:
            mismatch(e, "text", ref.text, text)
        if c["finish_reason"] != ref.finish:
            mismatch(e, "finish_reason", ref.finish, c["finish_reason"])
    return check_usage(e, ref, answer["usage"], n)


def check_anthropic(e, ref, answer):
    text = "".join(b["text"] for b in answer["content"] if b["type"] == "text")
    if text != ref.text:
        mismatch(e, "text", ref.text, text)
    if answer["stop_reason"] != ANTHROPIC_STOP[ref.finish]:
        mismatch(e, "stop_reason", ANTHROPIC_STOP[ref.finish], answer["stop_reason"])
    u = answer["usage"]
    if u["output_tokens"] != ref.completion_tokens:
        mismatch(e, "usage.output_tokens", ref.completion_tokens, u["output_tokens"])
    if u["input_tokens"] + (u.get("cache_read_input_tokens") or 0) != ref.prompt_tokens:
        mismatch(e, "usage input + cache_read tokens", ref.prompt_tokens, u)
    return u["output_tokens"]


def check_stream(e, ref, texts, finishes, usage, n=1):
    """A streamed OpenAI answer, assembled per choice index."""
    if sorted(texts) != list(range(n)) or sorted(finishes) != list(range(n)):
        raise Wrong(f"{e.id}: stream choices {short(texts)} finishes {short(finishes)}, want {n}")
    for i in range(n):
        if texts[i] != ref.text:
            mismatch(e, f"streamed text [{i}]", ref.text, texts[i])
        if finishes[i] != ref.finish:
            mismatch(e, "streamed finish_reason", ref.finish, finishes[i])
    return check_usage(e, ref, usage, n) if usage is not None else n * ref.completion_tokens


# ---- the official SDKs ----

def openai_body(e, **more):
    body = {"model": MODEL, "max_tokens": e.max_tokens, **e.sampling(), **more}
    if e.api == "chat":
        body["messages"] = e.openai_messages()
    else:
        body["prompt"] = e.prompt
    if e.ignore_eos:
        body["ignore_eos"] = True
    return body


def anthropic_kwargs(e):
    kw = {"model": MODEL, "max_tokens": e.max_tokens, "messages": e.turns, "extra_body": {"temperature": 0}}
    if e.system:
        kw["system"] = e.system
    return kw


def openai_kwargs(w, e, n=1):
    """(the SDK's create function for E, its arguments)"""
    kw = {"model": MODEL, "max_tokens": e.max_tokens, "n": n, "extra_body": e.extra_body(), **e.sampling()}
    if e.api == "chat":
        kw["messages"] = e.openai_messages()
        return w.oai.chat.completions.create, kw
    kw["prompt"] = e.prompt
    return w.oai.completions.create, kw


def sdk_openai(w, e, stream, n=1, include_usage=False):
    ref = w.refs[e.id]
    create, kw = openai_kwargs(w, e, n)
    if not stream:
        return check_openai(e, ref, create(**kw).model_dump(), n)
    if include_usage:
        kw["stream_options"] = {"include_usage": True}
    texts, finishes, usage = {}, {}, None
    for chunk in create(stream=True, **kw):
        if chunk.usage is not None:
            usage = chunk.usage.model_dump()
        for c in chunk.choices:
            piece = (c.delta.content if e.api == "chat" else c.text) or ""
            texts[c.index] = texts.get(c.index, "") + piece
            if c.finish_reason:
                finishes[c.index] = c.finish_reason
    if include_usage and usage is None:
        raise Wrong(f"{e.id}: stream_options.include_usage but no usage chunk")
    return check_stream(e, ref, texts, finishes, usage, n)


def sdk_anthropic(w, e, stream):
    ref = w.refs[e.id]
    if not stream:
        return check_anthropic(e, ref, w.ant.messages.create(**anthropic_kwargs(e)).model_dump())
    with w.ant.messages.stream(**anthropic_kwargs(e)) as s:
        text = "".join(s.text_stream)
        final = s.get_final_message().model_dump()
    if text != ref.text:
        mismatch(e, "streamed text", ref.text, text)
    return check_anthropic(e, ref, final)


def sdk_call(fn, *args, **kw):
    """FN's tokens as ("ok", tokens); queue-full answers as ("overloaded", 0)."""
    try:
        return "ok", fn(*args, **kw)
    except (openai.APITimeoutError, anthropic.APITimeoutError) as x:
        raise Wrong(f"hang: no answer within the client timeout ({x!r})") from None
    except openai.APIStatusError as x:
        if x.status_code == 503 and isinstance(x.body, dict) and x.body.get("code") == "queue_full":
            return "overloaded", 0
        raise Wrong(f"status {x.status_code}: {short(x.body)}") from None
    except anthropic.APIStatusError as x:
        body = x.body if isinstance(x.body, dict) else {}
        if x.status_code == 529 and (body.get("error") or {}).get("type") == "overloaded_error":
            return "overloaded", 0
        raise Wrong(f"status {x.status_code}: {short(x.body)}") from None
    except (openai.APIConnectionError, anthropic.APIConnectionError) as x:
        raise Wrong(f"connection failed: {x!r} ({x.__cause__!r})") from None
    except Exception as x:  # the HTTP library's own errors, raised as they are in the middle of a stream
        if "Timeout" in type(x).__name__:
            raise Wrong(f"hang: a stream stalled past the client timeout ({x!r})") from None
        raise


# ---- raw HTTP (stdlib sockets) ----

def raw_head(w, path, length=None, chunked=False, key=API_KEY):
    lines = [f"POST {path} HTTP/1.1", f"Host: {w.host}:{w.port}", "Content-Type: application/json",
             "Connection: close"]
    if key:
        lines.append(f"Authorization: Bearer {key}")
    if path.startswith(MESSAGES):
        lines.append("anthropic-version: 2023-06-01")
    lines.append("Transfer-Encoding: chunked" if chunked else f"Content-Length: {length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def read_response(sock):
    """(status, body bytes) of the HTTP response on SOCK."""
    r = http.client.HTTPResponse(sock, method="POST")
    try:
        r.begin()
        return r.status, r.read()
    finally:
        r.close()


def expect_error(path, status, body, want_status, openai_code, anthropic_type):
    """BODY must be an error in PATH's API shape."""
    if status != want_status:
        raise Wrong(f"{path}: want status {want_status}, got {status}: {short(body)}")
    try:
        j = json.loads(body)
    except ValueError:
        raise Wrong(f"{path}: the {status} body is not JSON: {short(body)}") from None
    if path.startswith(MESSAGES):
        ok = j.get("type") == "error" and isinstance(j.get("error"), dict) and \
            set(j["error"]) == {"type", "message"} and j["error"]["type"] == anthropic_type
    else:
        err = j.get("error")
        ok = isinstance(err, dict) and set(err) == {"message", "type", "param", "code"} and \
            isinstance(err["message"], str) and err["message"] and \
            err["type"] == ("server_error" if status == 503 else "invalid_request_error") and \
            (openai_code is None or err["code"] == openai_code)
    if not ok:
        raise Wrong(f"{path}: {status} answer not in the API's error shape: {short(body)}")


def send_watching(sock, data, timeout):
    """Sends DATA unless the server answers first (an early 413); returns
    whether all of it went."""
    sock.setblocking(False)
    view, pos = memoryview(data), 0
    deadline = time.monotonic() + timeout
    try:
        while pos < len(data):
            left = deadline - time.monotonic()
            if left <= 0:
                raise Wrong(f"hang: the server stopped reading the body after {pos} bytes and did not answer")
            readable, writable, _ = select.select([sock], [sock], [], left)
            if readable:
                return False
            if writable:
                try:
                    pos += sock.send(view[pos:pos + 65536])
                except BlockingIOError:
                    pass
                except (BrokenPipeError, ConnectionResetError):
                    return False
        return True
    finally:
        sock.settimeout(timeout)


def raw_exchange(w, path, body, rng=None, chunked=False, key=API_KEY):
    """Sends BODY to PATH (in pieces with pauses if RNG is given) and
    returns (status, response body)."""
    if chunked:
        pieces = [body[i:i + 100000] for i in range(0, len(body), 100000)]
        payload = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"
    else:
        payload = body
    head = raw_head(w, path, len(body), chunked, key)
    with socket.create_connection((w.host, w.port), timeout=w.timeout) as sock:
        try:
            if rng:  # a slow client: headers and body in pieces, a few hundred ms apart
                data = head + payload
                cuts = sorted({rng.randrange(1, len(head)), *(rng.randrange(1, len(data))
                                                              for _ in range(rng.randint(2, 4)))})
                for a, b in zip([0] + cuts, cuts + [len(data)]):
                    sock.sendall(data[a:b])
                    if b < len(data):
                        time.sleep(rng.uniform(0.1, 0.4))
            else:
                sock.sendall(head)
                send_watching(sock, payload, w.timeout)
            return read_response(sock)
        except socket.timeout:
            raise Wrong(f"hang: {path} did not answer within {w.timeout} s") from None
        except (ConnectionResetError, BrokenPipeError, http.client.HTTPException) as x:
            raise Wrong(f"{path}: the connection failed before a complete answer: {x!r}") from None


# ---- the kinds ----

def kind_chat(w, rng):
    e = rng.choice(w.chat)
    return sdk_call(sdk_openai, w, e, stream=False, n=2 if rng.random() < 0.15 else 1)


def kind_chat_stream(w, rng):
    e = rng.choice(w.chat)
    return sdk_call(sdk_openai, w, e, stream=True, n=2 if rng.random() < 0.15 else 1,
                    include_usage=rng.random() < 0.5)


def kind_completion(w, rng):
    e = rng.choice(w.completions)
    stream = rng.random() < 0.5
    return sdk_call(sdk_openai, w, e, stream=stream, include_usage=stream and rng.random() < 0.5)


def kind_messages(w, rng):
    return sdk_call(sdk_anthropic, w, rng.choice(w.messages), stream=False)


def kind_messages_stream(w, rng):
    return sdk_call(sdk_anthropic, w, rng.choice(w.messages), stream=True)


def kind_prefix(w, rng):
    """A request sharing a long prefix with others, through a random API."""
    e = rng.choice(w.prefixed)
    if e.api == "chat" and rng.random() < 0.4:
        return sdk_call(sdk_anthropic, w, e, stream=rng.random() < 0.5)
    stream = rng.random() < 0.5
    return sdk_call(sdk_openai, w, e, stream=stream, include_usage=stream)


def kind_sampled(w, rng):
    """Sampling with a fixed seed is as deterministic as greedy decoding."""
    e = rng.choice(w.sampled)
    return sdk_call(sdk_openai, w, e, stream=rng.random() < 0.5, include_usage=True)


def kind_slow(w, rng):
    """A slow client (request in pieces) must still be answered, correctly."""
    e = rng.choice(w.chat + w.completions + w.prefixed)
    ref = w.refs[e.id]
    if e.anthropic_ok() and rng.random() < 0.4:
        kw = anthropic_kwargs(e)
        body = {**{k: v for k, v in kw.items() if k != "extra_body"}, **kw["extra_body"]}
        status, raw = raw_exchange(w, MESSAGES, json.dumps(body).encode(), rng)
        if status == 529:
            expect_error(MESSAGES, status, raw, 529, None, "overloaded_error")
            return "overloaded", 0
        if status != 200:
            raise Wrong(f"slow client: {MESSAGES} answered {status}: {short(raw)}")
        return "ok", check_anthropic(e, ref, json.loads(raw))
    path = CHAT if e.api == "chat" else COMPLETIONS
    status, raw = raw_exchange(w, path, json.dumps(openai_body(e)).encode(), rng)
    if status == 503:
        expect_error(path, status, raw, 503, "queue_full", None)
        return "overloaded", 0
    if status != 200:
        raise Wrong(f"slow client: {path} answered {status}: {short(raw)}")
    return "ok", check_openai(e, ref, json.loads(raw))


def malformed_body(rng):
    valid = json.dumps({"model": MODEL, "max_tokens": 8, "messages": [{"role": "user", "content": "Hi there"}]})
    fixed = [b"", b"{", b'{"messages": [}', b"\xff\xfe{}", b"[1, 2]", b"null", b'{"max_tokens": 8,}',
             b"{'model': 'single quotes'}", valid.encode() + b" trailing", b'{"a": "\\ud800\\u"}']
    if rng.random() < 0.5:
        return valid[:rng.randrange(1, len(valid))].encode()  # every strict prefix of an object is invalid
    return rng.choice(fixed)


def kind_malformed(w, rng):
    """Broken JSON: 400 in the right API's error shape."""
    path = rng.choice([CHAT, COMPLETIONS, MESSAGES, MESSAGES + "/count_tokens"])
    status, raw = raw_exchange(w, path, malformed_body(rng))
    expect_error(path, status, raw, 400, None, "invalid_request_error")
    return "ok", 0


def kind_oversized(w, rng):
    """A body past --max-body-size: 413 in the right API's shape."""
    path = rng.choice([CHAT, COMPLETIONS, MESSAGES])
    filler = b"x" * (w.max_body + rng.randint(1, 256 << 10))
    body = b'{"model": "soak", "max_tokens": 4, "messages": [{"role": "user", "content": "' + filler + b'"}]}'
    status, raw = raw_exchange(w, path, body, chunked=rng.random() < 0.4)
    expect_error(path, status, raw, 413, "request_too_large", "request_too_large")
    return "ok", 0


def kind_auth(w, rng):
    """A wrong or missing API key: 401 in the right API's shape."""
    e = rng.choice(w.messages)
    pick = rng.randrange(3)
    try:
        if pick == 0:
            w.oai_bad.chat.completions.create(model=MODEL, messages=e.openai_messages(), max_tokens=4)
        elif pick == 1:
            w.ant_bad.messages.create(**anthropic_kwargs(e))
        else:
            path = rng.choice([CHAT, COMPLETIONS, MESSAGES])
            status, raw = raw_exchange(w, path, json.dumps(openai_body(e)).encode(), key=None)
            expect_error(path, status, raw, 401, "invalid_api_key", "authentication_error")
            return "ok", 0
    except openai.AuthenticationError as x:
        if x.status_code == 401 and x.body.get("code") == "invalid_api_key":
            return "ok", 0
        raise Wrong(f"wrong key: {x.status_code} {short(x.body)}") from None
    except anthropic.AuthenticationError as x:
        if x.status_code == 401 and x.body["error"]["type"] == "authentication_error":
            return "ok", 0
        raise Wrong(f"wrong key: {x.status_code} {short(x.body)}") from None
    except (openai.APIError, anthropic.APIError) as x:
        raise Wrong(f"wrong key: want 401, got {x!r}") from None
    raise Wrong("a request with a wrong API key was served")


def kind_count_tokens(w, rng):
    e = rng.choice(w.messages + [x for x in w.prefixed if x.anthropic_ok()])
    kw = {"model": MODEL, "messages": e.turns}
    if e.system:
        kw["system"] = e.system
    status, n = sdk_call(lambda: w.ant.messages.count_tokens(**kw).input_tokens)
    if n != w.refs[e.id].prompt_tokens:
        mismatch(e, "count_tokens", w.refs[e.id].prompt_tokens, n)
    return status, 0


def sdk_leave(w, rng, anthropic_api, k):
    """A stream through an SDK, left after K pieces: (entry, text so far)."""
    got = ""
    if anthropic_api:
        e = rng.choice(w.messages)
        with w.ant.messages.stream(**anthropic_kwargs(e)) as s:
            for i, piece in enumerate(s.text_stream):
                got += piece
                if i + 1 >= k:
                    break
        return e, got
    e = rng.choice(w.long + w.chat)
    create, kw = openai_kwargs(w, e)
    stream = create(stream=True, **kw)
    for i, chunk in enumerate(stream):
        for c in chunk.choices:
            got += (c.delta.content if e.api == "chat" else c.text) or ""
        if i + 1 >= k:
            break
    stream.close()
    return e, got


def raw_leave(w, rng, stream, k):
    """A raw request closed after K stream events, or before its answer."""
    e = rng.choice(w.long)
    body = json.dumps(openai_body(e, stream=stream)).encode()
    path = CHAT if e.api == "chat" else COMPLETIONS
    with socket.create_connection((w.host, w.port), timeout=w.timeout) as sock:
        sock.sendall(raw_head(w, path, len(body)) + body)
        if not stream:
            time.sleep(rng.uniform(0.05, 1.0))
            return "ok", 0
        seen = b""
        try:
            while seen.count(b"data: ") < k and (data := sock.recv(65536)):
                seen += data
        except socket.timeout:
            raise Wrong(f"hang: the {path} stream sent nothing for {w.timeout} s") from None
    if seen.startswith(b"HTTP/1.1 503"):
        return "overloaded", 0
    if not seen.startswith(b"HTTP/1.1 200"):
        raise Wrong(f"{path}: the stream answered {short(seen)}")
    return "ok", 0


def kind_disconnect(w, rng):
    """A client that leaves mid-answer (the server must cancel its request);
    what it got so far must be a prefix of the reference."""
    pick, k = rng.randrange(4), rng.randint(1, 6)
    if pick >= 2:
        return raw_leave(w, rng, pick == 2, k)
    outcome, left = sdk_call(sdk_leave, w, rng, pick == 1, k)
    if outcome == "ok":
        e, got = left
        if not w.refs[e.id].text.startswith(got):
            mismatch(e, "text before the disconnect (a prefix)", w.refs[e.id].text, got)
    return outcome, 0


KINDS = {  # name: (function, weight)
    "chat": (kind_chat, 12), "chat_stream": (kind_chat_stream, 12), "completion": (kind_completion, 10),
    "messages": (kind_messages, 9), "messages_stream": (kind_messages_stream, 9), "prefix": (kind_prefix, 12),
    "sampled": (kind_sampled, 5), "disconnect": (kind_disconnect, 8), "slow": (kind_slow, 4),
    "malformed": (kind_malformed, 6), "oversized": (kind_oversized, 2), "auth": (kind_auth, 4),
    "count_tokens": (kind_count_tokens, 3),
}
