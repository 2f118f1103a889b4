"""`lamina tokenize` on the real models, compared with llama.cpp's tokenizer
(llama-cpp-python, vocab only), plus its output formats, the default model
and its errors. Run from the repository root; the binary is build/lamina
(override with LAMINA_BIN)."""

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LAMINA = Path(os.environ.get("LAMINA_BIN", REPO / "build" / "lamina")).resolve()
SMOLLM = REPO / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"
GEMMA = REPO / "models" / "gemma-3-270m-q4_k_m.gguf"
MODELS = [pytest.param(p, id=p.name) for p in (SMOLLM, GEMMA)]

TEXTS = [
    "Hello world",
    "it's 12345 apples, we'll   see\n\n\tok ",
    "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n",
    "<start_of_turn>user\nWhat is 2+2?<end_of_turn>\n<start_of_turn>model\n",
    "日本語 العربية 👨‍👩‍👧 e\u0301",
    "  leading and trailing  ",
]


def run(*args, env=None):
    if not LAMINA.exists():
        pytest.fail(f"{LAMINA} not built (scripts/setup builds it)")
    full_env = dict(os.environ)
    full_env.pop("LAMINA_MODEL", None)
    full_env.update(env or {})
    return subprocess.run([str(LAMINA), "tokenize", *map(str, args)], cwd=REPO, env=full_env,
                          capture_output=True, timeout=120)


def need(path):
    if not path.exists():
        pytest.fail(f"{path} not present (scripts/setup installs it)")


@pytest.fixture(scope="module")
def llama():
    """llama.cpp's tokenizer for a model path (loaded once, closed at the end)."""
    import llama_cpp  # installed by scripts/setup
    loaded = {}

    def get(path):
        if path not in loaded:
            loaded[path] = llama_cpp.Llama(str(path), vocab_only=True, verbose=False)
        return loaded[path]

    yield get
    for m in loaded.values():
        m.close()


def json_ids(result):
    assert result.returncode == 0, result.stderr.decode()
    lines = result.stdout.decode().splitlines()
    assert len(lines) == 1, "--json prints one line"
    return json.loads(lines[0])


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("text", TEXTS)
def test_json_ids_match_llama_cpp(model, text, llama):
    need(model)
    ref = llama(model)
    assert json_ids(run(model, "--json", text)) == ref.tokenize(text.encode(), add_bos=True, special=True)
    assert json_ids(run(model, "--json", "--no-bos", text)) == ref.tokenize(text.encode(), add_bos=False,
                                                                            special=True)


@pytest.mark.parametrize("model", MODELS)
def test_lines_show_id_and_escaped_piece(model):
    need(model)
    text = "<|im_start|>Hi\n\tthere 'x' \\" if model == SMOLLM else "<start_of_turn>Hi\n\tthere 'x' \\"
    ids = json_ids(run(model, "--json", text))
    out = run(model, text)
    assert out.returncode == 0, out.stderr.decode()
    lines = out.stdout.decode().splitlines()
    assert len(lines) == len(ids)
    parsed = [re.fullmatch(r"\s*(\d+) -> '(.*)'", line) for line in lines]
    assert all(parsed), lines
    assert [int(m.group(1)) for m in parsed] == ids
    pieces = "".join(m.group(2) for m in parsed)
    special = "<|im_start|>" if model == SMOLLM else "<start_of_turn>"
    assert special in pieces, "special tokens are matched and rendered"
    assert "Hi\\n\\tthere \\'x\\' \\\\" in pieces, "control characters, quotes and backslashes are escaped"


def test_default_model_when_first_argument_is_text():
    need(SMOLLM)
    assert json_ids(run("--json", "Hello world")) == json_ids(run(SMOLLM, "--json", "Hello world"))
    need(GEMMA)
    assert json_ids(run("--json", "Hello world", env={"LAMINA_MODEL": str(GEMMA)})) == \
        json_ids(run(GEMMA, "--json", "Hello world"))


def test_text_that_looks_like_an_option_after_double_dash(llama):
    need(SMOLLM)
    assert json_ids(run(SMOLLM, "--json", "--", "--json")) == llama(SMOLLM).tokenize(b"--json", add_bos=True,
                                                                                  special=True)


def test_empty_text():
    need(GEMMA)
    assert json_ids(run(GEMMA, "--json", "")) == [2], "Gemma adds BOS to an empty text"
    assert json_ids(run(GEMMA, "--json", "--no-bos", "")) == []


def test_missing_model_file(tmp_path):
    r = run(tmp_path / "nope.gguf", "hello")
    assert r.returncode == 1
    assert "nope.gguf" in r.stderr.decode()


def test_not_a_gguf_file(tmp_path):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"this is not a model" * 10)
    r = run(bad, "hello")
    assert r.returncode == 1
    assert "bad.gguf" in r.stderr.decode()


def test_gguf_without_tokenizer(tmp_path):
    import gguf  # installed by scripts/setup
    path = tmp_path / "novocab.gguf"
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_string("general.name", "no vocab")
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.close()
    r = run(path, "hello")
    assert r.returncode == 1
    err = r.stderr.decode()
    assert "tokenizer.ggml.model" in err and "novocab.gguf" in err


def test_usage_errors():
    need(SMOLLM)
    assert run().returncode == 2
    assert run(SMOLLM).returncode == 2, "a model but no text"
    assert run(SMOLLM, "--bogus", "x").returncode == 2
    assert run(SMOLLM, "a", "b").returncode == 2, "too many arguments"


def test_partial_characters_are_shown_as_byte_escapes(llama):
    need(SMOLLM)
    # byte-level BPE splits this emoji's four bytes over tokens
    out = run(SMOLLM, "--no-bos", "\U0001f642")
    assert out.returncode == 0, out.stderr.decode()
    lines = out.stdout.decode().splitlines()
    assert len(lines) == len(llama(SMOLLM).tokenize("\U0001f642".encode(), add_bos=False, special=True)) > 1
    escaped = "".join(re.fullmatch(r"\s*\d+ -> '(.*)'", line).group(1) for line in lines)
    assert escaped == "\\xf0\\x9f\\x99\\x82"
