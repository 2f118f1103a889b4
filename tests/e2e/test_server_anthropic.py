"""POST /v1/messages and /v1/messages/count_tokens through the official
anthropic SDK, and the raw SSE event sequence. Prompt token counts are
checked against the chat template rendered by jinja2 and llama.cpp's
tokenizer; the text against the OpenAI endpoint's greedy output on the
same conversation."""

import json

import anthropic
import openai
import pytest

from conftest import request

MESSAGES = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture(scope="module")
def client(server):
    return anthropic.Anthropic(base_url=server.url, api_key="unused", max_retries=0, timeout=300)


@pytest.fixture(scope="module")
def oai(server):
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=300)


def sampling(kw):
    """This SDK version types no sampling fields: they travel in extra_body."""
    extra = {"temperature": kw.pop("temperature", 0)}
    for k in ("top_p", "top_k"):
        if k in kw:
            extra[k] = kw.pop(k)
    kw["extra_body"] = extra
    return kw


def create(client, **kw):
    kw.setdefault("model", "claude-test")
    kw.setdefault("max_tokens", 16)
    kw.setdefault("messages", MESSAGES)
    return client.messages.create(**sampling(kw))


def test_message_shape_and_usage(client, reference, oai):
    m = create(client)
    assert m.type == "message" and m.role == "assistant" and m.id.startswith("msg_")
    assert m.model == "claude-test"
    assert len(m.content) == 1 and m.content[0].type == "text"
    assert m.stop_reason in ("end_turn", "max_tokens") and m.stop_sequence is None
    prompt = len(reference.chat_tokens(MESSAGES))
    assert m.usage.input_tokens + m.usage.cache_read_input_tokens == prompt
    assert m.usage.cache_creation_input_tokens == 0
    same = oai.chat.completions.create(model="m", messages=MESSAGES, temperature=0, max_tokens=16)
    assert m.content[0].text == same.choices[0].message.content
    assert m.usage.output_tokens == same.usage.completion_tokens


def test_system_string_and_blocks(client, reference):
    a = create(client, system="Answer in one word.")
    b = create(client, system=[{"type": "text", "text": "Answer in one word."}])
    assert a.content[0].text == b.content[0].text
    full = [{"role": "system", "content": "Answer in one word."}] + MESSAGES
    assert a.usage.input_tokens + a.usage.cache_read_input_tokens == len(reference.chat_tokens(full))


def test_block_content_equals_string_content(client):
    blocks = [{"role": "user", "content": [{"type": "text", "text": "What is the capital of France?"}]}]
    assert create(client, messages=blocks).content[0].text == create(client).content[0].text


def test_max_tokens_stop_reason(client):
    m = create(client, max_tokens=2, messages=[{"role": "user", "content": "Count to one hundred in words."}])
    assert m.stop_reason == "max_tokens" and m.usage.output_tokens == 2


def test_stop_sequences(client):
    text = create(client, max_tokens=24).content[0].text
    stop = text[5:9]
    m = create(client, max_tokens=24, stop_sequences=["zzz-never", stop])
    assert m.stop_reason == "stop_sequence" and m.stop_sequence == stop
    assert m.content[0].text == text[:text.index(stop)]


def test_prefill_continues_the_assistant_turn(client, oai):
    m = create(client, messages=MESSAGES + [{"role": "assistant", "content": "The capital of France is"}],
               max_tokens=8)
    assert m.content[0].text  # continues after the prefill, does not repeat it
    assert not m.content[0].text.startswith("The capital of France is")


def test_sampling_fields_and_metadata_accepted(client):
    m = create(client, temperature=0.7, top_p=0.9, top_k=20, metadata={"user_id": "u1"}, max_tokens=4)
    assert m.stop_reason in ("end_turn", "max_tokens")


def test_stream_with_sdk(client):
    whole = create(client, max_tokens=12)
    with client.messages.stream(**sampling(dict(model="m", max_tokens=12, messages=MESSAGES))) as s:
        text = "".join(s.text_stream)
        final = s.get_final_message()
    assert text == whole.content[0].text == final.content[0].text
    assert final.stop_reason == whole.stop_reason
    assert final.usage.output_tokens == whole.usage.output_tokens
    assert final.usage.input_tokens + final.usage.cache_read_input_tokens == \
        whole.usage.input_tokens + whole.usage.cache_read_input_tokens


def sse_events(raw):
    events = []
    for block in raw.split("\n\n"):
        if not block:
            continue
        lines = block.split("\n")
        assert lines[0].startswith("event: ") and lines[1].startswith("data: "), block
        name, data = lines[0][7:], json.loads(lines[1][6:])
        assert data["type"] == name
        events.append(data)
    return events


def test_raw_event_sequence(server):
    body = {"model": "m", "max_tokens": 6, "messages": MESSAGES, "temperature": 0, "stream": True}
    r = request(server, "POST", "/v1/messages", body, headers={"anthropic-version": "2023-06-01"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    events = sse_events(r.text)
    names = [e["type"] for e in events]
    assert names[:3] == ["message_start", "content_block_start", "ping"]
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert set(names[3:-3]) <= {"content_block_delta"}
    start = events[0]["message"]
    assert start["content"] == [] and start["stop_reason"] is None and start["role"] == "assistant"
    assert events[1]["content_block"] == {"type": "text", "text": ""} and events[1]["index"] == 0
    deltas = [e["delta"] for e in events if e["type"] == "content_block_delta"]
    assert all(d["type"] == "text_delta" and d["text"] for d in deltas)
    md = events[-2]
    assert md["delta"]["stop_reason"] in ("end_turn", "max_tokens") and "stop_sequence" in md["delta"]
    assert md["usage"]["output_tokens"] <= 6


def test_count_tokens(client, reference, server):
    n = client.messages.count_tokens(model="m", messages=MESSAGES, system="Be brief.")
    full = [{"role": "system", "content": "Be brief."}] + MESSAGES
    assert n.input_tokens == len(reference.chat_tokens(full))
    r = request(server, "POST", "/tokenize", {"content": reference.chat_prompt(full)})
    assert len(r.json()["tokens"]) == n.input_tokens


# ---- errors in Anthropic's shape ----

def anthropic_error(server, body, status=400, path="/v1/messages"):
    r = request(server, "POST", path, body)
    assert r.status_code == status, r.text
    j = r.json()
    assert j["type"] == "error" and set(j["error"]) == {"type", "message"}
    return j["error"]


@pytest.mark.parametrize("body,words", [
    ({"messages": MESSAGES}, "max_tokens"),
    ({"max_tokens": 0, "messages": MESSAGES}, "max_tokens"),
    ({"max_tokens": 8}, "messages"),
    ({"max_tokens": 8, "messages": [{"role": "system", "content": "x"}]}, "role"),
    ({"max_tokens": 8, "messages": [{"role": "user"}]}, "content"),
    ({"max_tokens": 8, "messages": [{"role": "user", "content": [{"type": "image", "source": {}}]}]}, "image"),
    ({"max_tokens": 8, "messages": MESSAGES, "temperature": 1.5}, "temperature"),
    ({"max_tokens": 8, "messages": MESSAGES, "stop_sequences": "x"}, "stop_sequences"),
    ({"max_tokens": 8, "messages": MESSAGES, "top_k": "x"}, "top_k"),
    ({"max_tokens": 10 ** 6, "messages": MESSAGES}, "max_tokens"),
])
def test_invalid_requests(server, body, words):
    e = anthropic_error(server, {"model": "m", **body})
    assert e["type"] == "invalid_request_error" and words in e["message"], e


def test_malformed_json(server):
    assert anthropic_error(server, b"{nope")["type"] == "invalid_request_error"


def test_sdk_raises(client):
    with pytest.raises(anthropic.BadRequestError) as e:
        client.messages.create(model="m", max_tokens=8, messages=MESSAGES, extra_body={"temperature": 2})
    assert e.value.status_code == 400
    assert e.value.body["error"]["type"] == "invalid_request_error"


def test_unknown_messages_path_is_anthropic_404(server):
    r = request(server, "POST", "/v1/messages/batches", {})
    assert r.status_code == 404
    assert r.json()["error"]["type"] == "not_found_error"
