#!/usr/bin/env bash
# The GPU acceptance runs of issues 22-24, each planned to end inside one device call of 9 minutes.
# From the repo root, KernelBench problems carried as .kb/ (or KERNELBENCH_DIR set), results under OUT:
#
#   bash benchmarks/gpu_acceptance.sh memory OUT     # issue 22: 4 verifies at once, candidates + 24 largest level-1
#                                                    # tasks; then the new GPU tests (drawn plans on the GPU, issue 23)
#   bash benchmarks/gpu_acceptance.sh speed OUT      # issue 23: default vs official vs plain, two executors
#   bash benchmarks/gpu_acceptance.sh selftest OUT   # issue 23: level-1 self-test at the default profile
#   bash benchmarks/gpu_acceptance.sh kbagree OUT    # issue 24: KernelBench-comparable verdict vs plain_check
#                                                    # --kernelbench on every candidate and corpus entry (as root)
set -uo pipefail
part=${1:?part: memory, speed, selftest or kbagree}
out=${2:?output folder}
mkdir -p "$out"
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 KERNELBENCH_DIR=${KERNELBENCH_DIR:-$PWD/.kb}
nvidia-smi --query-gpu=name,memory.total,memory.used,driver_version --format=csv > "$out/card.txt" 2>&1
python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)" >> "$out/card.txt"
case "$part" in
  memory)
    timeout -s TERM 400 python3 benchmarks/memory_stress.py --device cuda -j 4 --largest 24 --budget 330 \
        --json "$out/memory_stress.json" > "$out/memory_stress.md" 2> "$out/memory_stress.log"
    timeout 150 python3 -m pytest tests/checker/test_profile_gpu.py tests/checker/test_verify_gpu.py -m gpu -q \
        -p no:cacheprovider -n 3 -rfE > "$out/gpu_tests.log" 2>&1
    ;;
  speed)
    timeout -s TERM 480 python3 benchmarks/profile_speed.py --device cuda --executors prestart,warm --budget 400 \
        --tasks 12_Matmul_with_diagonal 88_MinGPT 12_Gemm_Multiply 95_Cross \
        --json "$out/profile_speed.json" > "$out/profile_speed.md" 2> "$out/profile_speed.log"
    ;;
  selftest)
    timeout -s TERM 500 python3 -m pytest_kernelfalcon.cli selftest "$KERNELBENCH_DIR/level1" --device cuda -j 4 \
        --budget 440 --json "$out/selftest_l1.json" > "$out/selftest_l1.log" 2>&1
    ;;
  kbagree)
    timeout -s TERM 420 python3 benchmarks/kb_agreement.py --device cuda -j 4 --budget 300 \
        --json "$out/kb_agreement.json" > "$out/kb_agreement.md" 2> "$out/kb_agreement.log"
    timeout 120 python3 -m pytest tests/checker/test_kernelbench_comparable.py -m gpu -q -p no:cacheprovider \
        > "$out/kb_gpu_tests.log" 2>&1
    ;;
esac
tail -n 40 "$out"/*.md "$out"/*.log 2>/dev/null | tail -n 120
