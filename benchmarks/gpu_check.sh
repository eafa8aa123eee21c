#!/usr/bin/env bash
# The one prepared check for a lent GPU machine (benchmarks/README.md, "GPU check").
#
#   benchmarks/gpu_check.sh prepare            here (package indexes, the project's venv):
#                                              data and faces of Table 1, wheels, commit
#                                              -> .gpu_check/carry/ (carry that folder)
#   benchmarks/gpu_check.sh run [--device cpu] on the GPU machine, in the repository root:
#                                              CUDA tests, Table 1 through Snakemake with the
#                                              paper's training settings, bench_gpu.py
#                                              -> $OUT/report.md, table1_run.tar.gz,
#                                              bench_gpu.json, logs.tar.gz
#   benchmarks/gpu_check.sh compare DIR        here, with DIR the files `run` gave back: the
#                                              GPU-trained models scored again on the CPU
#                                              -> .gpu_check/compare/compare.md (exit 1 if
#                                              over tolerance)
#
# Each step of `run` has its own time limit (120 + 240 + 150 + 60 s), so the command ends
# inside the device tool's 600 s.
# `run --device cpu` does every step on the CPU with a short schedule (`--quick` is implied):
# the tests skip their CUDA cases, so this checks the script, not the GPU. The GPU machine
# reaches no package index and has no PyAV or Snakemake: the data and faces stages run here,
# their outputs travel in the carry folder with the wheels the later rules need, and Snakemake
# runs there with only the training, evaluation and table rules allowed.
set -uo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
CARRY=.gpu_check/carry
CONFIGS=(config.yaml benchmarks/gpu_check.yaml)
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] && [ "${1:-}" != run ] && PYTHON=.venv/bin/python

snakemake_in() {  # snakemake_in WORKDIR ARGS...: the workflow of this checkout in WORKDIR
    local work=$1
    shift
    "$PYTHON" -m snakemake --snakefile "$REPO/Snakefile" --directory "$work" \
        --configfile "${CONFIGS[@]}" --scheduler greedy "$@"
}

prepare() {
    rm -rf .gpu_check/work "$CARRY"
    mkdir -p .gpu_check/work "$CARRY"
    # the data and faces of Table 1's sources, as the GPU run's configuration makes them
    snakemake_in .gpu_check/work --cores all --until align_faces table1 || exit 1
    # Table 1 reads FF++ alone (the other face sets are made too: align_faces runs first)
    tar -czf "$CARRY/inputs.tar.gz" -C .gpu_check/work results/data/ffpp results/faces/ffpp-c23 \
        results/faces/ffpp-c40 || exit 1
    "$PYTHON" benchmarks/gpu_check.py wheels "$CARRY/wheels" || exit 1
    { git rev-parse HEAD; git status --porcelain | head -20; } >"$CARRY/commit.txt"
    du -sh "$CARRY" "$CARRY"/*
    echo "carry: [\"$CARRY\"]; command: benchmarks/gpu_check.sh run"
}

run_check() {
    local device=cuda quick=0
    while [ $# -gt 0 ]; do
        case $1 in
            --device) device=$2; shift 2 ;;
            --quick) quick=1; shift ;;
            *) echo "unknown option $1" >&2; exit 2 ;;
        esac
    done
    [ "$device" = cpu ] && quick=1
    OUT=${OUT:-$REPO/.gpu_check/out}
    # at most 8 files come back from the machine: logs and records go in one archive
    local parts=/tmp/gpu_check_parts
    rm -rf "$parts" && mkdir -p "$OUT" "$parts"
    [ -f "$CARRY/inputs.tar.gz" ] || { echo "no $CARRY/inputs.tar.gz: run 'benchmarks/gpu_check.sh prepare' first and carry $CARRY" >&2; exit 2; }
    if ! "$PYTHON" -c "import snakemake, jsonschema, retinaface" 2>/dev/null; then
        "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
            --target /tmp/gpu_check_site "$CARRY"/wheels/*.whl || exit 1
        export PYTHONPATH=/tmp/gpu_check_site${PYTHONPATH:+:$PYTHONPATH}
    fi
    export PYTHONPATH=$REPO/src:$REPO/tests${PYTHONPATH:+:$PYTHONPATH}
    export PYTHONUNBUFFERED=1
    cp "$CARRY/commit.txt" "$parts/commit.txt"
    {
        nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>/dev/null || echo "no nvidia-smi"
        "$PYTHON" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'gpu', torch.cuda.get_device_name() if torch.cuda.is_available() else None)"
        lscpu | grep -m1 'Model name'
        nproc
    } >"$parts/machine.txt" 2>&1
    local work=/tmp/gpu_check_work
    rm -rf "$work" && mkdir -p "$work"
    tar -xzf "$CARRY/inputs.tar.gz" -C "$work"
    # where training, fine-tuning and scoring run; with --quick a few iterations, steps, episodes
    local overlay=$work/gpu_check_run.yaml quick_flag=()
    [ "$quick" = 1 ] && quick_flag=(--quick)
    "$PYTHON" benchmarks/gpu_check.py overlay "$overlay" --device "$device" "${quick_flag[@]}" || exit 1
    CONFIGS+=("$overlay")
    # a CPU shared with other work: one thread, or OpenMP's spinning threads crawl
    [ "$device" = cpu ] && export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}

    # 1. the CUDA tests: every test whose name says cuda, and the graph runner's file
    # (test files that import what the image lacks, PyAV, fail to collect; the rest run)
    timeout -k 10 120 "$PYTHON" -m pytest -q -p no:cacheprovider --junitxml="$parts/tests.xml" \
        --continue-on-collection-errors \
        tests/unit/test_graphed.py tests/unit -k "cuda or graph" >"$parts/tests.log" 2>&1
    echo "tests: exit $?"

    # 2. Table 1 through Snakemake, one GPU job at a time, training and evaluation on $device
    local start=$SECONDS
    timeout -k 10 240 "$PYTHON" -m snakemake --snakefile "$REPO/Snakefile" --directory "$work" \
        table1 --configfile "${CONFIGS[@]}" --scheduler greedy --cores all --resources gpu=1 \
        --rerun-triggers mtime --allowed-rules train_models evaluate_models make_table table1 \
        >"$parts/snakemake.log" 2>&1
    echo "snakemake table1: exit $?"
    echo $((SECONDS - start)) >"$parts/snakemake_wall_s.txt"
    tar -czf "$OUT/table1_run.tar.gz" -C "$work" --exclude='*/checkpoint.pt' \
        gpu_check_run.yaml results/train results/evaluate results/tables results/benchmarks \
        results/logs 2>/dev/null

    # 3. the speed of training steps and of the paper's schedule
    # the schedule with the two graphed passes worth timing (vmap is the slow general one)
    local bench=(--device "$device" --out "$OUT/bench_gpu.json"
                 --schedule-runners graph_bf16_grouped graph_bf16)
    [ "$quick" = 1 ] && bench=(--device "$device" --out "$OUT/bench_gpu.json" --image-size 32
                               --block 5 --repeats 1 --warmup 2 --check-iterations 2
                               --iterations 20 --train-videos 8 --val-videos 6 --frames 4
                               --schedule-runners eager_fp32)
    timeout -k 10 150 "$PYTHON" benchmarks/bench_gpu.py "${bench[@]}" >"$parts/bench_gpu.log" 2>&1
    echo "bench_gpu: exit $?"

    # 4. the face detector: torch on the GPU against onnxruntime on the CPU cores
    if [ "$device" != cpu ]; then
        timeout -k 10 60 "$PYTHON" benchmarks/bench_face_backends.py --frames 128 --repeats 3 \
            >"$parts/bench_face_backends.log" 2>&1
        echo "bench_face_backends: exit $?"
    fi

    "$PYTHON" benchmarks/gpu_check.py report "$parts" "$work" "$OUT/bench_gpu.json"
    cp "$parts/report.md" "$OUT/report.md"
    tar -czf "$OUT/logs.tar.gz" -C "$parts" .
    ls -la "$OUT"
}

compare() {
    local returned=${1:?usage: gpu_check.sh compare DIR (the files run gave back)}
    # the returned files may be read-only: everything is unpacked and written under .gpu_check/
    local cpu=.gpu_check/compare/cpu gpu=.gpu_check/compare/gpu
    rm -rf .gpu_check/compare && mkdir -p "$cpu" "$gpu"
    tar -xzf "$returned/table1_run.tar.gz" -C "$gpu" || exit 1
    tar -xzf "$CARRY/inputs.tar.gz" -C "$cpu"
    tar -xzf "$returned/table1_run.tar.gz" -C "$cpu" results/train
    # the GPU's models as they are, scored and fine-tuned again here
    # the run's own settings (its overlay travelled back), every device the CPU
    "$PYTHON" benchmarks/gpu_check.py overlay "$cpu/on_cpu.yaml" --device cpu \
        --base "$gpu/gpu_check_run.yaml" || exit 1
    CONFIGS+=("$cpu/on_cpu.yaml")
    snakemake_in "$cpu" table1 --cores all --rerun-triggers mtime --forcerun evaluate_models \
        --allowed-rules evaluate_models make_table table1 || exit 1
    "$PYTHON" benchmarks/gpu_check.py compare "$gpu" "$cpu" .gpu_check/compare
}

case ${1:-} in
    prepare) prepare ;;
    run) shift; run_check "$@" ;;
    compare) shift; compare "$@" ;;
    *) sed -n '2,14p' "$0"; exit 2 ;;
esac
