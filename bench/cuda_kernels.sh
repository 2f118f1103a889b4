#!/usr/bin/env bash
# bench/cuda_kernels.sh - build lamina's CUDA kernels (LAMINA_CUDA=ON), check
# them against the CPU kernels and time them on the GPU. Kernel level only:
# see docs/cuda.md and the "GPU" section of BENCHMARKS.md.
#
#   bench/cuda_kernels.sh [--arch 90] [--build DIR] [--out DIR] [--no-bench]
#                         [--unroll-variants "1 4"] [--direct]
#
# Build: through CMake (-DLAMINA_CUDA=ON) when pkg-config finds the server's
# libraries (PCRE2, jansson, xxhash, libmicrohttpd, libcurl); otherwise, or
# with --direct (a bare GPU machine), only what the tests need, with nvcc and
# gcc: src/backend/cuda/*.cu, the CPU quant kernels, base/{cpu,dtype,error}.c
# and tests/cuda/. Then, each step run even if one before failed:
#   1. the ptxas resource report of the kernels (any spill or stack frame fails);
#   2. test_cuda_layout (the layout and unit arithmetic, on the CPU);
#   3. test_cuda_quant (every type, shape and path against the CPU kernels);
#   4. test_cuda_quant --bench (the tables), and --bench --decode for each
#      VEC unroll variant asked for (bench_unrollN.txt).
# Everything goes to OUT (default BUILD/results; $OUT when set); the last
# lines printed are the bench's batch and summary tables (the decode kernel
# by threads per row and rows per thread is in bench.txt). Exit status: 0
# when every step passed.
set -uo pipefail
cd "$(dirname "$0")/.."

arch=90
build=build-cuda
out=""
bench=1
variants=""
direct=0
while [ $# -gt 0 ]; do
    case "$1" in
    --arch) arch="$2"; shift 2 ;;
    --build) build="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --no-bench) bench=0; shift ;;
    --unroll-variants) variants="$2"; shift 2 ;;
    --direct) direct=1; shift ;;
    *) echo "usage: $0 [--arch 90] [--build DIR] [--out DIR] [--no-bench] [--unroll-variants \"1 4\"] [--direct]" >&2
       exit 2 ;;
    esac
done
out="${out:-${OUT:-$build/results}}"
mkdir -p "$build" "$out"
nvcc="${NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}"
jobs="$(nproc 2>/dev/null || echo 2)"
failed=()

{
    date -u '+%Y-%m-%d %H:%M:%S UTC'
    git log -1 --format='lamina %h %s' 2>/dev/null
    "$nvcc" --version | tail -2
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm,clocks.mem,power.draw,temperature.gpu \
        --format=csv 2>&1
} > "$out/device.txt"
cat "$out/device.txt"

nvcc_flags=(-std=c++17 -O3 -gencode "arch=compute_$arch,code=sm_$arch" -Isrc -Iinclude)
c_flags=(-std=gnu11 -O2 -Wall -Wextra -Wno-unused-parameter -Isrc -Iinclude -DLAMINA_CUDA=1)
cuda_inc="$(dirname "$(dirname "$nvcc")")/include"

# the direct build: objects in $build/direct, binaries test_cuda_quant and test_cuda_layout
build_direct() {
    local d="$build/direct" pids=() f o extra
    mkdir -p "$d"
    for f in src/base/cpu.c src/base/dtype.c src/base/error.c src/backend/cpu/quant*.c tests/cuda/test_cuda_quant.c; do
        o="$d/$(basename "$f").o"
        extra=()
        case "$f" in
        *_avx2.c) extra=(-mavx2 -mfma -mf16c) ;;
        *_avx512.c) extra=(-mavx2 -mfma -mf16c -mavx512f -mavx512bw -mavx512dq -mavx512vl -mavx512vnni) ;;
        esac
        gcc "${c_flags[@]}" "${extra[@]}" -I"$cuda_inc" -c "$f" -o "$o" & pids+=($!)
    done
    for f in src/backend/cuda/*.cu tests/cuda/test_cuda_layout.cu; do
        "$nvcc" "${nvcc_flags[@]}" -c "$f" -o "$d/$(basename "$f").o" & pids+=($!)
    done
    for v in $variants; do
        "$nvcc" "${nvcc_flags[@]}" -DLAMINA_CUDA_VEC_UNROLL="$v" -c src/backend/cuda/cuda_matmul.cu \
            -o "$d/cuda_matmul.unroll$v.o" & pids+=($!)
    done
    local rc=0
    for p in "${pids[@]}"; do wait "$p" || rc=1; done
    [ $rc -eq 0 ] || return 1
    local cpu_objs=("$d"/cpu.c.o "$d"/dtype.c.o "$d"/error.c.o "$d"/quant*.c.o)
    "$nvcc" -o "$build/test_cuda_quant" "$d/test_cuda_quant.c.o" "$d/cuda_device.cu.o" "$d/cuda_matmul.cu.o" "$d/cuda_mmq.cu.o" \
        "${cpu_objs[@]}" -lcublas -lpthread -lm || return 1
    "$nvcc" -o "$build/test_cuda_layout" "$d/test_cuda_layout.cu.o" "$d/cuda_device.cu.o" "$d/cuda_matmul.cu.o" "$d/cuda_mmq.cu.o" \
        "${cpu_objs[@]}" -lcublas -lpthread -lm || return 1
    for v in $variants; do
        "$nvcc" -o "$build/test_cuda_quant_unroll$v" "$d/test_cuda_quant.c.o" "$d/cuda_device.cu.o" "$d/cuda_mmq.cu.o" \
            "$d/cuda_matmul.unroll$v.o" "${cpu_objs[@]}" -lcublas -lpthread -lm || return 1
    done
}

build_cmake() {
    cmake -S . -B "$build" -DLAMINA_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES="$arch" -DCMAKE_BUILD_TYPE=Release &&
        cmake --build "$build" -j"$jobs" --target test_cuda_quant test_cuda_layout
}

echo "== build"
t0=$(date +%s)
if [ $direct -eq 0 ] && [ -z "$variants" ] &&
    pkg-config --exists libpcre2-8 jansson libxxhash libmicrohttpd libcurl 2>/dev/null; then
    how="cmake -DLAMINA_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=$arch"
    build_cmake > "$out/build.log" 2>&1
else
    how="direct (nvcc + gcc, sm_$arch)"
    build_direct > "$out/build.log" 2>&1
fi
rc=$?
echo "build: $how, $(( $(date +%s) - t0 )) s, status $rc"
if [ $rc -ne 0 ]; then
    tail -40 "$out/build.log"
    echo "FAILED: build"
    exit 1
fi

echo "== ptxas resource report"
: > "$out/ptxas.txt"
for f in src/backend/cuda/*.cu; do
    "$nvcc" "${nvcc_flags[@]}" -Xptxas -v -c "$f" -o /dev/null >> "$out/ptxas.txt" 2>&1
done
n_kernels=$(grep -c "Compiling entry function" "$out/ptxas.txt")
n_bad=$(grep -E "bytes stack frame" "$out/ptxas.txt" | grep -cvE "^\s*0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads")
max_regs=$(grep -oE "Used [0-9]+ registers" "$out/ptxas.txt" | awk '{print $2}' | sort -n | tail -1)
echo "ptxas: $n_kernels kernels, $n_bad with a stack frame or spills, at most $max_regs registers"
[ "$n_bad" -eq 0 ] || failed+=("ptxas: spills or stack frames (see ptxas.txt)")

echo "== test_cuda_layout"
"$build/test_cuda_layout" > "$out/test.txt" 2>&1 || failed+=("test_cuda_layout")
tail -1 "$out/test.txt"

echo "== test_cuda_quant"
t0=$(date +%s)
"$build/test_cuda_quant" >> "$out/test.txt" 2>&1
rc=$?
[ $rc -eq 0 ] || failed+=("test_cuda_quant (status $rc)")
grep -E "^(device|correctness|  [a-zA-Z0-9_]+ +[0-9]+ cases|test_cuda_quant)" "$out/test.txt"
grep -m 20 "FAIL" "$out/test.txt"
echo "test_cuda_quant: $(( $(date +%s) - t0 )) s"

if [ $bench -eq 1 ]; then
    for v in $variants; do
        echo "== bench, decode, VEC unroll $v"
        "$build/test_cuda_quant_unroll$v" --bench --decode > "$out/bench_unroll$v.txt" 2>&1 ||
            failed+=("bench unroll $v")
    done
    echo "== bench"
    t0=$(date +%s)
    "$build/test_cuda_quant" --bench > "$out/bench.txt" 2>&1 || failed+=("bench")
    echo "bench: $(( $(date +%s) - t0 )) s"
    grep -E "^(bench:|note:)" "$out/bench.txt"
    sed -n '/^batches/,$p' "$out/bench.txt"
fi

if [ ${#failed[@]} -gt 0 ]; then
    printf 'FAILED: %s\n' "${failed[@]}"
    exit 1
fi
echo "all steps passed"
