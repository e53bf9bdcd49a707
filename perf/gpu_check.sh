#!/usr/bin/env bash
# The GPU measurements of the suite in one prepared run (about 8 minutes on one H200):
#   1. perf/isnet_speed.py on CUDA: heatmap ratios, training-step ratios of every ISNet variant for
#      K = 2, 3, 10 on DenseNet121 and ResNet50 at 224 px, batch 32, inference, peak CUDA memory;
#   2. perf/isnet_speed.py on CUDA: the profiler's split (convolution kernels / other / launch gap)
#      with each variant's floor; then bf16 autocast against float32 (times and relative errors);
#   3. perf/paper_grid_cost.py: seconds per epoch of every method x experiment at the paper profile,
#      and the whole `run --all --profile paper` on 1 and N GPUs;
#   4. perf/isnet_speed.py --only compile: torch.compile of the ISNet module against eager;
#   5. gpu.md: the machine (nvidia-smi, torch, CUDA, cuDNN), each stage's result and all the tables.
# Every stage runs under its own time limit and writes its tables as it goes, so a stage cut short
# keeps what it finished. Results go to $OUT when it is set, else to reports/performance/.
#
#   perf/gpu_check.sh            # on a machine with a CUDA GPU
#   perf/gpu_check.sh --quick    # the same stages on the CPU at tiny sizes (a test of this script);
#                                # results to $OUT, else to a new temporary folder
#
# PYTHON names the interpreter (default python3); STAGES the stages to run (default all:
# "speed profile precision grid compile").
set -uo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
STAGES=" ${STAGES:-speed profile precision grid compile} "
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

if [ "${1:-}" = "--quick" ]; then
    DEVICE=cpu; TAG=quick
    DIR="${OUT:-$(mktemp -d -t gpu_check.XXXXXX)}"
    SPEED=(--quick --reps 1 --batch 2 --size 32)
    GRID=(--device cpu --quick --methods standard --experiments synthetic_tb)
    COMPILE=(--quick --reps 1 --batch 2 --size 16 --backbones tiny --variants selective --compile-backend aot_eager)
    LIMITS=(600 600 600 600 600)
elif [ -z "${1:-}" ]; then
    DEVICE=cuda; TAG=cuda
    DIR="${OUT:-reports/performance}"
    SPEED=(--device cuda --reps 3)
    GRID=(--device cuda --steps 6 --val-batches 2)
    COMPILE=(--device cuda --reps 3 --backbones resnet18 --variants selective)
    LIMITS=(140 80 80 120 60)  # speed, profile, precision, grid, compile: 480 s, plus about 15 s of preflight
else
    echo "usage: perf/gpu_check.sh [--quick]" >&2
    exit 2
fi
mkdir -p "$DIR"
STATUS="$DIR/stages_$TAG.tsv"
: > "$STATUS"

# stage NAME LIMIT_SECONDS COMMAND...: run it with a time limit, log it, record its exit code and duration
stage() {
    local name=$1 limit=$2 log="gpu_check_$1_$TAG.log" start rc
    shift 2
    if [ "$name" != preflight ] && [ "$name" != install ] && [[ "$STAGES" != *" $name "* ]]; then
        return 0
    fi
    start=$(date +%s)
    echo "== $name (limit ${limit} s)"
    echo "\$ $*" > "$DIR/$log"
    timeout -k 10 "$limit" "$@" >> "$DIR/$log" 2>&1
    rc=$?
    printf '%s\t%s\t%s\t%s\n' "$name" "$rc" "$(( $(date +%s) - start ))" "$log" >> "$STATUS"
    echo "   exit $rc after $(( $(date +%s) - start )) s; log $DIR/$log"
    return $rc
}

PREFLIGHT='
import sys
import torch
from benchmarks.registry import discover_experiments, discover_methods
device = sys.argv[1]
print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())
if device == "cuda" and not torch.cuda.is_available():
    sys.exit("no CUDA device visible to torch")
methods, experiments = discover_methods(), discover_experiments()
print(len(methods), "methods,", len(experiments), "experiments registered")
sys.exit(0 if methods and experiments else 3)
'

stage preflight 60 "$PY" -c "$PREFLIGHT" "$DEVICE"
if [ "$(tail -n 1 "$STATUS" | cut -f2)" = "3" ]; then  # plugins not registered: install the entry points
    stage install 120 "$PY" -m pip install --no-deps --no-build-isolation --quiet -e . && stage preflight 60 "$PY" -c "$PREFLIGHT" "$DEVICE"
fi
if [ "$(tail -n 1 "$STATUS" | cut -f2)" != "0" ]; then
    echo "preflight failed; see $DIR/gpu_check_preflight_$TAG.log" >&2
    exit 1
fi

stage speed "${LIMITS[0]}" "$PY" perf/isnet_speed.py "${SPEED[@]}" --only heatmap,train,export,memory \
    --output "$DIR/isnet_speed_$TAG.md" --json "$DIR/isnet_speed_$TAG.json"
stage profile "${LIMITS[1]}" "$PY" perf/isnet_speed.py "${SPEED[@]}" --reps 2 --only breakdown \
    --output "$DIR/isnet_speed_profile_$TAG.md" --json "$DIR/isnet_speed_profile_$TAG.json"
stage precision "${LIMITS[2]}" "$PY" perf/isnet_speed.py "${SPEED[@]}" --only precision \
    --output "$DIR/isnet_precision_$TAG.md" --json "$DIR/isnet_precision_$TAG.json"
stage grid "${LIMITS[3]}" "$PY" perf/paper_grid_cost.py "${GRID[@]}" --out-dir "$DIR"
stage compile "${LIMITS[4]}" "$PY" perf/isnet_speed.py "${COMPILE[@]}" --only compile \
    --output "$DIR/isnet_compile_$TAG.md" --json "$DIR/isnet_compile_$TAG.json"

GRID_TABLE=paper_grid_cost.md
[ "$TAG" = quick ] && GRID_TABLE=grid_cost_smoke.md
REPORT=gpu.md
[ "$TAG" = quick ] && REPORT=gpu_quick.md
"$PY" perf/gpu_report.py --dir "$DIR" --status "$STATUS" --device "$DEVICE" --name "$REPORT" \
    --tables "isnet_speed_$TAG.md" "isnet_speed_profile_$TAG.md" "isnet_precision_$TAG.md" "$GRID_TABLE" \
    "isnet_compile_$TAG.md"
