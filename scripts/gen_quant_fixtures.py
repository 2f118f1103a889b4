#!/usr/bin/env python3
"""Reference dequantizations for tests/unit/test_quant_models.c, made with the
`gguf` package's numpy implementation (gguf.quants.dequantize), which is
independent of lamina's C kernels.

    .venv/bin/python scripts/gen_quant_fixtures.py

writes tests/fixtures/quant/:
  <model>.json   for each real model in models/: per tensor type present,
                 the first tensor of that type (file order), one row of it,
                 and the first 256 dequantized values of that row;
  synthetic.json for every type lamina supports: random block bytes (fixed
                 seed; fp16 scales forced finite) and their dequantization.

Deterministic: a rerun gives byte-identical files. Values are float32 written
with repr(), which round-trips exactly through strtod + (float).
"""
import json
import pathlib
import sys

import numpy as np

import gguf
from gguf import GGMLQuantizationType as T
from gguf.quants import dequantize

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "fixtures" / "quant"
MODELS = ["SmolLM2-135M-Instruct.Q4_1.gguf", "gemma-3-270m-q4_k_m.gguf"]
N_VALUES = 256
SEED = 20250611

# lamina's names (base/dtype.c) of the types it supports
NAMES = {
    T.F32: "f32", T.F16: "f16", T.BF16: "bf16", T.Q4_0: "q4_0", T.Q4_1: "q4_1",
    T.Q5_0: "q5_0", T.Q5_1: "q5_1", T.Q8_0: "q8_0", T.Q2_K: "q2_K", T.Q3_K: "q3_K",
    T.Q4_K: "q4_K", T.Q5_K: "q5_K", T.Q6_K: "q6_K",
}

# byte offsets of the fp16 scale fields within one block
FP16_FIELDS = {
    T.Q4_0: [0], T.Q4_1: [0, 2], T.Q5_0: [0], T.Q5_1: [0, 2], T.Q8_0: [0],
    T.Q2_K: [80, 82], T.Q3_K: [108], T.Q4_K: [0, 2], T.Q5_K: [0, 2], T.Q6_K: [208],
}


def floats(values):
    return [float(v) for v in np.asarray(values, dtype=np.float32)]


def model_fixture(path):
    reader = gguf.GGUFReader(str(path))
    seen = {}
    for t in reader.tensors:
        if t.tensor_type in NAMES and t.tensor_type not in seen:
            seen[t.tensor_type] = t
    tensors = []
    for qtype, t in sorted(seen.items(), key=lambda kv: kv[0].value):
        ne0 = int(t.shape[0])
        n_rows = int(np.prod(t.shape)) // ne0
        row = min(3, n_rows - 1)
        rows = np.asarray(t.data).reshape(n_rows, -1)
        values = dequantize(rows[row : row + 1], qtype).reshape(-1)
        assert values.shape[0] == ne0, (t.name, values.shape)
        tensors.append({
            "name": t.name,
            "type": NAMES[qtype],
            "type_id": int(qtype.value),
            "ne0": ne0,
            "row": row,
            "values": floats(values[:N_VALUES]),
        })
    return {"model": f"models/{path.name}", "tensors": tensors}


def random_row(rng, qtype, n):
    """random bytes of a row of n elements of qtype, every float finite"""
    if qtype == T.F32:
        return rng.standard_normal(n).astype(np.float32).view(np.uint8)
    if qtype == T.F16:
        return rng.standard_normal(n).astype(np.float16).view(np.uint8)
    if qtype == T.BF16:
        bits = rng.integers(0, 1 << 16, n, dtype=np.uint32).astype(np.uint16)
        exp = (bits >> 7) & 0xFF
        bits[exp == 0xFF] &= 0xBFFF  # no inf / NaN
        return bits.view(np.uint8)
    block_size, type_size = gguf.GGML_QUANT_SIZES[qtype]
    n_blocks = n // block_size
    data = rng.integers(0, 256, n_blocks * type_size, dtype=np.uint32).astype(np.uint8)
    blocks = data.reshape(n_blocks, type_size)
    for off in FP16_FIELDS[qtype]:
        mag = np.ldexp(1.0 + rng.random(n_blocks), rng.integers(-10, 2, n_blocks))
        sign = np.where(rng.random(n_blocks) < 0.5, -1.0, 1.0)
        blocks[:, off : off + 2] = (sign * mag).astype(np.float16).view(np.uint8).reshape(n_blocks, 2)
    return blocks.reshape(-1)


def synthetic_fixture():
    rng = np.random.default_rng(SEED)
    types = []
    for qtype in NAMES:
        block_size = gguf.GGML_QUANT_SIZES[qtype][0]
        n = 512 if block_size == 256 else 256
        raw = random_row(rng, qtype, n)
        values = dequantize(raw.reshape(1, -1), qtype).reshape(-1)
        assert values.shape[0] == n and np.all(np.isfinite(values)), NAMES[qtype]
        types.append({
            "type": NAMES[qtype],
            "type_id": int(qtype.value),
            "n": n,
            "hex": raw.tobytes().hex(),
            "values": floats(values),
        })
    return {"seed": SEED, "types": types}


def write(name, obj):
    OUT.mkdir(parents=True, exist_ok=True)
    obj = {"generator": "scripts/gen_quant_fixtures.py", "gguf": "gguf-py dequantize", **obj}
    (OUT / name).write_text(json.dumps(obj, indent=1) + "\n")
    print(f"wrote {OUT / name}")


def main():
    missing = [m for m in MODELS if not (ROOT / "models" / m).exists()]
    if missing:
        sys.exit(f"missing models (run scripts/setup): {', '.join(missing)}")
    for m in MODELS:
        write(m.removesuffix(".gguf") + ".json", model_fixture(ROOT / "models" / m))
    write("synthetic.json", synthetic_fixture())


if __name__ == "__main__":
    main()
