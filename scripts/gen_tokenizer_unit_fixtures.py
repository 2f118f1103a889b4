#!/usr/bin/env python3
"""Regenerate tests/fixtures/tokenizer_unit/*.json, the expectations of
tests/unit/test_tokenizer.c, by running llama.cpp itself (llama-cpp-python,
vocab only) on the real models:

  - token ids of hand-picked tricky strings (as bytes: some are not UTF-8),
    with and without BOS, with and without special-token parsing;
  - the vocab's BOS/EOS/EOT ids, add_bos, and the end-of-generation set;
  - token_to_piece of a sample of ids, special tokens rendered and not;
  - for the byte-level BPE model, the same vocab and merges under other
    tokenizer.ggml.pre values (a metadata-only copy of the GGUF with the pre
    key replaced), so every pre-tokenizer regex set is checked against
    llama.cpp, not only the model's own;
  - a tiny synthetic SentencePiece vocab (synthetic-spm.json holds the vocab
    itself) whose scores tie and whose user-defined tokens overlap, to pin
    down merge tie-breaking and the longest-first special-token partition.

Run from the repository root with the project venv:
    .venv/bin/python scripts/gen_tokenizer_unit_fixtures.py
"""
import ctypes
import json
import os
import sys
import tempfile

import gguf
import llama_cpp
from llama_cpp import Llama

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_DIR = os.path.join(ROOT, "tests", "fixtures", "tokenizer_unit")
MODELS = {
    "smollm2-135m": "models/SmolLM2-135M-Instruct.Q4_1.gguf",
    "gemma3-270m": "models/gemma-3-270m-q4_k_m.gguf",
}

# Strings that exercise every rule of both tokenizers. Bytes, because some
# are deliberately not valid UTF-8.
COMMON = [
    "", " ", "  ", "   ", "\n", "\n\n", "\n\n\n", "\t", "\t\t", " \n ", "\r\n", "a\r\nb", "a  b", "a   b\tc",
    "trailing space ", "trailing spaces   ", " leading", "  two leading", "line1\n\nline2\n\n\nline3",
    "Hello world", "Hello, World!", "ALL CAPS TEXT", "CamelCaseWord snake_case_word",
    "it's", "IT'S", "we'll've", "don't", "I'm", "they're", "you'd", "'s", "O'Neil", "rock 'n' roll", "She'S",
    "1", "12", "123", "1234", "12345", "3.14159", "1,000,000", "x1y22z333w4444v55555", "2024-01-15",
    "\u0663\u0664\u0665", "\u2460\u2461 \u00bd \u00be", "x\u00b2 + y\u00b2",
    "\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8", "\u4e2d\u6587\u5b57\u7b26", "\ud55c\uad6d\uc5b4 \ud14d\uc2a4\ud2b8",
    "\u0645\u0631\u062d\u0628\u0627 \u0628\u0627\u0644\u0639\u0627\u0644\u0645", "\u05e9\u05dc\u05d5\u05dd",
    "\u041f\u0440\u0438\u0432\u0435\u0442, \u043c\u0438\u0440", "\u0395\u03bb\u03bb\u03b7\u03bd\u03b9\u03ba\u03ac",
    "\U0001f642", "\U0001f468\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466", "\U0001f3f3\ufe0f\u200d\U0001f308",
    "\U0001f44d\U0001f3fd ok", "e\u0301", "a\u0308\u0301", "Z\u0324\u0354\u0367\u0311\u0313a\u0308\u0356\u032d",
    "\u00a0nbsp\u00a0", "\u3000ideographic\u3000space", "zero\u200bwidth", "\ufeffBOM", "line\u2028sep",
    "next\u0085line", "\u017f long s 's '\u017f", "\u01c4 \u01c5 \u01c6", "\ufb01 ligature", "\u2581already\u2581escaped",
    "def f(x):\n    return x**2\n", "if (a && b) { c++; }", "<div class=\"x\">&amp;</div>",
    "http://example.com/path?q=1&r=2#frag", "$100 + 5% = ~105^2 | `code`", "...!!!???", "--- *** ___",
    "a" * 300, " " * 100, "\n" * 40, "\t" * 20, "ab " * 50, "\U0001fab5\U0001fa75 \U00031350 \u0cf3",
]
COMMON_BYTES = [
    b"\xff", b"\xc3", b"\xc3(", b"\xe2\x82", b"\xed\xa0\x80", b"\xc0\xaf", b"abc\x80def", b"\xf0\x9f\x98",
    b"\xf0\x9f\x98 x", b"\xfe\xff\xfe", b"ok\xe2\x82\xacok", b"\x00\x01\x02 nul",
]
SPECIAL = {
    "smollm2-135m": [
        "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n", "<|im_start|><|im_start|>",
        "x<|im_end|>y", "<|im_start", "<|endoftext|>", " <|im_end|> ", "<repo_name>a<file_sep>b", "<|im_end|>\n\n",
    ],
    "gemma3-270m": [
        "<start_of_turn>user\nHi there<end_of_turn>\n<start_of_turn>model\n", "<bos>", "<eos>", "<bos><bos>hi",
        "x<end_of_turn>y", "<start_of_turn", "<unused0>", "<mask>", " <end_of_turn> ", "<start_of_image>",
        "a\n\n\n\n\nb", "  \n  ", "\t\t\tx",
    ],
}
# strings for the tokenizer.ggml.pre variants of the BPE vocab
PRE_STRINGS = [
    "Hello world", "it's IT'S we'll", "1 12 123 1234 12345 123456", "a  b   c\t\td", "line\n\n  next\r\n",
    "trailing  ", "\u65e5\u672c\u8a9e \u4e2d\u6587 \ud55c\uad6d\uc5b4", "\u0645\u0631\u062d\u0628\u0627",
    "\U0001f468\u200d\U0001f469\u200d\U0001f467", "e\u0301 a\u0308", "CamelCase ALLCAPS lowerUpper",
    "x=y+z; $a|b^c~d`e", "\u3000\u00a0 spaces", "\uff01\uff1f\u3002\uff0c\u3001 ! ? . ,", "IMGIMGABZ <sentinel:12>",
    "def f(x):\n    return x**2\n", "\u0663\u0664 \u2460 \u00bd", "'s 'ſ 'S", "a/b//c\n/d", "\u2581x",
]
PRE_VARIANTS = [
    None, "default", "llama3", "llama-bpe", "qwen2", "qwen35", "gpt-2", "deepseek-llm", "deepseek-coder", "deepseek-v3",
    "falcon", "tekken", "gpt-4o", "poro-chat", "viking", "chameleon", "bailingmoe", "exaone-moe", "seed-coder",
    "jais-2", "minicpm5", "chatglm-bpe", "dbrx", "no-such-pre",
]


def load(path):
    return Llama(model_path=path, vocab_only=True, verbose=False)


def vocab_of(m):
    return llama_cpp.llama_model_get_vocab(m.model)


def encode_cases(m, texts):
    cases = []
    for t in texts:
        b = t if isinstance(t, bytes) else t.encode("utf-8")
        for add_bos, special in ((True, True), (False, True), (True, False)):
            cases.append({
                "text": b.decode("utf-8", "replace"),
                "hex": b.hex(),
                "add_bos": add_bos,
                "parse_special": special,
                "ids": m.tokenize(b, add_bos=add_bos, special=special),
            })
    return cases


def piece(v, token, special):
    buf = ctypes.create_string_buffer(4096)
    n = llama_cpp.llama_token_to_piece(v, token, buf, len(buf), 0, special)
    assert n >= 0
    return buf.raw[:n].hex()


def vocab_facts(m):
    v = vocab_of(m)
    n = llama_cpp.llama_vocab_n_tokens(v)
    eog = [i for i in range(n) if llama_cpp.llama_vocab_is_eog(v, i)]
    control = [i for i in range(n) if llama_cpp.llama_vocab_is_control(v, i)]
    sample = sorted(set(list(range(0, 300)) + list(range(0, n, 997)) + control[:64] + eog + [n - 1]))
    return {
        "n_tokens": n,
        "bos": llama_cpp.llama_vocab_bos(v),
        "eos": llama_cpp.llama_vocab_eos(v),
        "eot": llama_cpp.llama_vocab_eot(v),
        "add_bos": bool(llama_cpp.llama_vocab_get_add_bos(v)),
        "add_eos": bool(llama_cpp.llama_vocab_get_add_eos(v)),
        "eog": eog,
    }, [{"id": i, "special": piece(v, i, True), "plain": piece(v, i, False)} for i in sample]


def copy_with_pre(src, dst, pre):
    """Writes a tensor-less copy of SRC's metadata with tokenizer.ggml.pre set to PRE (or absent)."""
    reader = gguf.GGUFReader(src)
    arch = reader.fields["general.architecture"].contents()
    writer = gguf.GGUFWriter(dst, arch)
    for key, field in reader.fields.items():
        if key.startswith("GGUF.") or key in ("general.architecture", "tokenizer.ggml.pre"):
            continue
        vtype = field.types[0]
        if vtype == gguf.GGUFValueType.ARRAY:
            writer.add_array(key, field.contents())
        else:
            writer.add_key_value(key, field.contents(), vtype)
    if pre is not None:
        writer.add_string("tokenizer.ggml.pre", pre)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.close()


def pre_variants(src):
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for pre in PRE_VARIANTS:
            path = os.path.join(tmp, "vocab.gguf")
            copy_with_pre(src, path, pre)
            try:
                m = load(path)
            except ValueError:
                # llama.cpp refuses an unknown pre; lamina falls back to the
                # default patterns (with a warning), checked against pre=None
                out.append({"pre": pre, "llama_cpp_rejects": True})
                continue
            v = vocab_of(m)
            cases = [{"text": s, "hex": s.encode().hex(), "ids": m.tokenize(s.encode(), add_bos=True, special=True)}
                     for s in PRE_STRINGS]
            out.append({"pre": pre, "bos": llama_cpp.llama_vocab_bos(v),
                        "add_bos": bool(llama_cpp.llama_vocab_get_add_bos(v)), "cases": cases})
            del m
    return out


SYNTHETIC_TOKENS = (["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)] +
                    ["\u2581", "a", "b", "c", "ab", "bc", "abc", "\u2581a", "\u2581ab", "X", "XA", "ABC", "A", "B",
                     "C", "x" * 300, "\u00e9", "\u2581\u2581", "<tag>", "<ta"])
SYNTHETIC_STRINGS = [
    "", "a", "abc", "abcabc", "ab bc", "bcab", "XABC", "XAXA", "ABCXA", "a b  c", " a", "  ", "\u00e9bc", "\u00fc",
    "\u65e5", "<s>a</s>", "a<s>", "<tag><ta", "<ta<tag>", "x" * 300, "x" * 301, "\u2581a",
]


def synthetic_spm():
    """A small SentencePiece vocab: ties in score (ab/bc), a merge chain,
    byte fallback, overlapping user-defined tokens (XA, ABC), a 300-byte token."""
    tokens = SYNTHETIC_TOKENS
    types = [2, 3, 3] + [6] * 256 + [1] * (len(tokens) - 259)
    for t in ("XA", "ABC", "<tag>"):
        types[tokens.index(t)] = 4
    scores = [0.0] * len(tokens)
    for t, score in {"ab": -1.0, "bc": -1.0, "abc": -0.5, "\u2581a": -2.0, "\u2581ab": -1.5, "\u2581\u2581": -3.0}.items():
        scores[tokens.index(t)] = score
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "spm.gguf")
        w = gguf.GGUFWriter(path, "llama")
        w.add_tokenizer_model("llama")
        w.add_token_list(tokens)
        w.add_token_scores(scores)
        w.add_token_types(types)
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.close()
        m = load(path)
        cases = encode_cases(m, SYNTHETIC_STRINGS)
        del m
    return {"generated_by": "scripts/gen_tokenizer_unit_fixtures.py", "llama_cpp_python": llama_cpp.__version__,
            "tokens": tokens, "scores": scores, "token_types": types, "encode": cases}


def main():
    os.chdir(ROOT)
    os.makedirs(OUT_DIR, exist_ok=True)
    for name, path in MODELS.items():
        m = load(path)
        texts = COMMON + COMMON_BYTES + SPECIAL[name]
        facts, pieces = vocab_facts(m)
        fixture = {
            "generated_by": "scripts/gen_tokenizer_unit_fixtures.py",
            "llama_cpp_python": llama_cpp.__version__,
            "model": path,
            "vocab": facts,
            "encode": encode_cases(m, texts),
            "pieces": pieces,
        }
        if name == "smollm2-135m":
            fixture["pre_variants"] = pre_variants(path)
        out = os.path.join(OUT_DIR, name + ".json")
        with open(out, "w", encoding="utf-8") as f:
            json.dump(fixture, f, ensure_ascii=False, separators=(",", ":"))
            f.write("\n")
        print(f"{out}: {len(fixture['encode'])} encode cases, {len(pieces)} pieces", file=sys.stderr)
    out = os.path.join(OUT_DIR, "synthetic-spm.json")
    with open(out, "w", encoding="utf-8") as f:
        json.dump(synthetic_spm(), f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")


if __name__ == "__main__":
    main()
