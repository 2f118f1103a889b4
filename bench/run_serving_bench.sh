#!/usr/bin/env bash
# run_serving_bench.sh - lamina serve against llama.cpp's llama-server under
# the same load, driven by `lamina bench`, on the same machine in one run.
#
# llama-server is built from the llama-cpp-python sdist (vendor/llama.cpp)
# that bench/run_bench.sh downloads and unpacks under build-ref/ (git-ignored);
# this script reuses them and builds only the llama-server target, in
# build-ref/llama-server. lamina is taken from build/lamina (--lamina).
#
# Each repetition starts each server afresh (the order alternates between
# repetitions), sends a short warm-up, then:
#   throughput  lamina bench at concurrency 1,4,16: N prompts per level,
#               prompt token ids via /v1/completions, ignore_eos, greedy
#   warm prefix two requests, one after the other, sharing a P-token prefix
#               (+16 tokens of their own): TTFT of the second vs the first
# Each run gets its own seed, so no repetition finds another's prompts in a
# cache. The table gives medians over repetitions; raw JSON, server logs and
# a plot go to build-ref/serving-<date>.{d,md,png}. With --update-benchmarks
# the section "## Serving: lamina vs llama-server" of BENCHMARKS.md is
# replaced (or appended) with the table and the commands.
#
# Before each server run the script waits (up to --max-wait seconds) until
# the machine is at least --min-idle percent idle and no other CPU benchmark
# (llama-bench, lamina perf) runs, and it records the load average and the
# CPU that other processes took while the run went on.
#
# usage: bench/run_serving_bench.sh [--model M.gguf] [--threads 2] [--reps 3]
#                                   [--concurrency 1,4,16] [--num-prompts 32]
#                                   [--input-len 128] [--output-len 64]
#                                   [--prefix-len 1000] [--ctx 2048]
#                                   [--lamina build/lamina] [--min-idle 80]
#                                   [--max-wait 120] [--llama-args "EXTRA FLAGS"]
#                                   [--update-benchmarks]
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
invocation="bench/run_serving_bench.sh$(printf ' %q' "$@")"
cd "$ROOT"

LLAMA_CPP_PYTHON_VERSION=0.3.36
REF_DIR=build-ref
SDIST_DIR=$REF_DIR/sdist
SRC_DIR=$REF_DIR/src/llama_cpp_python-$LLAMA_CPP_PYTHON_VERSION/vendor/llama.cpp
BUILD_DIR=$REF_DIR/llama-server
LLAMA_SERVER=$BUILD_DIR/bin/llama-server
PIP=.venv/bin/pip
PYTHON=.venv/bin/python

model=models/SmolLM2-135M-Instruct.Q4_1.gguf
threads=2
reps=3
concurrency=1,4,16
num_prompts=32
input_len=128
output_len=64
prefix_len=1000
ctx=2048
n_slots=16
lamina=build/lamina
min_idle=80
max_wait=120
llama_args=
update=0
build_only=0

usage() {
    sed -n '/^# usage:/,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
    echo "  --build-only   fetch and build llama-server, run nothing"
}

while [ $# -gt 0 ]; do
    case "$1" in
    --model) model=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --reps) reps=$2; shift 2 ;;
    --concurrency) concurrency=$2; shift 2 ;;
    --num-prompts) num_prompts=$2; shift 2 ;;
    --input-len) input_len=$2; shift 2 ;;
    --output-len) output_len=$2; shift 2 ;;
    --prefix-len) prefix_len=$2; shift 2 ;;
    --ctx) ctx=$2; shift 2 ;;
    --lamina) lamina=$2; shift 2 ;;
    --min-idle) min_idle=$2; shift 2 ;;
    --max-wait) max_wait=$2; shift 2 ;;
    --llama-args) llama_args=$2; shift 2 ;;
    --update-benchmarks) update=1; shift ;;
    --build-only) build_only=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "run_serving_bench.sh: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
    esac
done

log() { echo "[serving] $*" >&2; }

# --- llama.cpp: sdist -> source (as run_bench.sh) -> llama-server ---------------

build_llama_server() {
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
    if [ ! -x "$LLAMA_SERVER" ]; then
        log "building llama-server in $BUILD_DIR (slow on a small machine)"
        # the web UI is neither built (npm) nor downloaded: the API is all we use
        cmake -S "$SRC_DIR" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON \
            -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=ON \
            -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_BUILD_APP=OFF >&2
        cmake --build "$BUILD_DIR" --target llama-server -j2 >&2
    fi
}

build_llama_server
[ "$build_only" = 1 ] && { log "llama-server ready: $LLAMA_SERVER"; exit 0; }

[ -f "$model" ] || { echo "run_serving_bench.sh: model '$model' not found" >&2; exit 1; }
if ! "$lamina" bench --help >/dev/null 2>&1; then
    echo "run_serving_bench.sh: $lamina has no 'bench' command; build it first: cmake --build build -j2" >&2
    exit 1
fi

# --- machine quietness (as run_bench.sh) ----------------------------------------

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

# another CPU benchmark (bench/run_bench.sh's llama-bench or lamina perf):
# two of them side by side on two cores ruin each other's numbers
other_benchmark() {
    pgrep -x llama-bench >/dev/null || pgrep -f '(^|/)lamina perf ' >/dev/null
}

wait_quiet() { # -> global quiet_idle, quiet_waited (seconds)
    quiet_waited=0
    quiet_idle=$(idle_percent)
    while { ((quiet_idle < min_idle)) || other_benchmark; } && ((quiet_waited < max_wait)); do
        ((quiet_waited == 0)) &&
            log "machine ${quiet_idle}% idle (want ${min_idle}%) or another benchmark running: waiting up to ${max_wait}s"
        sleep 4
        quiet_waited=$((quiet_waited + 5))
        quiet_idle=$(idle_percent)
    done
    ((quiet_idle < min_idle)) && log "machine still ${quiet_idle}% idle after ${quiet_waited}s: running anyway"
    return 0
}

proc_ticks() { # utime+stime jiffies of process $1 (its threads included)
    awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0
}

# --- servers -------------------------------------------------------------------

server_pid=
server_url=

stop_server() {
    [ -n "$server_pid" ] || return 0
    kill -TERM "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=
}
trap stop_server EXIT

free_port() {
    "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_healthy() { # URL LOG: /health answers 200 (llama-server says 503 while loading)
    local i
    for ((i = 0; i < 600; i++)); do
        if curl -sf -o /dev/null "$1/health"; then return 0; fi
        kill -0 "$server_pid" 2>/dev/null || { echo "run_serving_bench.sh: server died; see $2" >&2; exit 1; }
        sleep 0.2
    done
    echo "run_serving_bench.sh: $1/health never answered; see $2" >&2
    exit 1
}

start_llama() { # LOG
    local port
    port=$(free_port)
    # shellcheck disable=SC2086 # --llama-args is a list of flags
    "$LLAMA_SERVER" -m "$model" -t "$threads" -np "$n_slots" -c $((n_slots * ctx)) \
        --host 127.0.0.1 --port "$port" --no-webui $llama_args >"$1" 2>&1 &
    server_pid=$!
    server_url=http://127.0.0.1:$port
    wait_healthy "$server_url" "$1"
}

start_lamina() { # LOG: its start line (stdout) names the address it got for --port 0
    local i=0
    server_url=
    "$lamina" serve "$model" --threads "$threads" --ctx-size "$ctx" --port 0 >"$1.stdout" 2>"$1" &
    server_pid=$!
    while [ -z "$server_url" ] && ((i++ < 600)); do
        kill -0 "$server_pid" 2>/dev/null || { echo "run_serving_bench.sh: lamina serve died; see $1" >&2; exit 1; }
        sleep 0.2
        server_url=$(sed -n '1s/.* at \(http:[^ ]*\).*/\1/p' "$1.stdout")
    done
    [ -n "$server_url" ] || { echo "run_serving_bench.sh: lamina serve printed no address; see $1" >&2; exit 1; }
    wait_healthy "$server_url" "$1"
}

bench() { # URL ARGS...
    local url=$1
    shift
    "$lamina" bench --url "$url" "$@"
}

# run_side SIDE REP SEED: one server start, warm-up, throughput, warm prefix;
# appends "side rep idle waited load1 others_cores" to quiet.tsv
run_side() {
    local side=$1 rep=$2 seed=$3 out=$raw_dir/$1-r$2
    wait_quiet
    local load1
    load1=$(cut -d' ' -f1 /proc/loadavg)
    log "rep $rep: $side (load $load1, ${quiet_idle}% idle)"
    if [ "$side" = llama ]; then start_llama "$out.server.log"; else start_lamina "$out.server.log"; fi
    bench "$server_url" --concurrency 1 --num-prompts 2 --input-len 32 --output-len 8 --seed 7 >/dev/null || {
        echo "run_serving_bench.sh: the warm-up against $side failed; see $out.server.log" >&2
        exit 1
    }
    local b0 i0 b1 i1 s0 s1 times
    read -r b0 i0 < <(busy_idle_ticks)
    s0=$(proc_ticks "$server_pid")
    times=$( { TIMEFORMAT='%3R %3U %3S'; time {
        bench "$server_url" --concurrency "$concurrency" --num-prompts "$num_prompts" --input-len "$input_len" \
            --output-len "$output_len" --seed "$seed" --json "$out.json" >"$out.txt" 2>"$out.err" &&
            bench "$server_url" --concurrency 1 --num-prompts 2 --input-len $((prefix_len + 16)) \
                --shared-prefix "$prefix_len" --output-len 8 --seed $((seed + 1)) --json "$out.warm.json" \
                >"$out.warm.txt" 2>>"$out.err"
    }; } 2>&1) || {
        echo "run_serving_bench.sh: lamina bench failed against $side:" >&2
        cat "$out.err" >&2
        exit 1
    }
    s1=$(proc_ticks "$server_pid")
    read -r b1 i1 < <(busy_idle_ticks)
    stop_server
    local others
    others=$(awk -v t="$times" -v db=$((b1 - b0)) -v ds=$((s1 - s0)) -v hz="$clk_tck" \
        'BEGIN{split(t, a, " "); o = ((db - ds) / hz - a[2] - a[3]) / a[1]; printf "%.2f", o < 0 ? 0 : o}')
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$side" "$rep" "$quiet_idle" "$quiet_waited" "$load1" "$others" \
        >>"$raw_dir/quiet.tsv"
}

# --- runs ----------------------------------------------------------------------

# what is measured: the tree now and when the binary was built from it
tree=$(git describe --always --dirty 2>/dev/null || echo unknown)
lamina_built=$(date -u -r "$lamina" +"%Y-%m-%d %H:%M UTC")
stamp=$(date -u +%Y%m%d-%H%M%S)
raw_dir=$REF_DIR/serving-$stamp.d
mkdir -p "$raw_dir"
: >"$raw_dir/quiet.tsv"
for ((rep = 1; rep <= reps; rep++)); do
    if ((rep % 2)); then order="llama lamina"; else order="lamina llama"; fi
    for side in $order; do
        run_side "$side" "$rep" $((1000 * rep))
    done
done

# --- summary ---------------------------------------------------------------------

out_md=$REF_DIR/serving-$stamp.md
cmd_llama="$LLAMA_SERVER -m $model -t $threads -np $n_slots -c $((n_slots * ctx)) --host 127.0.0.1 --port PORT"
cmd_llama+=" --no-webui${llama_args:+ $llama_args}"
cmd_lamina="$lamina serve $model --threads $threads --ctx-size $ctx --port 0"
cmd_bench="$lamina bench --url URL --concurrency $concurrency --num-prompts $num_prompts --input-len $input_len"
cmd_bench+=" --output-len $output_len --seed 1000*REP --json FILE"
cmd_warm="$lamina bench --url URL --concurrency 1 --num-prompts 2 --input-len $((prefix_len + 16))"
cmd_warm+=" --shared-prefix $prefix_len --output-len 8 --seed 1000*REP+1 --json FILE"

"$PYTHON" - "$raw_dir" "$out_md" <<EOF
import json, statistics, sys
from pathlib import Path

raw, out_md = Path(sys.argv[1]), Path(sys.argv[2])
reps, levels = $reps, [int(c) for c in "$concurrency".split(",")]
sides = {"lamina": "lamina", "llama": "llama-server"}
med = statistics.median

def load(side, kind=""):
    return [json.loads((raw / f"{side}-r{r}{kind}.json").read_text()) for r in range(1, reps + 1)]

tput = {s: load(s) for s in sides}
warm = {s: load(s, ".warm") for s in sides}

def level(d, c):
    return next(lv for lv in d["levels"] if lv["concurrency"] == c)

def tps(s, c):
    return [level(d, c)["output_throughput"] for d in tput[s]]

def ttft(s, c, p):
    return [level(d, c)["ttft_ms"][p] for d in tput[s]]

def cell(vals, fmt="{:.1f}"):
    if len(vals) == 1:
        return fmt.format(vals[0])
    return f"{fmt.format(med(vals))} ({fmt.format(min(vals))}-{fmt.format(max(vals))})"

def warm_pair(s):  # per repetition (cold, warm) TTFT in ms
    return [tuple(q["ttft_ms"] for q in d["levels"][0]["requests"]) for d in warm[s]]

lo, hi = levels[0], levels[-1]
rows = []
for c in levels:
    rows.append((f"output tok/s, {c} stream{'s' if c > 1 else ''}", cell(tps("lamina", c)), cell(tps("llama", c)),
                 f"{med(tps('lamina', c)) / med(tps('llama', c)):.2f}x"))
ratio = {s: [a / b for a, b in zip(tps(s, hi), tps(s, lo))] for s in sides}
rows.append((f"{hi} streams over {lo}", cell(ratio["lamina"], "{:.2f}x"), cell(ratio["llama"], "{:.2f}x"), ""))
for p in ("p50", "p99"):
    a, b = ttft("lamina", hi, p), ttft("llama", hi, p)
    rows.append((f"TTFT {p} at {hi} streams, ms", cell(a, "{:.0f}"), cell(b, "{:.0f}"), f"{med(a) / med(b):.2f}x"))
itl = {s: [level(d, hi)["itl_ms"]["p50"] for d in tput[s]] for s in sides}
rows.append((f"ITL p50 at {hi} streams, ms", cell(itl["lamina"]), cell(itl["llama"]),
             f"{med(itl['lamina']) / med(itl['llama']):.2f}x"))
pairs = {s: warm_pair(s) for s in sides}
cold = {s: [p[0] for p in pairs[s]] for s in sides}
hot = {s: [p[1] for p in pairs[s]] for s in sides}
rows.append(("cold TTFT, $((prefix_len + 16))-token prompt, ms", cell(cold["lamina"], "{:.0f}"),
             cell(cold["llama"], "{:.0f}"), ""))
rows.append(("warm TTFT, same $prefix_len-token prefix, ms", cell(hot["lamina"], "{:.0f}"), cell(hot["llama"], "{:.0f}"),
             ""))
wr = {s: [w / c * 100 for c, w in pairs[s]] for s in sides}
rows.append(("warm / cold TTFT", cell(wr["lamina"], "{:.1f}%"), cell(wr["llama"], "{:.1f}%"), ""))
cached = {s: [d["levels"][0]["requests"][1]["cached_tokens"] for d in warm[s]] for s in sides}
rows.append(("prefix tokens reused by the warm request", cell(cached["lamina"], "{:.0f}"),
             cell(cached["llama"], "{:.0f}"), ""))

quiet = [l.split("\t") for l in (raw / "quiet.tsv").read_text().splitlines()]
loads = [float(q[4]) for q in quiet]
others = [float(q[5]) for q in quiet]
idle = [int(q[2]) for q in quiet]

import datetime, os
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "unknown CPU")
date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")

md = []
md.append("## Serving: lamina vs llama-server\n")
md.append(f"Measured {date} by \`bench/run_serving_bench.sh\` on {cpu}, {os.cpu_count()} cores, shared with other "
          f"engineers' builds: 1-minute load average at the start of the {len(quiet)} server runs "
          f"{min(loads):.2f}-{max(loads):.2f} (median {med(loads):.2f}), machine idle before them "
          f"{min(idle)}-{max(idle)}%, other processes took {min(others):.2f}-{max(others):.2f} cores "
          f"(median {med(others):.2f}) while they ran. lamina: tree $tree at the start, \`$lamina\` built "
          f"$lamina_built; llama.cpp from the "
          f"llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION sdist.\n")
md.append(f"Model \`$model\`, $threads threads each. \`lamina bench\` drives both servers the same way: "
          f"$num_prompts streamed requests per concurrency level, prompts of $input_len token ids "
          f"(\`/v1/completions\`), $output_len output tokens (\`ignore_eos\`), greedy. Each cell is the median of "
          f"{reps} repetitions (range in brackets); each repetition restarts both servers, alternating which goes "
          f"first, and uses its own prompts.\n")
md.append("| | lamina | llama-server | lamina / llama-server |")
md.append("| --- | ---: | ---: | ---: |")
for r in rows:
    md.append("| " + " | ".join(r) + " |")
md.append("")
md.append("Throughput: higher is better; TTFT and ITL (inter-token latency): lower is better. The last column is "
          "lamina's median over llama-server's.\n")
def verdict(ok):
    return "met" if ok else "not met"
r_ours = med(ratio["lamina"])
r_vs = med(tps("lamina", hi)) / med(tps("llama", hi))
r_p99 = med(ttft("lamina", hi, "p99")) / med(ttft("llama", hi, "p99"))
r_warm = med(wr["lamina"])
md.append("Targets of the engine issue, on these medians:\n")
md.append(f"- lamina at {hi} streams >= 4.3x lamina at {lo}: {r_ours:.2f}x, {verdict(r_ours >= 4.3)}")
md.append(f"- lamina at {hi} streams >= 1.5x llama-server at {hi}: {r_vs:.2f}x, {verdict(r_vs >= 1.5)}")
md.append(f"- p99 TTFT at {hi} streams <= 1/3 of llama-server's: {r_p99:.2f}x, {verdict(r_p99 <= 1 / 3)}")
md.append(f"- warm-prefix TTFT <= 10% of cold: {r_warm:.1f}%, {verdict(r_warm <= 10)}")
md.append("")
md.append("Commands (per repetition; PORT, URL, REP and FILE filled in by the script):\n")
md.append("    $invocation")
md.append("    $cmd_llama")
md.append("    $cmd_lamina")
md.append("    $cmd_bench")
md.append("    $cmd_warm")
md.append("")
text = "\n".join(md).rstrip("\n") + "\n"
out_md.write_text(text)
print(text)
EOF

plot=$REF_DIR/serving-$stamp.png
if "$PYTHON" -c "import matplotlib" 2>/dev/null; then
    files=()
    for ((rep = 1; rep <= reps; rep++)); do
        files+=("lamina=$raw_dir/lamina-r$rep.json" "llama-server=$raw_dir/llama-r$rep.json")
    done
    "$PYTHON" scripts/plot_bench.py "${files[@]}" -o "$plot" \
        --title "$(basename "$model" .gguf), $threads threads: lamina vs llama-server" >/dev/null
    log "plot: $plot"
fi

if [ "$update" = 1 ]; then
    img=""
    if [ -f "$plot" ]; then # the plot goes into the repository beside the table
        img=docs/img/serving-${stamp%%-*}.png
        mkdir -p docs/img && cp "$plot" "$img"
    fi
    "$PYTHON" - "$out_md" BENCHMARKS.md "$img" "$plot" <<'EOF'
import re, sys
from pathlib import Path

section, target = Path(sys.argv[1]).read_text(), Path(sys.argv[2])
img, plot = sys.argv[3], sys.argv[4]
if img:
    mark = "lamina's median over llama-server's.\n"
    section = section.replace(mark, mark + f"\n![throughput and TTFT against concurrency, lamina and llama-server]({img})\n\n"
                              f"(`scripts/plot_bench.py` over the repetitions' `lamina bench --json` files: {plot}.)\n", 1)
text = target.read_text() if target.exists() else ""
head = "## Serving: lamina vs llama-server"
start = text.find(head)
if start < 0:
    text = (text.rstrip("\n") + "\n\n" if text.strip() else "") + section
else:
    m = re.compile(r"^## ", re.M).search(text, start + len(head))
    end = m.start() if m else len(text)
    text = text[:start] + section + ("\n" + text[end:] if m else "")
target.write_text(text)
EOF
    log "BENCHMARKS.md: section '## Serving: lamina vs llama-server' updated${img:+ (plot: $img)}"
fi
log "raw results: $raw_dir, table: $out_md"
