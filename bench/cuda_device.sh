#!/usr/bin/env bash
# bench/cuda_device.sh - on the GPU machine, with build-gpupack/ carried
# (bench/cuda_pack.sh): the GPU forward pass checked against the CPU's and
# llama.cpp's logits, a CUDA-backed server answering, compute-sanitizer, and
# the speed of the forward pass.
#
#   bench/cuda_device.sh [quant] [check] [memcheck] [serve] [perf] [llama]   (default: check serve perf)
#
#   quant     test_cuda_quant (every weight type and path against the CPU
#             kernels; the pack needs --with-quant)
#   nommq     perf's figures again with the MMQ path off (LAMINA_CUDA_MMQ_MAX=0)
#   nopdl     perf's figures again without dependent launches (LAMINA_CUDA_PDL=0)
#   prevcheck the fixtures' figures against the previous version's (build-gpuxz-prev carried)
#   mmqbench  test_cuda_quant --bench-mmq: the MMQ kernels in each row tiling
#             and the GEMM on f16 copies at 9-256 tokens (needs --with-quant)
#   check     test_cuda_layout, test_cuda_forward on the fixtures (batch
#             invariant, then the default mode), then on real-shape
#             random-weight models made there by gen_model
#   memcheck  compute-sanitizer memcheck over test_cuda_forward on one fixture
#   serve     lamina serve --device cuda and --device cpu on a fixture model:
#             16 concurrent greedy chat completions compared token by token;
#             then the CUDA server's GPU-side sampling (argmax, top-64, logit
#             edits, fetched rows) against a CUDA server drawing every token
#             from whole rows on the host (bench/cuda_serve_check.py)
#   perf      lamina perf --device cuda on the real-shape models: pp512,
#             tg128, and 16 / 64 parallel streams (64 also sampled from the
#             top 64, with 64 penalty edits a row, and with full logits)
#   perfinv   the same with --batch-invariant (pp512, tg128, 16 / 64 greedy)
#   tuneinv   --batch-invariant batches with 1, 2 and 4 rows per thread
#   prev      perf's pp/tg/16/64 figures with the previous version's pack
#             (build-gpuxz-prev/gpupack.tar.xz, carried), for before/after
#   profile   where a decode step's time goes (LAMINA_CUDA_PROFILE=1: events
#             between the ops, graphs off), batch 1 and 64 streams (Qwen3),
#             16 streams (Llama-1B)
#   overlap   lamina serve --device cuda with LAMINA_ENGINE_OVERLAP=1 and 0 (the
#             next step launched before a step's tokens are emitted, or not),
#             under lamina bench at 1 / 16 / 64 streams, on the fixture model
#             and SmolLM2 when the e2e pieces brought it; the engine's
#             per-phase times (LAMINA_ENGINE_PROFILE=1)
#   e2e       the server suites of tests/e2e against a CUDA-backed server
#             (LAMINA_SERVE_ARGS="--device cuda --batch-invariant", or
#             $E2E_SERVE_ARGS), with SmolLM2, the Python
#             clients and llama-cpp-python carried in pieces to /tmp/e2e/
#   llama     llama.cpp's CUDA build on the same files (llama-bench,
#             llama-batched-bench), when build-gpupack/llama has it
# Logs and results go to $OUT (default /tmp/lamina-gpu).
set -uo pipefail
cd "$(dirname "$0")/.."
P=build-gpupack
OUT=${OUT:-/tmp/lamina-gpu}
mkdir -p "$OUT" /tmp/gen
# our binaries find the carried libraries; the machine's own tools (curl) keep theirs
L() { LD_LIBRARY_PATH="$PWD/$P/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}" "$@"; }
# a compressed pack (bench/cuda_pack.sh) replaces the carried one; pieces
# carried in build-llx*/ and build-e2e*/ dirs wait in /tmp for the steps
# that join them (a warm machine keeps /tmp from call to call)
[ -f build-gpuxz/gpupack.tar.xz ] && rm -rf "$P" && xz -dc build-gpuxz/gpupack.tar.xz | tar x
for d in build-llx* build-e2e*; do
    [ -d "$d" ] || continue
    dst=/tmp/ll; [[ $d == build-e2e* ]] && dst=/tmp/e2e
    mkdir -p "$dst" && cp "$d"/part* "$dst"/ && echo "kept $(ls "$d") in $dst"
done
steps=("$@")
[ ${#steps[@]} -gt 0 ] || steps=(check serve perf)
has() { [[ " ${steps[*]} " == *" $1 "* ]]; }
failed=()
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.mem --format=csv | tee "$OUT/device.txt"

gen() { # SHAPE TYPE -> path
    local f=/tmp/gen/$1-$2.gguf
    [ -f "$f" ] || L "$P/bin/gen_model" "$1" "$2" "$f" >&2
    echo "$f"
}

# lamina perf on the four benchmark models (pp512, tg128, then the streams in PARS) with FLAGS and
# the caller's environment, into $OUT/NAME.txt and NAME.jsonl
perf_models() {
    local name=$1 pars=$2 flags=$3 spec f par
    for spec in "qwen3-0.6b q4_k_m" "qwen3-0.6b q8_0" "llama-1b q4_k_m" "llama-1b q8_0"; do
        f=$(gen $spec)
        L "$P/bin/lamina" perf "$f" --device cuda $flags -p 512 -n 128 -r 5 >> "$OUT/$name.jsonl" \
            2>> "$OUT/$name.txt" || failed+=("$name-$spec")
        for par in $pars; do
            L "$P/bin/lamina" perf "$f" --device cuda $flags -p 128 -n 128 -r 3 --parallel $par \
                >> "$OUT/$name.jsonl" 2>> "$OUT/$name.txt" || failed+=("$name-$spec-x$par")
        done
    done
    cat "$OUT/$name.txt"
}

echo "libraries the machine lacks: $(ldd "$P/bin/lamina" | awk '/not found/ {print $1}' | tr '\n' ' ')"

if has quant; then
    L "$P/bin/test_cuda_quant" > "$OUT/quant.txt" 2>&1 || failed+=(quant)
    grep -E "cases: worst|checks passed" "$OUT/quant.txt"
    grep -m 5 "check failed" "$OUT/quant.txt"
fi

if has mmqbench; then # the MMQ kernels against the GEMM on f16 copies, the benchmark models' shapes
    L "$P/bin/test_cuda_quant" --bench-mmq > "$OUT/mmqbench.txt" 2>&1 || failed+=(mmqbench)
    cat "$OUT/mmqbench.txt"
fi

if has check; then
    L "$P/bin/test_cuda_layout" > "$OUT/layout.txt" 2>&1 || failed+=(layout)
    tail -1 "$OUT/layout.txt"
    L "$P/bin/test_cuda_forward" > "$OUT/forward_fixtures.txt" 2>&1 || failed+=(forward-fixtures)
    grep -v "check failed" "$OUT/forward_fixtures.txt" | tail -20
    grep -m 10 "check failed" "$OUT/forward_fixtures.txt"
    # the default serving mode (batch invariance off: the GEMM path for batches), tolerances only
    LAMINA_CUDA_BATCH_INVARIANT=0 L "$P/bin/test_cuda_forward" > "$OUT/forward_fixtures_gemm.txt" 2>&1 || failed+=(forward-gemm)
    grep -E "checks passed|check failed" "$OUT/forward_fixtures_gemm.txt" | head -5
    # the fused activation quantization must change no bit: the same run without it prints the same figures
    LAMINA_CUDA_FUSE=0 L "$P/bin/test_cuda_forward" > "$OUT/forward_fixtures_unfused.txt" 2>&1 || failed+=(forward-unfused)
    if diff <(grep tolerance "$OUT/forward_fixtures.txt") <(grep tolerance "$OUT/forward_fixtures_unfused.txt") >/dev/null; then
        echo "fused activation quantization: every figure identical to the unfused run"
    else
        echo "fused activation quantization: figures DIFFER from the unfused run"; failed+=(fused-differs)
    fi
    # the token embeddings looked up on the GPU (tied models) must change no bit either
    LAMINA_CUDA_EMBD=0 L "$P/bin/test_cuda_forward" > "$OUT/forward_fixtures_host_embd.txt" 2>&1 || failed+=(forward-host-embd)
    if diff <(grep tolerance "$OUT/forward_fixtures.txt") <(grep tolerance "$OUT/forward_fixtures_host_embd.txt") >/dev/null; then
        echo "embeddings on the GPU: every figure identical to the host lookup's"
    else
        echo "embeddings on the GPU: figures DIFFER from the host lookup's"; failed+=(embd-differs)
    fi
    # programmatic dependent launches (Hopper) must change no bit either: the same run with them off
    LAMINA_CUDA_PDL=0 L "$P/bin/test_cuda_forward" > "$OUT/forward_fixtures_nopdl.txt" 2>&1 || failed+=(forward-nopdl)
    if diff <(grep tolerance "$OUT/forward_fixtures.txt") <(grep tolerance "$OUT/forward_fixtures_nopdl.txt") >/dev/null; then
        echo "dependent launches: every figure identical to the run without them"
    else
        echo "dependent launches: figures DIFFER from the run without them"; failed+=(pdl-differs)
    fi
    # and on the GEMM path (the fused kernels then write its f16 halves too)
    LAMINA_CUDA_BATCH_INVARIANT=0 LAMINA_CUDA_FUSE=0 L "$P/bin/test_cuda_forward" > "$OUT/forward_fixtures_gemm_unfused.txt" 2>&1 ||
        failed+=(forward-gemm-unfused)
    if diff <(grep tolerance "$OUT/forward_fixtures_gemm.txt") <(grep tolerance "$OUT/forward_fixtures_gemm_unfused.txt") >/dev/null; then
        echo "fused activation quantization, GEMM path: every figure identical to the unfused run"
    else
        echo "fused activation quantization, GEMM path: figures DIFFER from the unfused run"; failed+=(fused-gemm-differs)
    fi
    models=($(gen qwen3-0.6b q4_k_m) $(gen llama-1b q8_0) $(gen gemma3-1b q4_k_m) $(gen qwen2-0.5b q4_k_m))
    L "$P/bin/test_cuda_forward" "${models[@]}" > "$OUT/forward_shapes.txt" 2>&1 || failed+=(forward-shapes)
    grep -v "check failed" "$OUT/forward_shapes.txt" | tail -6
    grep -m 10 "check failed" "$OUT/forward_shapes.txt"
    # the default mode on real shapes: batches of 9-64 tokens take the MMQ kernels (KL bound against the CPU)
    LAMINA_CUDA_BATCH_INVARIANT=0 L "$P/bin/test_cuda_forward" "${models[@]}" > "$OUT/forward_shapes_default.txt" 2>&1 ||
        failed+=(forward-shapes-default)
    grep -v "check failed" "$OUT/forward_shapes_default.txt" | tail -6
    grep -m 10 "check failed" "$OUT/forward_shapes_default.txt"
    LAMINA_CUDA_BATCH_INVARIANT=0 LAMINA_CUDA_MMQ_MAX=0 L "$P/bin/test_cuda_forward" "${models[@]}" \
        > "$OUT/forward_shapes_nommq.txt" 2>&1 || failed+=(forward-shapes-nommq)
    grep -E "checks passed|KL max" "$OUT/forward_shapes_nommq.txt" | tail -6
fi

# the previous version's test_cuda_forward on the fixtures: a change meant to keep every bit
# prints every figure as the previous version does
if has prevcheck && [ -f build-gpuxz-prev/gpupack.tar.xz ]; then
    rm -rf /tmp/prev && mkdir -p /tmp/prev && xz -dc build-gpuxz-prev/gpupack.tar.xz | tar x -C /tmp/prev
    for inv in 1 0; do
        LAMINA_CUDA_BATCH_INVARIANT=$inv L "$P/bin/test_cuda_forward" > "$OUT/prevcheck-new-$inv.txt" 2>&1 ||
            failed+=(prevcheck-new-$inv)
        LAMINA_CUDA_BATCH_INVARIANT=$inv LD_LIBRARY_PATH="/tmp/prev/$P/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}" \
            "/tmp/prev/$P/bin/test_cuda_forward" > "$OUT/prevcheck-prev-$inv.txt" 2>&1 || failed+=(prevcheck-prev-$inv)
        if diff <(grep tolerance "$OUT/prevcheck-new-$inv.txt") <(grep tolerance "$OUT/prevcheck-prev-$inv.txt") >/dev/null; then
            echo "against the previous version (batch-invariant=$inv): every fixture figure identical"
        else
            echo "against the previous version (batch-invariant=$inv): figures DIFFER"; failed+=(prevcheck-differs-$inv)
        fi
    done
fi

if has memcheck; then
    L compute-sanitizer --tool memcheck --leak-check full "$P/bin/test_cuda_forward" tests/fixtures/models/qwen2-q4_k_m.gguf \
        > "$OUT/memcheck.txt" 2>&1 || failed+=(memcheck)
    tail -4 "$OUT/memcheck.txt"
    # the default mode too: batches take the GEMM path (the fused kernels then write its halves)
    LAMINA_CUDA_BATCH_INVARIANT=0 L compute-sanitizer --tool memcheck --leak-check full "$P/bin/test_cuda_forward" \
        tests/fixtures/models/qwen2-q4_k_m.gguf > "$OUT/memcheck-gemm.txt" 2>&1 || failed+=(memcheck-gemm)
    tail -4 "$OUT/memcheck-gemm.txt"
    # the MMQ kernels (the fixtures' rows are too short for them): 16 streams on a real-shape model
    f=$(gen qwen3-0.6b q4_k_m)
    L compute-sanitizer --tool memcheck --leak-check full "$P/bin/lamina" perf "$f" --device cuda -p 32 -n 4 -r 1 \
        --parallel 16 > "$OUT/memcheck-mmq.txt" 2>&1 || failed+=(memcheck-mmq)
    tail -4 "$OUT/memcheck-mmq.txt"
    # a short serve run: the CUDA server under memcheck (the fixture: gen_model's files have no
    # tokenizer to serve with), 16 concurrent chat completions and a streamed one, then SIGTERM to
    # the server itself (the sanitizer's child: its clean shutdown) and the sanitizer's report
    # (started directly, not through L, so that $! is the sanitizer and the server its child)
    LD_LIBRARY_PATH="$PWD/$P/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}" compute-sanitizer --tool memcheck \
        --leak-check full "$P/bin/lamina" serve tests/fixtures/models/qwen3-q4_k_m.gguf --device cuda --port 18095 \
        > "$OUT/memcheck-serve.txt" 2>&1 &
    spid=$!
    for _ in $(seq 600); do curl -sf http://127.0.0.1:18095/health >/dev/null && break; sleep 0.5; done
    cpids=()
    for i in $(seq 16); do
        curl -sf http://127.0.0.1:18095/v1/chat/completions -H 'Content-Type: application/json' \
            -d "{\"messages\":[{\"role\":\"user\",\"content\":\"Tell me about the sea, part $i\"}],\"max_tokens\":16}" \
            > "$OUT/memcheck-serve-answers.txt" & cpids+=($!)
    done
    n_ok=0
    for c in "${cpids[@]}"; do wait "$c" && n_ok=$((n_ok + 1)); done
    n_events=$(curl -sfN http://127.0.0.1:18095/v1/chat/completions -H 'Content-Type: application/json' \
        -d '{"messages":[{"role":"user","content":"Count to five"}],"max_tokens":8,"stream":true}' | grep -c '^data: ')
    pkill -TERM -P "$spid" # the server; the sanitizer then reports and exits
    for _ in $(seq 120); do kill -0 "$spid" 2>/dev/null || break; sleep 1; done
    kill -9 "$spid" 2>/dev/null && failed+=(memcheck-serve-hung)
    wait "$spid"
    echo "memcheck serve: $n_ok of 16 requests answered, $n_events stream events"
    [ "$n_ok" -eq 16 ] && [ "$n_events" -gt 2 ] || failed+=(memcheck-serve-requests)
    grep -q "ERROR SUMMARY: 0 errors" "$OUT/memcheck-serve.txt" || failed+=(memcheck-serve)
    tail -2 "$OUT/memcheck-serve.txt"
fi

if has serve; then
    m=tests/fixtures/models/qwen3-q4_k_m.gguf
    # cuda-rows: a second CUDA server drawing every token on the host from whole logits rows
    for dev in cuda cpu cuda-rows; do
        case $dev in cuda) port=18080 ;; cpu) port=18081 ;; *) port=18082 ;; esac
        LAMINA_CUDA_SAMPLE_ROWS=$([ $dev = cuda-rows ] && echo 1 || echo 0) \
        LD_LIBRARY_PATH="$PWD/$P/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}" "$P/bin/lamina" serve "$m" \
            --device "${dev%-rows}" --port $port > "$OUT/serve-$dev.log" 2>&1 &
        echo $! > "$OUT/serve-$dev.pid"
    done
    for port in 18080 18081 18082; do
        for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.2; done
    done
    # tolerance: twice qwen3-q4_k_m's fixture tolerance (0.118, tests/fixtures/logits/qwen3-q4_k_m.json)
    python3 bench/cuda_serve_check.py --gpu http://127.0.0.1:18080 --gpu-rows http://127.0.0.1:18082 \
        --cpu http://127.0.0.1:18081 --tol 0.236 > "$OUT/serve-check.txt" 2>&1 || failed+=(serve-check)
    head -1 "$OUT/serve-cuda.log"
    cat "$OUT/serve-check.txt"
    for dev in cuda cpu cuda-rows; do kill "$(cat "$OUT/serve-$dev.pid")" 2>/dev/null; done
    wait 2>/dev/null
    # lamina generate on the GPU: runs, and its greedy text beside the CPU's (equal unless a near tie parts them)
    for dev in cuda cpu; do
        L "$P/bin/lamina" generate "$m" -p "Once upon a time" -n 24 --temp 0 --device $dev > "$OUT/generate-$dev.txt" \
            2> "$OUT/generate-$dev.log" || failed+=("generate-$dev")
    done
    echo "generate --device cuda: $(cat "$OUT/generate-cuda.txt" | head -c 120)"
    echo "generate --device cpu:  $(cat "$OUT/generate-cpu.txt" | head -c 120)"
fi

if has perf; then
    for spec in "qwen3-0.6b q4_k_m" "qwen3-0.6b q8_0" "llama-1b q4_k_m" "llama-1b q8_0"; do
        f=$(gen $spec)
        L "$P/bin/lamina" perf "$f" --device cuda -p 512 -n 128 -r 5 >> "$OUT/perf.jsonl" 2>> "$OUT/perf.txt" || failed+=("perf-$spec")
        for par in 16 32 64 "64 --sample" "64 --penalties" "64 --full-logits"; do
            L "$P/bin/lamina" perf "$f" --device cuda -p 128 -n 128 -r 3 --parallel $par >> "$OUT/perf.jsonl" 2>> "$OUT/perf.txt" ||
                failed+=("perf-$spec-x$par")
        done
    done
    cat "$OUT/perf.txt"
fi

if has nopdl; then # batch 1 and streams with the programmatic dependent launches off
    LAMINA_CUDA_PDL=0 perf_models perf-nopdl "16 64" ""
fi

if has nommq; then # the same figures with the MMQ path off (VEC, then the GEMM)
    LAMINA_CUDA_MMQ_MAX=0 perf_models perf-nommq "16 32 64" ""
fi

# the previous version's pack (build-gpuxz-prev/gpupack.tar.xz, carried beside
# the new one) on the same figures, for before/after ratios in one call
if has prev && [ -f build-gpuxz-prev/gpupack.tar.xz ]; then
    rm -rf /tmp/prev && mkdir -p /tmp/prev && xz -dc build-gpuxz-prev/gpupack.tar.xz | tar x -C /tmp/prev
    Q=/tmp/prev/$P
    for spec in "qwen3-0.6b q4_k_m" "qwen3-0.6b q8_0" "llama-1b q4_k_m" "llama-1b q8_0"; do
        f=$(gen $spec)
        LD_LIBRARY_PATH="$Q/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}" "$Q/bin/lamina" perf "$f" --device cuda \
            -p 512 -n 128 -r 5 >> "$OUT/perf-prev.jsonl" 2>> "$OUT/perf-prev.txt" || failed+=("prev-$spec")
        for par in 16 64; do
            LD_LIBRARY_PATH="$Q/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}" "$Q/bin/lamina" perf "$f" --device cuda \
                -p 128 -n 128 -r 3 --parallel $par >> "$OUT/perf-prev.jsonl" 2>> "$OUT/perf-prev.txt" ||
                failed+=("prev-$spec-x$par")
        done
    done
    cat "$OUT/perf-prev.txt"
fi

if has perfinv; then # the same figures with --batch-invariant (the integer path for every batch)
    perf_models perfinv "16 64" --batch-invariant
fi

if has tuneinv; then # rows per thread of the batch-invariant batches (LAMINA_CUDA_BATCH_ROWS)
    for spec in "qwen3-0.6b q4_k_m" "llama-1b q8_0"; do
        f=$(gen $spec)
        for rows in 1 2 4; do
            echo "rows $rows: $spec" >> "$OUT/tuneinv.txt"
            LAMINA_CUDA_BATCH_ROWS=$rows L "$P/bin/lamina" perf "$f" --device cuda --batch-invariant -p 512 -n 0 -r 3 \
                > /dev/null 2>> "$OUT/tuneinv.txt"
            for par in 16 64; do
                LAMINA_CUDA_BATCH_ROWS=$rows L "$P/bin/lamina" perf "$f" --device cuda --batch-invariant -p 128 -n 64 \
                    -r 3 --parallel $par > /dev/null 2>> "$OUT/tuneinv.txt"
            done
        done
    done
    cat "$OUT/tuneinv.txt"
fi

if has profile; then
    f=$(gen qwen3-0.6b q4_k_m)
    LAMINA_CUDA_PROFILE=1 L "$P/bin/lamina" perf "$f" --device cuda -p 0 -n 128 -r 3 > /dev/null 2> "$OUT/profile-tg.txt"
    LAMINA_CUDA_PROFILE=1 L "$P/bin/lamina" perf "$f" --device cuda -p 1 -n 128 -r 3 --parallel 64 > /dev/null \
        2> "$OUT/profile-x64.txt"
    f=$(gen llama-1b q4_k_m)
    LAMINA_CUDA_PROFILE=1 L "$P/bin/lamina" perf "$f" --device cuda -p 1 -n 128 -r 3 --parallel 16 > /dev/null \
        2> "$OUT/profile-llama-x16.txt"
    cat "$OUT/profile-tg.txt" "$OUT/profile-x64.txt" "$OUT/profile-llama-x16.txt"
fi

# llama.cpp's CUDA build, carried in pieces (its libggml-cuda alone is ~60 MB):
# /tmp/ll/part* from earlier calls on the same warm machine, or $P/llama
if has llama && [ ! -x "$P/llama/llama-bench" ] && ls /tmp/ll/part* >/dev/null 2>&1; then
    mkdir -p "$P/llama" && cat /tmp/ll/part* | xz -d | tar x -C "$P/llama"
fi
if has llama && [ -x "$P/llama/llama-bench" ]; then
    LL() { LD_LIBRARY_PATH="$PWD/$P/llama:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}" "$@"; }
    for spec in "qwen3-0.6b q4_k_m" "qwen3-0.6b q8_0" "llama-1b q4_k_m" "llama-1b q8_0"; do
        f=$(gen $spec)
        LL "$P/llama/llama-bench" -m "$f" -p 512 -n 128 -r 5 -ngl 99 -o md >> "$OUT/llama-bench.md" 2>> "$OUT/llama.log" || failed+=("llama-bench-$spec")
        [ -x "$P/llama/llama-batched-bench" ] && LL "$P/llama/llama-batched-bench" -m "$f" -ngl 99 -c 20480 -b 2048 -ub 512 \
            -npp 128 -ntg 128 -npl 16,64 >> "$OUT/llama-batched.txt" 2>> "$OUT/llama.log"
    done
    cat "$OUT/llama-bench.md"
    grep -E "^\|" "$OUT/llama-batched.txt" | tail -20
fi

if has e2e; then
    E=/tmp/e2e/x
    rm -rf "$E" && mkdir -p "$E" && cat /tmp/e2e/part* | tar xz -C "$E"
    # --no-deps: numpy comes from the machine's own Python (PyTorch's)
    python3 -m pip install -q --no-index --no-deps --target /tmp/pylib "$E"/wheels/*.whl \
        > "$OUT/e2e-pip.txt" 2>&1 || { tail -5 "$OUT/e2e-pip.txt"; failed+=(e2e-pip); }
    mkdir -p models /tmp/mhd
    [ -f models/SmolLM2-135M-Instruct.Q4_1.gguf ] || cp "$E/SmolLM2-135M-Instruct.Q4_1.gguf" models/
    cp "$P/lib/libmicrohttpd.so.12" /tmp/mhd/
    # E2E_LAMINA_BIN / E2E_LIBS: another lamina build (a sanitizer's) and its libraries
    PYTHONPATH=/tmp/pylib:$E LAMINA_BIN="${E2E_LAMINA_BIN:-$PWD/$P/bin/lamina}" \
        LAMINA_SERVE_ARGS="${E2E_SERVE_ARGS:---device cuda --batch-invariant}" \
        LD_LIBRARY_PATH="${E2E_LIBS:+$E2E_LIBS:}/tmp/mhd:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}" \
        python3 -m pytest -q -p no:cacheprovider tests/e2e/test_server_basic.py tests/e2e/test_server_openai.py \
        tests/e2e/test_server_anthropic.py tests/e2e/test_server_completions.py tests/e2e/test_server_concurrency.py \
        tests/e2e/test_server_limits.py tests/e2e/test_server_hostile.py > "$OUT/e2e.txt" 2>&1 || failed+=(e2e)
    grep -E "passed|failed|error" "$OUT/e2e.txt" | tail -15
fi

if has overlap; then # the engine's overlap of a step's emission with the next step's kernels, on and off
    models=(tests/fixtures/models/qwen3-q4_k_m.gguf)
    for f in models/SmolLM2-135M-Instruct.Q4_1.gguf /tmp/e2e/x/SmolLM2-135M-Instruct.Q4_1.gguf; do
        [ -f "$f" ] && models+=("$f") && break
    done
    for f in "${models[@]}"; do
        name=$(basename "$f" .gguf)
        for rep in 1 2 3; do
            order="1 0"; [ $((rep % 2)) = 0 ] && order="0 1"
            for o in $order; do
                LAMINA_ENGINE_OVERLAP=$o LAMINA_ENGINE_PROFILE=1 \
                LD_LIBRARY_PATH="$PWD/$P/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}" "$P/bin/lamina" serve "$f" \
                    --device cuda --port 18090 > "$OUT/ov-$name-$o-$rep.log" 2>&1 &
                pid=$!
                for _ in $(seq 100); do curl -sf http://127.0.0.1:18090/health >/dev/null && break; sleep 0.2; done
                L "$P/bin/lamina" bench --url http://127.0.0.1:18090 --concurrency 1,16,64 --num-prompts 128 \
                    --input-len 64 --output-len 128 --json "$OUT/ov-$name-$o-$rep.json" > "$OUT/ov-$name-$o-$rep.txt" 2>&1 ||
                    failed+=("overlap-$name-$o-$rep")
                kill -TERM $pid; wait $pid 2>/dev/null
            done
        done
    done
    python3 - "$OUT" <<'PY'
import glob, json, os, re, statistics, sys
out = sys.argv[1]
runs = {}
for p in sorted(glob.glob(os.path.join(out, "ov-*.json"))):
    name, o, rep = re.match(r"ov-(.*)-([01])-(\d)\.json", os.path.basename(p)).groups()
    for lv in json.load(open(p))["levels"]:
        runs.setdefault((name, lv["concurrency"], o), []).append(lv["output_throughput"])
    prof = open(p[:-5] + ".log").read()
    m = re.search(r"per step \(us\): (.*)", prof)
    print(f"{name} overlap={o} rep {rep}: {m.group(1) if m else 'no profile'}")
for (name, c, o), v in sorted(runs.items()):
    if o == "1":
        off = runs.get((name, c, "0"), [0])
        a, b = statistics.median(v), statistics.median(off)
        print(f"{name} x{c}: overlap on {a:.0f} tok/s, off {b:.0f} tok/s (medians of {len(v)}), {a / b:.3f}x")
PY
fi

if [ ${#failed[@]} -gt 0 ]; then echo "cuda_device: FAILED: ${failed[*]}"; exit 1; fi
echo "cuda_device: all ok"
