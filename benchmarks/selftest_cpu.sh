#!/bin/bash
# The self-test on every KernelBench level on this machine's CPU (Triton interpreter, scaled shapes).
# usage (repo root): PYTHONPATH=$PWD bash benchmarks/selftest_cpu.sh OUTDIR [JOBS]
# Writes OUTDIR/cpu-level{1,2,3,4}.{json,log,txt}; then: python3 benchmarks/selftest_summary.py OUTDIR/*.json
set -u
out=${1:?usage: selftest_cpu.sh OUTDIR [JOBS]}
jobs=${2:-2}
kb=${KERNELBENCH_DIR:-../shared/kernelbench}
py=${PYTHON:-python3}
mkdir -p "$out"
for level in 1 2 3 4; do
    "$py" -m pytest_kernelfalcon.cli selftest "$kb/level$level" --device cpu -j "$jobs" \
        --json "$out/cpu-level$level.json" > "$out/cpu-level$level.txt" 2> "$out/cpu-level$level.log"
    echo "level $level: exit $?"
done
