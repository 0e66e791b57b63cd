#!/usr/bin/env bash
# GPU validation in one call (the package need not be installed there):
#   1. the bundled samples through the whole offline pipeline at official shapes (~3 min with -n 8 on an H100)
#   2. the checker's test corpus at official shapes: the 6.4 GB-per-tensor tasks (resident data path) one at a
#      time on a warm worker, the rest with WORKERS workers; the whole corpus wants CORPUS_S=720 (H100: the
#      small tasks ~2 min with 8 workers, kb_relu + kb_softmax ~4.5 min, kb_sum ~3.5 min); where calls are
#      limited to 10 minutes, run its two pytest lines in calls of their own
#   3. the executor benchmark when EXECUTOR_BENCH=1: by default 19_ReLU official vs the plain way and the 100-fault
#      stream (~4 min on an H100); EXECUTOR_ARGS="--parts overhead --candidates 50 --shapes scaled" (~9 min) and
#      "--parts throughput --candidates 50 --shapes scaled" (~4 min) each want a call of their own
# Usage on the GPU machine, from the repo root (full logs land in $OUT):
#   KERNELBENCH_DIR=/path/to/kernelbench OUT=/tmp/kf bash benchmarks/gpu_validation.sh [SAMPLES_S] [CORPUS_S] [BENCH_S]
# A time limit of 0 skips that step.
set -uo pipefail
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/kf-gpu}; mkdir -p "$OUT"
WORKERS=${WORKERS:-8}
BIG="kb_relu or kb_softmax or kb_sum"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
python3 -c 'import torch, triton; print("torch", torch.__version__, "triton", triton.__version__)' | tee -a "$OUT/gpu.txt"
if [ "${1:-300}" != 0 ]; then
  timeout "${1:-300}" python3 -m pytest -p pytest_kernelfalcon.plugin -p no:cacheprovider -q -rfE \
      --falcon kernelbench/ -n "$WORKERS" ${SAMPLES_EXTRA:-} --falcon-report "$OUT/samples.json" \
      2>&1 | grep -v Warning > "$OUT/samples.log"; tail -30 "$OUT/samples.log"
fi
if [ "${2:-300}" != 0 ]; then
  FALCON_CORPUS_SHAPES=official timeout "$(( ${2:-300} / 3 ))" python3 -m pytest -p no:cacheprovider -q -rfE \
      -n "$WORKERS" --dist loadgroup tests/test_corpus.py -k "not ($BIG)" 2>&1 | grep -v Warning > "$OUT/corpus.log"
  tail -15 "$OUT/corpus.log"
  FALCON_CORPUS_SHAPES=official FALCON_CORPUS_EXECUTOR=warm timeout "$(( ${2:-300} * 2 / 3 ))" python3 -m pytest \
      -p no:cacheprovider -q -rfE tests/test_corpus.py -k "$BIG" 2>&1 | grep -v Warning > "$OUT/corpus_big.log"
  tail -15 "$OUT/corpus_big.log"
fi
if [ "${EXECUTOR_BENCH:-0}" = 1 ]; then
  timeout "${3:-400}" python3 benchmarks/executor.py --device cuda ${EXECUTOR_ARGS:---parts relu,faults --faults 100} --json \
      > "$OUT/executor.json" 2> "$OUT/executor.err"
  python3 -c "import json, sys; sys.path.insert(0, 'benchmarks'); import executor; \
print(executor.report(json.load(open('$OUT/executor.json'))))" | tee "$OUT/executor.log"
fi
