"""POST /v1/completions (legacy) through the official openai SDK: prompt as
a string, a list of strings, token ids and lists of token ids; echo; the
legacy logprobs shape; n; streaming; the clear refusals (suffix, best_of,
echo with logprobs). Greedy text is compared with `lamina generate` on the
same prompt; token ids with llama.cpp's tokenizer."""

import subprocess

import openai
import pytest

from conftest import DEFAULT_MODEL, LAMINA, REPO, request

PROMPT = "Once upon a time"


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=300)


def complete(client, prompt=PROMPT, **kw):
    kw.setdefault("max_tokens", 16)
    kw.setdefault("temperature", 0)
    return client.completions.create(model="m", prompt=prompt, **kw)


def test_greedy_equals_lamina_generate(client):
    r = complete(client, max_tokens=24)
    out = subprocess.run([str(LAMINA), "generate", str(DEFAULT_MODEL), "-p", PROMPT, "-n", "24", "--temp", "0"],
                         cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout[:-1] == r.choices[0].text
    assert r.object == "text_completion" and r.id.startswith("cmpl-")
    assert r.system_fingerprint.startswith("fp_")


def test_usage_matches_reference_tokens(client, reference):
    r = complete(client)
    assert r.usage.prompt_tokens == len(reference.tokenize(PROMPT))
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


def test_token_id_prompt_equals_text_prompt(client, reference):
    ids = reference.tokenize(PROMPT)
    assert complete(client, prompt=ids).choices[0].text == complete(client).choices[0].text


def test_list_of_prompts_and_n(client):
    prompts = [PROMPT, "The sky is"]
    r = complete(client, prompt=prompts, n=2, max_tokens=6)
    assert [c.index for c in r.choices] == [0, 1, 2, 3]
    first = complete(client, prompt=prompts[0], max_tokens=6).choices[0].text
    second = complete(client, prompt=prompts[1], max_tokens=6).choices[0].text
    assert [c.text for c in r.choices] == [first, first, second, second]


def test_list_of_token_lists(client, reference):
    r = complete(client, prompt=[reference.tokenize(PROMPT), reference.tokenize("The sky is")], max_tokens=4)
    assert len(r.choices) == 2


def test_echo(client, reference):
    plain = complete(client).choices[0].text
    assert complete(client, echo=True).choices[0].text == PROMPT + plain
    ids = reference.tokenize(PROMPT)
    assert complete(client, prompt=ids, echo=True).choices[0].text == PROMPT + plain


def test_stream_equals_non_stream(client):
    whole = complete(client, max_tokens=12)
    full = whole.choices[0]
    chunks = list(complete(client, max_tokens=12, stream=True, stream_options={"include_usage": True}))
    text = "".join(c.choices[0].text for c in chunks if c.choices)
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert text == full.text and finish == [full.finish_reason]
    assert chunks[-1].choices == []
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens
    assert chunks[-1].usage.prompt_tokens == whole.usage.prompt_tokens


def test_stream_echo(client):
    plain = complete(client, max_tokens=6).choices[0].text
    chunks = list(complete(client, max_tokens=6, stream=True, echo=True))
    assert "".join(c.choices[0].text for c in chunks) == PROMPT + plain


def test_legacy_logprobs_shape(client):
    r = complete(client, max_tokens=8, logprobs=3)
    c = r.choices[0]
    lp = c.logprobs
    n = len(lp.tokens)
    assert n >= 1 and len(lp.token_logprobs) == n and len(lp.top_logprobs) == n and len(lp.text_offset) == n
    assert "".join(lp.tokens) == c.text
    assert all(x <= 0 for x in lp.token_logprobs)
    for tok, logprob, top in zip(lp.tokens, lp.token_logprobs, lp.top_logprobs):
        assert tok in top and abs(top[tok] - logprob) < 1e-5  # the sampled token is always listed
        assert 1 <= len(top) <= 4
        assert max(top.values()) == pytest.approx(logprob)  # greedy takes the most likely one
    offsets = lp.text_offset
    assert offsets[0] == 0 and offsets == sorted(offsets)
    assert [c.text[o:o + len(t)] for o, t in zip(offsets, lp.tokens)] == lp.tokens


def test_logprobs_zero_lists_the_sampled_token(client):
    lp = complete(client, max_tokens=3, logprobs=0).choices[0].logprobs
    assert all(len(top) == 1 for top in lp.top_logprobs)


def test_stop_and_length(client):
    text = complete(client, max_tokens=24).choices[0].text
    words = text.split()
    stop = " " + words[3]
    r = complete(client, max_tokens=24, stop=stop)
    assert r.choices[0].text == text[:text.index(stop)] and r.choices[0].finish_reason == "stop"
    r = complete(client, max_tokens=2)
    assert r.choices[0].finish_reason == "length" and r.usage.completion_tokens == 2


def error(server, body, status=400):
    r = request(server, "POST", "/v1/completions", body)
    assert r.status_code == status, r.text
    return r.json()["error"]


@pytest.mark.parametrize("body,param,words", [
    ({"prompt": PROMPT, "suffix": "The end."}, "suffix", "not supported"),
    ({"prompt": PROMPT, "best_of": 3}, "best_of", "not supported"),
    ({"prompt": PROMPT, "echo": True, "logprobs": 1}, "echo", "logprobs"),
    ({}, "prompt", "required"),
    ({"prompt": []}, "prompt", None),
    ({"prompt": [1, "a"]}, "prompt", None),
    ({"prompt": [[1, 2], "a", 5]}, "prompt", "prompt[2]"),
    ({"prompt": [10 ** 9]}, "prompt", "token id"),
    ({"prompt": [-1]}, "prompt", "token id"),
    ({"prompt": PROMPT, "logprobs": 21}, "logprobs", None),
    ({"prompt": PROMPT, "logprobs": True}, "logprobs", "integer"),
    ({"prompt": PROMPT, "echo": "yes"}, "echo", "boolean"),
    ({"prompt": PROMPT, "max_tokens": 10 ** 6}, "max_tokens", "context"),
    ({"prompt": [PROMPT] * 65}, "prompt", "64"),
    ({"prompt": [PROMPT] * 10, "n": 20}, "n", "choices"),
])
def test_invalid_requests(server, body, param, words):
    e = error(server, {"model": "m", **body})
    assert e["param"] == param, e
    if words:
        assert words in e["message"], e


def test_empty_prompt(server):
    e = error(server, {"model": "m", "prompt": ""})
    assert e["param"] == "prompt" and "empty" in e["message"]
