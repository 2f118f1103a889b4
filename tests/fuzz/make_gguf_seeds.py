#!/usr/bin/env python3
"""Write the seed corpus of fuzz_gguf: small GGUF files (a few KiB each)
that the reader accepts, so that mutations start from valid structure.

  all_types.gguf     one key of every value type, arrays of every element
                     type (strings and arrays of arrays included), a custom
                     general.alignment, tensors of several types and ranks
  v2.gguf            the same file with version 2 in its header
  micro-<arch>.gguf  a whole model that lm_model_from_gguf accepts (llama,
                     qwen2, qwen3, gemma3): every hyperparameter key, every
                     tensor at a tiny shape (n_embd 8), and a tokenizer:
                     byte-level BPE (gpt2, 256 byte tokens + merges +
                     control tokens) or SentencePiece (llama: byte-fallback
                     <0xNN> tokens, scores, types)

Usage: .venv/bin/python tests/fuzz/make_gguf_seeds.py [--out tests/fuzz/corpus/gguf]
"""

import argparse
import os

import numpy as np
import gguf

N_EMBD, N_HEAD, N_HEAD_KV, N_FF, N_LAYER = 8, 2, 1, 16, 1


def gpt2_bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


def bpe_tokenizer(w):
    m = gpt2_bytes_to_unicode()
    tokens = [m[b] for b in range(256)]
    merges = ["Ġ t", "h e", "Ġt he", "i n", "Ġ a", "e r"]
    for mg in merges:
        tokens.append(mg.replace(" ", ""))
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    types = [1] * len(tokens) + [3] * len(specials)
    tokens += specials
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("smollm")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_bos_token_id(len(tokens) - 2)
    w.add_eos_token_id(len(tokens) - 1)
    w.add_add_bos_token(False)
    w.add_chat_template("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}")
    return len(tokens)


def spm_tokenizer(w):
    tokens = ["<pad>", "<eos>", "<bos>", "<unk>"] + [f"<0x{b:02X}>" for b in range(256)]
    types = [3, 3, 3, 2] + [6] * 256
    pieces = ["▁", "a", "b", "▁a", "▁the", "e", "h", "t", "th", "he"]
    tokens += pieces
    types += [1] * len(pieces)
    scores = [0.0] * 260 + [-float(i) for i in range(len(pieces))]
    w.add_tokenizer_model("llama")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_scores(scores)
    w.add_bos_token_id(2)
    w.add_eos_token_id(1)
    w.add_unk_token_id(3)
    w.add_pad_token_id(0)
    w.add_add_bos_token(True)
    w.add_add_space_prefix(False)
    return len(tokens)


def micro_model(path, arch):
    rng = np.random.default_rng(1)
    w = gguf.GGUFWriter(path, arch)
    head_dim = N_EMBD // N_HEAD
    w.add_context_length(64)
    w.add_embedding_length(N_EMBD)
    w.add_block_count(N_LAYER)
    w.add_feed_forward_length(N_FF)
    w.add_head_count(N_HEAD)
    w.add_head_count_kv(N_HEAD_KV)
    w.add_key_length(head_dim)
    w.add_value_length(head_dim)
    w.add_rope_dimension_count(head_dim)
    w.add_rope_freq_base(10000.0)
    w.add_layer_norm_rms_eps(1e-6)
    if arch == "gemma3":
        w.add_sliding_window(32)
    n_vocab = spm_tokenizer(w) if arch == "gemma3" else bpe_tokenizer(w)

    def t(*shape):  # numpy (rows, cols) = ggml ne (cols, rows)
        return rng.normal(0, 0.05, shape).astype(np.float32)

    q_dim, kv_dim = N_HEAD * head_dim, N_HEAD_KV * head_dim
    w.add_tensor("token_embd.weight", t(n_vocab, N_EMBD).astype(np.float16))
    for il in range(N_LAYER):
        p = f"blk.{il}."
        w.add_tensor(p + "attn_norm.weight", t(N_EMBD))
        w.add_tensor(p + "attn_q.weight", t(q_dim, N_EMBD))
        w.add_tensor(p + "attn_k.weight", t(kv_dim, N_EMBD))
        w.add_tensor(p + "attn_v.weight", t(kv_dim, N_EMBD))
        if arch == "qwen2":
            w.add_tensor(p + "attn_q.bias", t(q_dim))
            w.add_tensor(p + "attn_k.bias", t(kv_dim))
            w.add_tensor(p + "attn_v.bias", t(kv_dim))
        if arch in ("qwen3", "gemma3"):
            w.add_tensor(p + "attn_q_norm.weight", t(head_dim))
            w.add_tensor(p + "attn_k_norm.weight", t(head_dim))
        if arch == "gemma3":
            w.add_tensor(p + "post_attention_norm.weight", t(N_EMBD))
            w.add_tensor(p + "post_ffw_norm.weight", t(N_EMBD))
        w.add_tensor(p + "attn_output.weight", t(N_EMBD, q_dim))
        w.add_tensor(p + "ffn_norm.weight", t(N_EMBD))
        w.add_tensor(p + "ffn_gate.weight", t(N_FF, N_EMBD))
        w.add_tensor(p + "ffn_up.weight", t(N_FF, N_EMBD))
        w.add_tensor(p + "ffn_down.weight", t(N_EMBD, N_FF))
    w.add_tensor("output_norm.weight", t(N_EMBD))
    if arch == "llama":
        w.add_tensor("output.weight", t(n_vocab, N_EMBD).astype(np.float16))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def all_types(path):
    w = gguf.GGUFWriter(path, "test")
    w.add_custom_alignment(64)
    w.add_uint8("t.u8", 200)
    w.add_int8("t.i8", -100)
    w.add_uint16("t.u16", 60000)
    w.add_int16("t.i16", -30000)
    w.add_uint32("t.u32", 4000000000)
    w.add_int32("t.i32", -2000000000)
    w.add_float32("t.f32", 3.5)
    w.add_bool("t.bool", True)
    w.add_string("t.str", "h\u00e9llo \"q\" \\ \n\t\x01")
    w.add_uint64("t.u64", 2**63 + 5)
    w.add_int64("t.i64", -(2**62))
    w.add_float64("t.f64", -1e300)
    w.add_array("t.arr_i32", [1, -2, 3])
    w.add_array("t.arr_f32", [0.5, -1.5])
    w.add_array("t.arr_str", ["a", "", "\u2581b"])
    w.add_array("t.arr_bool", [True, False])
    w.add_array("t.arr_arr", [[1, 2], [3]])
    w.add_tensor("f32.vec", np.arange(4, dtype=np.float32))
    w.add_tensor("f16.mat", np.ones((2, 3), dtype=np.float16))
    w.add_tensor("q4_0.row", np.zeros((1, 18), dtype=np.uint8), raw_dtype=gguf.GGMLQuantizationType.Q4_0)
    w.add_tensor("f32.4d", np.zeros((1, 1, 2, 2), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def main():
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(root, "tests/fuzz/corpus/gguf"))
    out = ap.parse_args().out
    os.makedirs(out, exist_ok=True)
    all_types(os.path.join(out, "all_types.gguf"))
    data = bytearray(open(os.path.join(out, "all_types.gguf"), "rb").read())
    data[4:8] = (2).to_bytes(4, "little")
    open(os.path.join(out, "v2.gguf"), "wb").write(data)
    for arch in ("llama", "qwen2", "qwen3", "gemma3"):
        micro_model(os.path.join(out, f"micro-{arch}.gguf"), arch)
    for name in sorted(os.listdir(out)):
        print(f"{name}: {os.path.getsize(os.path.join(out, name))} bytes")


if __name__ == "__main__":
    main()
