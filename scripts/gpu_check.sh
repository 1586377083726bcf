#!/usr/bin/env bash
# On a CUDA machine: build fastgen with its CUDA kernels, run tests/gpu, then the GPU benchmark
# (benchmarks/gpu.py). Everything it prints is also kept under $OUT (default build/gpu-check):
#   env.txt, build.log, gpu-tests.log + .xml, gpu.md (the benchmark tables), bench.log.
# Uses the python3 that holds a CUDA build of torch (override with PYTHON=...); installs nothing.
#   env: OUT, PYTHON, MAX_JOBS (default: all cores), TESTS (pytest arguments, default tests/gpu),
#        TEST_TIMEOUT / BENCH_TIMEOUT (seconds),
#        BENCH_ARGS (e.g. "--quick" or "--sections wavenet draw")
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-build/gpu-check}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 MAX_JOBS=${MAX_JOBS:-$(nproc)}

{ nvidia-smi -L
  "$PY" -c "import torch, triton; print('torch', torch.__version__, '| CUDA', torch.version.cuda, '| triton', triton.__version__, '| GPU', torch.cuda.is_available() and torch.cuda.get_device_name())"
} 2>&1 | tee "$OUT/env.txt"

start=$SECONDS
if ! "$PY" setup.py build_ext --inplace >"$OUT/build.log" 2>&1; then
  tail -n 60 "$OUT/build.log"
  echo "gpu_check: the build failed (whole log: $OUT/build.log)"
  exit 1
fi
echo "build: $((SECONDS - start)) s"
# A CUDA machine must get the CUDA kernels: say so instead of letting tests/gpu skip them.
"$PY" - <<'EOF' || exit 1
import sys, torch
import fastgen._extension as e
from fastgen.ops._route import declared
have = {op: e.has_kernel(op, "CUDA") for op, kernels in declared().items() if kernels.cuda}
print("CUDA kernels:", have)
sys.exit(0 if not torch.cuda.is_available() or all(have.values()) else "gpu_check: CUDA kernels missing from the build")
EOF

start=$SECONDS
# shellcheck disable=SC2086  # TESTS is a list of words
timeout "${TEST_TIMEOUT:-300}" "$PY" -m pytest ${TESTS:-tests/gpu} -q -rfE -p no:cacheprovider \
  --junitxml "$OUT/gpu-tests.xml" 2>&1 | tee "$OUT/gpu-tests.log"
tests_rc=${PIPESTATUS[0]}
echo "tests/gpu: rc $tests_rc in $((SECONDS - start)) s"

start=$SECONDS
# shellcheck disable=SC2086  # BENCH_ARGS is a list of words
timeout "${BENCH_TIMEOUT:-300}" "$PY" benchmarks/gpu.py ${BENCH_ARGS:-} --out "$OUT/gpu.md" 2>"$OUT/bench.log"
bench_rc=$?
echo "benchmarks/gpu.py: rc $bench_rc in $((SECONDS - start)) s"
[ "$tests_rc" = 0 ] && [ "$bench_rc" = 0 ]
