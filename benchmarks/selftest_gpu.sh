#!/bin/bash
# The self-test on one KernelBench level (or one shard of it) on the GPU at official shapes, bounded so that
# one 10-minute device call always ends with its JSON: no task starts after BUDGET seconds (default 400; tasks
# left are listed as not run), and `timeout` stops the whole run at 560 s (the JSON then holds every row
# finished so far, with "complete": false).
# usage (repo root): PYTHONPATH=$PWD KERNELBENCH_DIR=... bash benchmarks/selftest_gpu.sh LEVEL [SHARD] [OUTDIR] [JOBS]
#   SHARD: I/N (every N-th task from the I-th, natural order), default 1/1
set -u
level=${1:?usage: selftest_gpu.sh LEVEL [SHARD] [OUTDIR] [JOBS]}
shard=${2:-1/1}
out=${3:-benchmarks/results/selftest-gpu}
jobs=${4:-4}
kb=${KERNELBENCH_DIR:-../shared/kernelbench}
py=${PYTHON:-python3}
mkdir -p "$out"
name="gpu-level$level-shard${shard/\//of}"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader > "$out/gpu.txt" 2>&1
timeout -k 10 560 "$py" -m pytest_kernelfalcon.cli selftest "$kb/level$level" --device cuda -j "$jobs" \
    --timeout 120 --shard "$shard" --budget "${BUDGET:-400}" --json "$out/$name.json" \
    > "$out/$name.txt" 2> "$out/$name.log"
echo "level $level shard $shard: exit $?"
