#!/usr/bin/env bash
# run_bench.sh - CPU speed of lamina side by side with llama.cpp's llama-bench.
#
# llama.cpp comes from the llama-cpp-python sdist on PyPI (it carries
# vendor/llama.cpp); it is downloaded, unpacked and built once under build-ref/
# (git-ignored) and reused afterwards. lamina is taken from build/lamina.
#
# For every round, model and thread count the two programs run back to back
# (the order alternates between rounds), each timing pp<P> and tg<N> with
# <reps> repetitions. Per round a side's number is the median of its reps;
# the table shows the median over rounds. Raw results and the machine
# description go to build-ref/bench-<date>.json; the markdown table to stdout.
#
# Before each run the script waits (up to --max-wait seconds) until the
# machine is at least --min-idle percent idle, and it records how much CPU
# other processes took while each run was going, so a noisy run shows.
#
# --gen qwen3-0.6b,llama-1b adds random-weight GGUFs of those real shapes in
# each of --gen-types (default q4_0,q8_0,q4_k_m,f16), written once by
# build/gen_model into build-ref/gen/. Every round also measures the memory
# read bandwidth per thread count (lamina perf --mem-bandwidth), and the
# table gives each decode's share of that roofline (bandwidth / the weight
# bytes a token reads, which lamina perf reports).
#
# usage: bench/run_bench.sh [--models A.gguf,B.gguf] [--threads 1,2]
#                           [--rounds 3] [--reps 5] [-p 128] [-n 64]
#                           [--gen SHAPES] [--gen-types TYPES]
#                           [--min-idle 90] [--max-wait 600] [--lamina build/lamina]
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

LLAMA_CPP_PYTHON_VERSION=0.3.36
REF_DIR=build-ref
SDIST_DIR=$REF_DIR/sdist
SRC_DIR=$REF_DIR/src/llama_cpp_python-$LLAMA_CPP_PYTHON_VERSION/vendor/llama.cpp
BUILD_DIR=$REF_DIR/llama.cpp
LLAMA_BENCH=$BUILD_DIR/bin/llama-bench
LAMINA=${LAMINA:-build/lamina}
PIP=.venv/bin/pip
PYTHON=.venv/bin/python

models=models/SmolLM2-135M-Instruct.Q4_1.gguf,models/gemma-3-270m-q4_k_m.gguf
threads=1,2
rounds=3
reps=5
n_prompt=128
n_gen=64
build_only=0
min_idle=90
max_wait=600
gen_shapes=
gen_types=q4_0,q8_0,q4_k_m,f16
GEN_MODEL=${GEN_MODEL:-build/gen_model}

usage() {
    sed -n '/^# usage:/,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
    echo "  --build-only   fetch and build llama-bench, run nothing"
}

while [ $# -gt 0 ]; do
    case "$1" in
    --models) models=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --reps) reps=$2; shift 2 ;;
    -p) n_prompt=$2; shift 2 ;;
    -n) n_gen=$2; shift 2 ;;
    --min-idle) min_idle=$2; shift 2 ;;
    --max-wait) max_wait=$2; shift 2 ;;
    --lamina) LAMINA=$2; shift 2 ;;
    --gen) gen_shapes=$2; shift 2 ;;
    --gen-types) gen_types=$2; shift 2 ;;
    --build-only) build_only=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "run_bench.sh: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
    esac
done

log() { echo "[bench] $*" >&2; }

# --- llama.cpp: sdist -> source -> llama-bench (each step skipped when done) --

build_llama_bench() {
    local sdist=$SDIST_DIR/llama_cpp_python-$LLAMA_CPP_PYTHON_VERSION.tar.gz
    if [ ! -f "$sdist" ]; then
        log "downloading llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION sdist from PyPI"
        mkdir -p "$SDIST_DIR"
        "$PIP" download --no-deps --no-binary :all: "llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION" -d "$SDIST_DIR" >&2
    fi
    if [ ! -f "$SRC_DIR/CMakeLists.txt" ]; then
        log "unpacking vendor/llama.cpp into $REF_DIR/src"
        mkdir -p "$REF_DIR/src"
        tar -xzf "$sdist" -C "$REF_DIR/src" "llama_cpp_python-$LLAMA_CPP_PYTHON_VERSION/vendor/llama.cpp"
    fi
    if [ ! -x "$LLAMA_BENCH" ]; then
        log "building llama-bench in $BUILD_DIR (slow on a small machine)"
        # tests/examples/server/app off only to keep configure small; they do
        # not change how libllama or ggml-cpu are compiled.
        cmake -S "$SRC_DIR" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DLLAMA_CURL=OFF \
            -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF >&2
        cmake --build "$BUILD_DIR" --target llama-bench -j2 >&2
    fi
}

build_llama_bench
[ "$build_only" = 1 ] && { log "llama-bench ready: $LLAMA_BENCH"; exit 0; }

if [ ! -x "$LAMINA" ]; then
    echo "run_bench.sh: $LAMINA not found; build it first: cmake --build build -j2" >&2
    exit 1
fi

# --- runs ---------------------------------------------------------------------

stamp=$(date -u +%Y%m%d-%H%M%S)
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
lamina_commit=$(git describe --always --dirty 2>/dev/null || echo unknown)
lamina_built=$(date -u -r "$LAMINA" +%Y-%m-%dT%H:%M:%SZ)
raw_dir=$REF_DIR/bench-$stamp.d
mkdir -p "$raw_dir"
IFS=, read -r -a model_list <<<"$models"
IFS=, read -r -a thread_list <<<"$threads"
if [ -n "$gen_shapes" ]; then
    [ -x "$GEN_MODEL" ] || { echo "run_bench.sh: $GEN_MODEL not found; build it: cmake --build build -j2" >&2; exit 1; }
    mkdir -p "$REF_DIR/gen"
    IFS=, read -r -a shape_list <<<"$gen_shapes"
    IFS=, read -r -a type_list <<<"$gen_types"
    for shape in "${shape_list[@]}"; do
        for type in "${type_list[@]}"; do
            f=$REF_DIR/gen/$shape-$type.gguf
            [ -f "$f" ] || { log "writing $f"; "$GEN_MODEL" "$shape" "$type" "$f" >&2; }
            model_list+=("$f")
        done
    done
fi
for m in "${model_list[@]}"; do
    [ -f "$m" ] || { echo "run_bench.sh: model '$m' not found" >&2; exit 1; }
done

# --- machine quietness ----------------------------------------------------------

clk_tck=$(getconf CLK_TCK)

busy_idle_ticks() { # "busy idle" jiffies of the whole machine so far
    awk '/^cpu /{print $2+$3+$4+$7+$8+$9, $5+$6}' /proc/stat
}

idle_percent() { # percent of the machine idle over the next second
    local b0 i0 b1 i1
    read -r b0 i0 < <(busy_idle_ticks)
    sleep 1
    read -r b1 i1 < <(busy_idle_ticks)
    echo $((100 * (i1 - i0) / (b1 - b0 + i1 - i0 > 0 ? b1 - b0 + i1 - i0 : 1)))
}

wait_quiet() { # -> global quiet_idle, quiet_waited (seconds)
    quiet_waited=0
    quiet_idle=$(idle_percent)
    while ((quiet_idle < min_idle && quiet_waited < max_wait)); do
        ((quiet_waited == 0)) && log "machine ${quiet_idle}% idle (< ${min_idle}%): waiting up to ${max_wait}s"
        sleep 4
        quiet_waited=$((quiet_waited + 5))
        quiet_idle=$(idle_percent)
    done
    ((quiet_idle < min_idle)) && log "machine still ${quiet_idle}% idle after ${quiet_waited}s: running anyway"
    return 0
}

# run_measured SIDE ROUND MODEL THREADS OUT CMD...: waits for a quiet machine,
# runs CMD (stdout to OUT), and appends to quiet.tsv the idle percent found
# before, the seconds waited, and the CPU cores other processes used meanwhile
# (machine busy time minus the command's own user+system time, over wall time).
run_measured() {
    local side=$1 round=$2 model=$3 threads=$4 out=$5
    shift 5
    wait_quiet
    log "round $round: $*"
    local b0 i0 b1 i1 times
    read -r b0 i0 < <(busy_idle_ticks)
    times=$( { TIMEFORMAT='%3R %3U %3S'; time "$@" >"$out" 2>"$out.log"; } 2>&1) || {
        echo "run_bench.sh: '$*' failed; see $out.log" >&2
        exit 1
    }
    read -r b1 i1 < <(busy_idle_ticks)
    local others
    others=$(awk -v t="$times" -v db=$((b1 - b0)) -v hz="$clk_tck" \
        'BEGIN{split(t, a, " "); o = (db / hz - a[2] - a[3]) / a[1]; printf "%.2f", o < 0 ? 0 : o}')
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$side" "$round" "$(basename "$model" .gguf)" "$threads" \
        "$quiet_idle" "$quiet_waited" "$others" >>"$raw_dir/quiet.tsv"
}

run_llama() { # model threads round
    run_measured llama "$3" "$1" "$2" "$raw_dir/llama-$3-$(basename "$1" .gguf)-t$2.json" \
        "$LLAMA_BENCH" -m "$1" -p "$n_prompt" -n "$n_gen" -t "$2" -r "$reps" -o json
}

run_lamina() { # model threads round
    run_measured lamina "$3" "$1" "$2" "$raw_dir/lamina-$3-$(basename "$1" .gguf)-t$2.jsonl" \
        "$LAMINA" perf "$1" -p "$n_prompt" -n "$n_gen" -t "$2" -r "$reps"
}

run_bandwidth() { # threads round
    run_measured bw "$2" membw "$1" "$raw_dir/bw-$2-membw-t$1.jsonl" "$LAMINA" perf --mem-bandwidth -t "$1" -r 5
}

for ((round = 1; round <= rounds; round++)); do
    for t in "${thread_list[@]}"; do run_bandwidth "$t" "$round"; done
    for m in "${model_list[@]}"; do
        for t in "${thread_list[@]}"; do
            if ((round % 2)); then
                run_llama "$m" "$t" "$round"
                run_lamina "$m" "$t" "$round"
            else
                run_lamina "$m" "$t" "$round"
                run_llama "$m" "$t" "$round"
            fi
        done
    done
done

# --- machine description and summary --------------------------------------------

load_after=$(cut -d' ' -f1-3 /proc/loadavg)
cpu_model=$(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -1)
lamina_cpu=$("$LAMINA" info "${model_list[0]}" --cpu 2>&1 | sed -n 's/^cpu level:[[:space:]]*//p')
out_json=$REF_DIR/bench-$stamp.json

"$PYTHON" bench/summarize.py \
    --raw-dir "$raw_dir" --out "$out_json" \
    --date "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
    --cpu-model "$cpu_model" --n-cpus "$(nproc)" \
    --lamina-cpu "$lamina_cpu" --load-before "$load_before" --load-after "$load_after" \
    --lamina-commit "$lamina_commit (tree at start; $LAMINA built $lamina_built)" \
    --llama-cpp-source "llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION sdist (vendor/llama.cpp)" \
    --llama-cmd "$LLAMA_BENCH -m MODEL -p $n_prompt -n $n_gen -t T -r $reps -o json" \
    --lamina-cmd "$LAMINA perf MODEL -p $n_prompt -n $n_gen -t T -r $reps" \
    --rounds "$rounds" --reps "$reps"
"$PYTHON" bench/plot_cpu.py "$out_json" -o "$REF_DIR/bench-$stamp.png" ||
    log "no plot (bench/plot_cpu.py failed: is matplotlib in $PYTHON?)"
log "raw results: $out_json (per-run files in $raw_dir), plot: $REF_DIR/bench-$stamp.png"
