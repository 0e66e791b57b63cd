#!/usr/bin/env bash
# GPU validation in one call (the package need not be installed): the bundled samples through the
# whole offline pipeline at official shapes, then the checker's test corpus on cuda.
# Usage on the GPU machine, from the repo root:
#   KERNELBENCH_DIR=/path/to/kernelbench OUT=/tmp/kf bash benchmarks/gpu_validation.sh [SAMPLES_S] [CORPUS_S]
set -uo pipefail
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/kf-gpu}; mkdir -p "$OUT"
WORKERS=${WORKERS:-8}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
python3 -c 'import torch, triton; print("torch", torch.__version__, "triton", triton.__version__)' | tee -a "$OUT/gpu.txt"
timeout "${1:-200}" python3 -m pytest -p pytest_kernelfalcon.plugin -p no:cacheprovider -q \
    --falcon kernelbench/ -n "$WORKERS" --falcon-report "$OUT/samples.json" 2>&1 | grep -v Warning | tail -32
timeout "${2:-120}" python3 -m pytest -p no:cacheprovider -q -n "$WORKERS" --dist loadgroup \
    tests/test_corpus.py -rfE 2>&1 | tee "$OUT/corpus.log" | grep -v Warning | tail -25
