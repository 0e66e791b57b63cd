#!/usr/bin/env bash
# GPU validation in one call (the package need not be installed there):
#   1. the bundled samples through the whole offline pipeline at official shapes (+ timed with --falcon-bench)
#   2. the checker's test corpus on cuda
#   3. the executor benchmark (cold vs warm) when EXECUTOR_BENCH=1
# Usage on the GPU machine, from the repo root (full logs land in $OUT):
#   KERNELBENCH_DIR=/path/to/kernelbench OUT=/tmp/kf bash benchmarks/gpu_validation.sh [SAMPLES_S] [CORPUS_S] [BENCH_S]
set -uo pipefail
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/kf-gpu}; mkdir -p "$OUT"
WORKERS=${WORKERS:-8}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
python3 -c 'import torch, triton; print("torch", torch.__version__, "triton", triton.__version__)' | tee -a "$OUT/gpu.txt"
timeout "${1:-240}" python3 -m pytest -p pytest_kernelfalcon.plugin -p no:cacheprovider -q -rfE \
    --falcon kernelbench/ -n "$WORKERS" ${SAMPLES_EXTRA:-} --falcon-report "$OUT/samples.json" \
    2>&1 | grep -v Warning > "$OUT/samples.log"; tail -30 "$OUT/samples.log"
timeout "${2:-150}" python3 -m pytest -p no:cacheprovider -q -n "$WORKERS" --dist loadgroup -rfE \
    tests/test_corpus.py 2>&1 | grep -v Warning > "$OUT/corpus.log"; tail -15 "$OUT/corpus.log"
if [ "${EXECUTOR_BENCH:-0}" = 1 ]; then
  timeout "${3:-200}" python3 benchmarks/executor.py --device cuda --quick 2>&1 | tee "$OUT/executor.log" | tail -25
fi
