"""`lamina info` on the real models, on files written by the gguf Python
package, and on corrupted copies.

The reference for every value is the gguf package's own reader (an
independent implementation of the format). Run from the repository root;
the binary is build/lamina (override with LAMINA_BIN)."""

import functools
import json
import os
import random
import re
import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest
from gguf import GGUFReader, GGUFValueType, GGUFWriter

REPO = Path(__file__).resolve().parents[2]
LAMINA = Path(os.environ.get("LAMINA_BIN", REPO / "build" / "lamina")).resolve()
SMOLLM = REPO / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"
GEMMA = REPO / "models" / "gemma-3-270m-q4_k_m.gguf"
MODELS = [pytest.param(p, id=p.name) for p in (SMOLLM, GEMMA)]


@functools.lru_cache(maxsize=None)
def read_gguf(path):
    """The gguf package's reading of PATH (slow on big vocabularies: cached)."""
    return GGUFReader(path)


def run_info(*args, cwd=REPO, env=None):
    full_env = dict(os.environ)
    full_env.pop("LAMINA_MODEL", None)
    full_env.update(env or {})
    return subprocess.run([str(LAMINA), "info", *map(str, args)], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=120)


def need(path):
    if not path.exists():
        pytest.fail(f"{path} not present (scripts/setup installs it)")


def summary(stdout):
    """The 'label: value' lines of the summary."""
    out = {}
    for line in stdout.splitlines():
        m = re.match(r"^([a-z][a-z -]*):\s+(.*)$", line)
        if m:
            out[m.group(1)] = m.group(2)
    return out


def section(stdout, header):
    """The indented lines after the line starting with HEADER."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    body = []
    for line in lines[start + 1:]:
        if not line.startswith("  "):
            break
        body.append(line[2:])
    return body


def escape(s):
    """The reader's rendering of string bytes (gguf_value_repr)."""
    out = []
    for c in s:
        if c in '"\\':
            out.append("\\" + c)
        elif c == "\n":
            out.append("\\n")
        elif c == "\t":
            out.append("\\t")
        elif ord(c) < 0x20 or ord(c) == 0x7F:
            out.append(f"\\x{ord(c):02x}")
        else:
            out.append(c)
    return "".join(out)


def expected_repr(field):
    vtype = field.types[0]
    if vtype == GGUFValueType.ARRAY:
        return f"[array of {len(field.data)} {field.types[1].name.lower()}]"
    value = field.contents()
    if vtype == GGUFValueType.STRING:
        return '"' + escape(value) + '"'
    if vtype == GGUFValueType.BOOL:
        return "true" if value else "false"
    if vtype in (GGUFValueType.FLOAT32, GGUFValueType.FLOAT64):
        return f"{value:g}"
    return str(int(value))


def check_kv_against_reader(stdout, reader):
    fields = {k: f for k, f in reader.fields.items() if not k.startswith("GGUF.")}
    lines = section(stdout, "metadata (")
    assert len(lines) == len(fields)
    for line in lines:
        key, vtype, repr_ = line.split(None, 2)
        field = fields[key]
        assert vtype == field.types[0].name.lower(), key
        want = expected_repr(field)
        if repr_.endswith('..."'):  # long strings are cut
            assert want.startswith(repr_[:-4]), key
        else:
            assert repr_ == want, key


def check_tensors_against_reader(stdout, reader):
    lines = section(stdout, "tensors (")
    assert len(lines) == len(reader.tensors)
    pattern = re.compile(r"^(\S+)\s+(\S+)\s+\[([0-9, ]+)\]\s+offset (\d+), (\d+) bytes$")
    for line, t in zip(lines, reader.tensors):
        m = pattern.match(line)
        assert m, line
        name, dtype, shape, offset, nbytes = m.groups()
        assert name == t.name
        assert dtype.lower() == t.tensor_type.name.lower()
        assert [int(x) for x in shape.split(",")] == [int(x) for x in t.shape]
        assert int(offset) == t.data_offset - reader.data_offset
        assert int(nbytes) == t.n_bytes


# ---- the real models ----

@pytest.mark.parametrize("model", MODELS)
def test_summary_matches_gguf_reader(model):
    need(model)
    reader = read_gguf(model)
    res = run_info(model)
    assert res.returncode == 0, res.stderr
    s = summary(res.stdout)
    arch = reader.fields["general.architecture"].contents()
    assert s["file"] == str(model)
    assert s["gguf version"] == "3"
    assert s["architecture"] == arch
    assert s["name"] == reader.fields["general.name"].contents()
    n_params = sum(int(t.n_elements) for t in reader.tensors)
    assert s["parameters"].endswith(f"({n_params})")
    assert s["tensors"] == str(len(reader.tensors))
    assert s["context length"] == str(reader.fields[f"{arch}.context_length"].contents())
    assert s["layers"] == str(reader.fields[f"{arch}.block_count"].contents())
    assert s["heads"] == str(reader.fields[f"{arch}.attention.head_count"].contents())
    assert s["kv heads"] == str(reader.fields[f"{arch}.attention.head_count_kv"].contents())
    n_vocab = len(reader.fields["tokenizer.ggml.tokens"].data)
    assert s["vocab"] == f"{reader.fields['tokenizer.ggml.model'].contents()}, {n_vocab} tokens"
    assert s["pre-tokenizer"] == reader.fields["tokenizer.ggml.pre"].contents()
    tensor_bytes = sum(int(t.n_bytes) for t in reader.tensors)
    assert s["size in memory"].endswith(f"({tensor_bytes} bytes)")
    assert s["file size"].endswith(f"({model.stat().st_size} bytes)")
    has_template = "tokenizer.chat_template" in reader.fields
    assert s["chat template"].startswith("yes" if has_template else "no")

    tokens = reader.fields["tokenizer.ggml.tokens"]
    special = {line.split(None, 2)[0]: line.split(None, 2)[1:]
               for line in section(res.stdout, "special tokens:")}
    for name, key in (("bos", "bos_token_id"), ("eos", "eos_token_id"),
                      ("pad", "padding_token_id"), ("unk", "unknown_token_id")):
        token_id = reader.fields[f"tokenizer.ggml.{key}"].contents()
        text = bytes(tokens.parts[tokens.data[token_id]]).decode()
        assert special[name] == [str(token_id), f"'{text}'"]

    counts = {}
    for t in reader.tensors:
        counts[t.tensor_type.name.lower()] = counts.get(t.tensor_type.name.lower(), 0) + 1
    mix = {line.split()[0].lower(): int(line.split()[1]) for line in section(res.stdout, "quant mix:")}
    assert mix == counts


@pytest.mark.parametrize("model", MODELS)
def test_kv_and_tensors_match_gguf_reader(model):
    need(model)
    reader = read_gguf(model)
    res = run_info(model, "--kv", "--tensors")
    assert res.returncode == 0, res.stderr
    check_kv_against_reader(res.stdout, reader)
    check_tensors_against_reader(res.stdout, reader)


def test_smollm_known_values():
    need(SMOLLM)
    s = summary(run_info(SMOLLM).stdout)
    assert s["architecture"] == "llama"
    assert s["parameters"] == "134.5 M (134515008)"
    assert s["vocab"] == "gpt2, 49152 tokens"
    assert s["pre-tokenizer"] == "smollm"
    assert s["chat template"].startswith("yes (")


def test_default_model_and_cpu_flag(tmp_path):
    need(SMOLLM)
    res = run_info()
    assert res.returncode == 0, res.stderr
    assert summary(res.stdout)["file"] == "models/SmolLM2-135M-Instruct.Q4_1.gguf"
    # from elsewhere: found two levels above the binary
    res = run_info(cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert Path(summary(res.stdout)["file"]).resolve() == SMOLLM.resolve()
    # $LAMINA_MODEL wins
    res = run_info(env={"LAMINA_MODEL": str(GEMMA)}) if GEMMA.exists() else None
    if res is not None:
        assert summary(res.stdout)["architecture"] == "gemma3"
    res = run_info("--cpu", env={"LAMINA_CPU_LEVEL": "scalar"})
    assert res.returncode == 0
    assert re.search(r"^cpu level:\s+scalar \(best detected: (scalar|avx2|avx512)\)$",
                     res.stdout, re.M)
    # packed weights need the AVX-512 VNNI kernels, and LAMINA_CPU_REPACK=0 turns them off
    assert re.search(r"^weight repack:\s+none$", res.stdout, re.M)
    res = run_info("--cpu", env={"LAMINA_CPU_REPACK": "0"})
    assert re.search(r"^weight repack:\s+none$", res.stdout, re.M)
    res = run_info("--cpu")
    level = re.search(r"^cpu level:\s+(\S+)", res.stdout, re.M).group(1)
    repack = re.search(r"^weight repack:\s+(.+)$", res.stdout, re.M).group(1)
    assert repack == "none" if level != "avx512" else repack in ("none", "q4_K, q6_K (16-row blocks at load)")


def test_bad_arguments():
    res = run_info("--frobnicate")
    assert res.returncode == 2 and "unknown option '--frobnicate'" in res.stderr
    res = run_info("a.gguf", "b.gguf")
    assert res.returncode == 2


# ---- files written by the gguf package ----

def test_every_value_type_and_nested_arrays(tmp_path):
    path = tmp_path / "all_types.gguf"
    w = GGUFWriter(path, "llama")
    w.add_uint8("t.u8", 200)
    w.add_int8("t.i8", -5)
    w.add_uint16("t.u16", 60000)
    w.add_int16("t.i16", -30000)
    w.add_uint32("t.u32", 4000000000)
    w.add_int32("t.i32", -7)
    w.add_float32("t.f32", 0.5)
    w.add_bool("t.bool", True)
    w.add_string("t.str", 'say "hi"\n\tbye')
    w.add_uint64("t.u64", 2**64 - 1)
    w.add_int64("t.i64", -(2**40))
    w.add_float64("t.f64", 2.25)
    w.add_array("t.arr_str", ["a", "bc", ""])
    w.add_array("t.arr_int", [1, -2, 3])
    w.add_key_value("t.nested", [[1, 2], [3], ["x", "y"]], GGUFValueType.ARRAY)
    w.add_uint32("t.after_nested", 7)
    w.add_tensor("a.weight", np.arange(12, dtype=np.float32).reshape(3, 4))
    w.add_tensor("b.weight", np.ones(5, dtype=np.float16))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()

    res = run_info(path, "--kv", "--tensors")
    assert res.returncode == 0, res.stderr
    kv = {line.split(None, 2)[0]: line.split(None, 2)[1:] for line in section(res.stdout, "metadata (")}
    assert kv["t.u8"] == ["uint8", "200"]
    assert kv["t.i8"] == ["int8", "-5"]
    assert kv["t.u16"] == ["uint16", "60000"]
    assert kv["t.i16"] == ["int16", "-30000"]
    assert kv["t.u32"] == ["uint32", "4000000000"]
    assert kv["t.i32"] == ["int32", "-7"]
    assert kv["t.f32"] == ["float32", "0.5"]
    assert kv["t.bool"] == ["bool", "true"]
    assert kv["t.str"] == ["string", '"say \\"hi\\"\\n\\tbye"']
    assert kv["t.u64"] == ["uint64", str(2**64 - 1)]
    assert kv["t.i64"] == ["int64", str(-(2**40))]
    assert kv["t.f64"] == ["float64", "2.25"]
    assert kv["t.arr_str"] == ["array", "[array of 3 string]"]
    assert kv["t.nested"] == ["array", "[array of 3 array]"]
    assert kv["t.after_nested"] == ["uint32", "7"]
    tensors = section(res.stdout, "tensors (")
    assert re.match(r"a\.weight\s+f32\s+\[4, 3\]\s+offset 0, 48 bytes$", tensors[0])
    assert re.match(r"b\.weight\s+f16\s+\[5\]\s+offset 64, 10 bytes$", tensors[1])


# ---- corrupted files ----

def expect_error(path, *needles):
    res = run_info(path)
    assert res.returncode == 1, res.stdout
    assert res.stdout == ""
    lines = res.stderr.splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith(f"lamina: {path}: "), lines[0]
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def test_truncated_copies(tmp_path):
    need(SMOLLM)
    data = SMOLLM.read_bytes()
    reader = read_gguf(SMOLLM)
    last = max(reader.tensors, key=lambda t: t.data_offset + t.n_bytes)

    head = tmp_path / "head.gguf"
    head.write_bytes(data[:100000])
    expect_error(head, "past end of file")

    short = tmp_path / "short.gguf"
    short.write_bytes(data[:-1])
    end = last.data_offset + last.n_bytes
    expect_error(short, f"tensor '{last.name}'",
                 f"data [{last.data_offset}, {end}) past end of file (size {len(data) - 1})")

    for cut in (3, 20, 1000, reader.data_offset - 1, reader.data_offset + 10):
        part = tmp_path / f"cut{cut}.gguf"
        part.write_bytes(data[:cut])
        expect_error(part, "past end of file")


def test_garbage_and_other_faults(tmp_path):
    garbage = tmp_path / "garbage.gguf"
    garbage.write_bytes(random.Random(1).randbytes(4096))
    expect_error(garbage, "not a GGUF file")

    v1 = tmp_path / "v1.gguf"
    v1.write_bytes(b"GGUF" + struct.pack("<IIIII", 1, 0, 0, 0, 0))
    expect_error(v1, "GGUF v1 is not supported")

    huge = tmp_path / "huge_counts.gguf"
    huge.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 2**40, 2**40) + bytes(64))
    expect_error(huge, "would run past end of file")

    empty = tmp_path / "empty.gguf"
    empty.write_bytes(b"")
    expect_error(empty, "empty file")

    expect_error(tmp_path, "not a regular file")
    expect_error(tmp_path / "missing.gguf", "cannot open")


def test_flipped_tensor_type(tmp_path):
    """A tensor type id the reader does not know is named with the tensor."""
    path = tmp_path / "one.gguf"
    w = GGUFWriter(path, "llama")
    w.add_tensor("blk.0.attn_q.weight", np.zeros((2, 32), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    data = bytearray(path.read_bytes())
    name = b"blk.0.attn_q.weight"
    type_pos = data.index(name) + len(name) + 4 + 2 * 8  # n_dims, ne[0], ne[1]
    assert struct.unpack_from("<I", data, type_pos)[0] == 0  # f32
    struct.pack_into("<I", data, type_pos, 99)
    bad = tmp_path / "bad_type.gguf"
    bad.write_bytes(bytes(data))
    expect_error(bad, "tensor 'blk.0.attn_q.weight'", "unknown tensor type id 99")
    shutil.copy(path, tmp_path / "good.gguf")
    assert run_info(tmp_path / "good.gguf").returncode == 0


@pytest.mark.parametrize("path", MODELS)
def test_perf_weight_bytes_per_token(path):
    """The bytes of weights one decode token reads (`lamina perf`'s JSON, the
    roofline's denominator), against the gguf package's tensor sizes: every
    tensor but the embeddings, of which one row, and the whole table again
    when it doubles as the output matrix (tied)."""
    out = subprocess.run([str(LAMINA), "perf", str(path), "-p", "0", "-n", "1", "-r", "1", "-t", "1"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    got = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    assert len(got) == 1 and got[0]["test"] == "tg1"
    tensors = {t.name: t for t in read_gguf(path).tensors}
    embd = tensors["token_embd.weight"]
    want = sum(int(t.n_bytes) for name, t in tensors.items() if name != "token_embd.weight")
    want += int(embd.n_bytes) // int(embd.shape[1])  # one row (shape is [n_embd, n_vocab])
    if "output.weight" not in tensors:
        want += int(embd.n_bytes)
    assert got[0]["weight_bytes_per_token"] == want


def test_perf_mem_bandwidth():
    out = subprocess.run([str(LAMINA), "perf", "--mem-bandwidth", "-t", "1", "-r", "1"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout)
    assert r["test"] == "read_bandwidth" and r["threads"] == 1
    assert 1e8 < r["bytes_per_s"] < 1e13, r  # between 0.1 GB/s and 10 TB/s: a real measurement
    bad = subprocess.run([str(LAMINA), "perf", "--mem-bandwidth", "-t", "0"], capture_output=True, text=True)
    assert bad.returncode == 2 and "-t" in bad.stderr


def test_perf_depth():
    """`perf -d`: prefill and decode timed after a context of DEPTH tokens
    (llama-bench's -d), here past one attention chunk of 1024 keys so the
    chunked attention and its split over threads run; -d with --parallel and
    a negative depth are usage errors."""
    out = subprocess.run([str(LAMINA), "perf", "-p", "4", "-n", "2", "-d", "1100", "-r", "1", "-t", "2"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    got = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    assert [g["test"] for g in got] == ["pp4@d1100", "tg2@d1100"], got
    assert all(g["tokens_per_s"] > 0 for g in got)
    for bad_args in (["-d", "-1"], ["-d", "8", "--parallel", "2", "--device", "cuda"]):
        bad = subprocess.run([str(LAMINA), "perf", *bad_args], capture_output=True, text=True, timeout=60)
        assert bad.returncode == 2 and "-d" in bad.stderr, bad.stderr
