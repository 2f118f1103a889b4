#!/usr/bin/env python3
"""Write the tiny random-weight test models under tests/fixtures/models/.

Three architectures, each a small but real-shaped transformer:

  qwen2   attention q/k/v biases, tied output (no output.weight), rope base 1e6
  qwen3   per-head RMSNorm on q and k (attn_q_norm/attn_k_norm), no biases,
          head_dim 64 with n_head*head_dim != n_embd, tied output, rope base 1e6
  llama3  Llama-3 shape: GQA 8 query heads / 2 kv heads, rope base 500000,
          untied output (output.weight present)

Each gets the SmolLM2 gpt2-BPE tokenizer, truncated to its first VOCAB_SIZE
tokens with the merges filtered to those whose two parts and result all stay
in the vocabulary (the merges are in rank order, so this is the exact prefix of
the BPE the full tokenizer would run).  Weights come from
numpy.random.default_rng(seed): matrices N(0, 0.05) (embeddings and the output
head included), q/k/v biases N(0, 0.1), norm weights 1 + N(0, 0.05).  At this
scale each layer's output outweighs the token embedding in the residual stream
and the attention scores have a spread of about 0.6 (softmax far from uniform),
so the logits depend on attention, RoPE and the FFN, not only on the current
token (with 0.02, a tied model's argmax is just the input token).

The F16 file (1-D tensors stay F32, as llama.cpp's converter does) is written
with the `gguf` package; the Q8_0, Q4_0 and Q4_K_M files are made from it with
llama.cpp's own quantizer through llama-cpp-python.  Every file is then loaded
by llama.cpp and evaluated once to check that the logits are finite.

Usage:  .venv/bin/python scripts/make_test_models.py [--out tests/fixtures/models]
        [--smollm2 models/SmolLM2-135M-Instruct.Q4_1.gguf]
"""

import argparse
import ctypes
import os
import sys
from dataclasses import dataclass

import numpy as np
import gguf

VOCAB_SIZE = 2048  # tokens kept from the SmolLM2 vocabulary
CONTEXT_LENGTH = 512
RMS_EPS = 1e-6
WEIGHT_STD = 0.05  # every weight matrix, embeddings and output head included
BIAS_STD = 0.1


@dataclass
class Config:
    name: str  # file stem: <name>-<quant>.gguf
    arch: str  # general.architecture
    seed: int
    n_embd: int
    n_layer: int
    n_head: int
    n_head_kv: int
    head_dim: int
    n_ff: int
    rope_base: float
    qkv_bias: bool
    qk_norm: bool
    tied: bool


CONFIGS = [
    Config("qwen2", "qwen2", 1001, n_embd=256, n_layer=2, n_head=4, n_head_kv=2,
           head_dim=64, n_ff=512, rope_base=1000000.0, qkv_bias=True,
           qk_norm=False, tied=True),
    Config("qwen3", "qwen3", 1002, n_embd=256, n_layer=2, n_head=8, n_head_kv=4,
           head_dim=64, n_ff=512, rope_base=1000000.0, qkv_bias=False,
           qk_norm=True, tied=True),
    Config("llama3", "llama", 1003, n_embd=256, n_layer=2, n_head=8, n_head_kv=2,
           head_dim=32, n_ff=512, rope_base=500000.0, qkv_bias=False,
           qk_norm=False, tied=False),
]

# quant file suffix -> llama_ftype name in llama_cpp
QUANTS = [
    ("q8_0", "LLAMA_FTYPE_MOSTLY_Q8_0"),
    ("q4_0", "LLAMA_FTYPE_MOSTLY_Q4_0"),
    ("q4_k_m", "LLAMA_FTYPE_MOSTLY_Q4_K_M"),
]


def field_strings(reader, key):
    field = reader.fields[key]
    return [bytes(field.parts[i]).decode("utf-8") for i in field.data]


def field_scalar(reader, key):
    field = reader.fields[key]
    return field.parts[field.data[0]][0].item()


def load_tokenizer(path, n_vocab):
    """The SmolLM2 tokenizer metadata, truncated to the first n_vocab tokens."""
    reader = gguf.GGUFReader(path)
    tokens = field_strings(reader, "tokenizer.ggml.tokens")[:n_vocab]
    types_field = reader.fields["tokenizer.ggml.token_type"]
    types = [int(types_field.parts[i][0]) for i in types_field.data][:n_vocab]
    kept = set(tokens)
    merges = []
    for merge in field_strings(reader, "tokenizer.ggml.merges"):
        left, right = merge.split(" ", 1)
        if left in kept and right in kept and left + right in kept:
            merges.append(merge)
    ids = {key: field_scalar(reader, "tokenizer.ggml." + key)
           for key in ("bos_token_id", "eos_token_id", "unknown_token_id",
                       "padding_token_id")}
    for key, value in ids.items():
        if value >= n_vocab:
            sys.exit(f"{path}: {key} {value} is outside the kept vocab {n_vocab}")
    return {
        "model": reader.fields["tokenizer.ggml.model"].contents(),
        "pre": reader.fields["tokenizer.ggml.pre"].contents(),
        "tokens": tokens,
        "types": types,
        "merges": merges,
        "ids": ids,
        "add_bos": bool(field_scalar(reader, "tokenizer.ggml.add_bos_token")),
        "chat_template": reader.fields["tokenizer.chat_template"].contents(),
    }


def write_f16(cfg, tok, path):
    rng = np.random.default_rng(cfg.seed)
    n_vocab = len(tok["tokens"])
    q_dim = cfg.n_head * cfg.head_dim
    kv_dim = cfg.n_head_kv * cfg.head_dim

    def matrix(rows, cols):  # numpy (rows, cols) = ggml ne (cols, rows)
        return rng.normal(0.0, WEIGHT_STD, size=(rows, cols)).astype(np.float16)

    def norm(n):
        return (1.0 + rng.normal(0.0, 0.05, size=n)).astype(np.float32)

    def bias(n):
        return rng.normal(0.0, BIAS_STD, size=n).astype(np.float32)

    w = gguf.GGUFWriter(path, cfg.arch)
    w.add_name(f"lamina-test-{cfg.name}")
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    w.add_context_length(CONTEXT_LENGTH)
    w.add_embedding_length(cfg.n_embd)
    w.add_block_count(cfg.n_layer)
    w.add_feed_forward_length(cfg.n_ff)
    w.add_head_count(cfg.n_head)
    w.add_head_count_kv(cfg.n_head_kv)
    w.add_key_length(cfg.head_dim)
    w.add_value_length(cfg.head_dim)
    w.add_rope_dimension_count(cfg.head_dim)
    w.add_rope_freq_base(cfg.rope_base)
    w.add_layer_norm_rms_eps(RMS_EPS)
    w.add_vocab_size(n_vocab)

    w.add_tokenizer_model(tok["model"])
    w.add_tokenizer_pre(tok["pre"])
    w.add_token_list(tok["tokens"])
    w.add_token_types(tok["types"])
    w.add_token_merges(tok["merges"])
    w.add_bos_token_id(tok["ids"]["bos_token_id"])
    w.add_eos_token_id(tok["ids"]["eos_token_id"])
    w.add_unk_token_id(tok["ids"]["unknown_token_id"])
    w.add_pad_token_id(tok["ids"]["padding_token_id"])
    w.add_add_bos_token(tok["add_bos"])
    w.add_add_space_prefix(False)
    w.add_chat_template(tok["chat_template"])

    w.add_tensor("token_embd.weight", matrix(n_vocab, cfg.n_embd))
    for layer in range(cfg.n_layer):
        p = f"blk.{layer}."
        w.add_tensor(p + "attn_norm.weight", norm(cfg.n_embd))
        w.add_tensor(p + "attn_q.weight", matrix(q_dim, cfg.n_embd))
        w.add_tensor(p + "attn_k.weight", matrix(kv_dim, cfg.n_embd))
        w.add_tensor(p + "attn_v.weight", matrix(kv_dim, cfg.n_embd))
        if cfg.qkv_bias:
            w.add_tensor(p + "attn_q.bias", bias(q_dim))
            w.add_tensor(p + "attn_k.bias", bias(kv_dim))
            w.add_tensor(p + "attn_v.bias", bias(kv_dim))
        if cfg.qk_norm:
            w.add_tensor(p + "attn_q_norm.weight", norm(cfg.head_dim))
            w.add_tensor(p + "attn_k_norm.weight", norm(cfg.head_dim))
        w.add_tensor(p + "attn_output.weight", matrix(cfg.n_embd, q_dim))
        w.add_tensor(p + "ffn_norm.weight", norm(cfg.n_embd))
        w.add_tensor(p + "ffn_gate.weight", matrix(cfg.n_ff, cfg.n_embd))
        w.add_tensor(p + "ffn_up.weight", matrix(cfg.n_ff, cfg.n_embd))
        w.add_tensor(p + "ffn_down.weight", matrix(cfg.n_embd, cfg.n_ff))
    w.add_tensor("output_norm.weight", norm(cfg.n_embd))
    if not cfg.tied:
        w.add_tensor("output.weight", matrix(n_vocab, cfg.n_embd))

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def quantize(src, dst, ftype_name):
    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, ftype_name)
    params.nthread = 2
    rc = llama_cpp.llama_model_quantize(src.encode(), dst.encode(),
                                        ctypes.byref(params))
    if rc != 0:
        sys.exit(f"llama_model_quantize {src} -> {dst} ({ftype_name}) failed: {rc}")


def check_loads(path, n_vocab):
    """llama.cpp loads the file and gives finite, non-constant logits."""
    from llama_cpp import Llama

    llm = Llama(model_path=path, n_ctx=64, n_threads=2, logits_all=True,
                verbose=False)
    if llm.n_vocab() != n_vocab:
        sys.exit(f"{path}: llama.cpp sees n_vocab {llm.n_vocab()}, expected {n_vocab}")
    tokens = [1, 100, 500, 1000, 2000 % n_vocab, 42, 7, 300]
    llm.eval(tokens)
    logits = np.asarray(llm.scores[: len(tokens)], dtype=np.float32)
    if not np.all(np.isfinite(logits)) or float(logits.std()) < 1e-3:
        sys.exit(f"{path}: degenerate logits (std {logits.std()})")
    spread = float(np.mean(logits.max(axis=1) - np.median(logits, axis=1)))
    print(f"  {os.path.basename(path)}: ok, logit std {logits.std():.3f}, "
          f"max-median {spread:.3f}")
    llm.close()


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=os.path.join(root, "tests/fixtures/models"))
    parser.add_argument("--smollm2",
                        default=os.path.join(root, "models/SmolLM2-135M-Instruct.Q4_1.gguf"))
    args = parser.parse_args()

    os.makedirs(args.out, exist_ok=True)
    tok = load_tokenizer(args.smollm2, VOCAB_SIZE)
    print(f"tokenizer: {len(tok['tokens'])} tokens, {len(tok['merges'])} merges kept")
    for cfg in CONFIGS:
        f16 = os.path.join(args.out, f"{cfg.name}-f16.gguf")
        write_f16(cfg, tok, f16)
        paths = [f16]
        for suffix, ftype_name in QUANTS:
            dst = os.path.join(args.out, f"{cfg.name}-{suffix}.gguf")
            quantize(f16, dst, ftype_name)
            paths.append(dst)
        for path in paths:
            check_loads(path, VOCAB_SIZE)


if __name__ == "__main__":
    main()
