#!/usr/bin/env bash
# Configure, build and test the C++/CUDA sources with CMake + Ninja, independent of setuptools:
# header-math ctest always; the CPU extension when torch is importable; csrc/cuda/*.cu (sm_80, sm_90)
# when nvcc is found. Any failing step fails the script.
#   env: PYTHON (default: python, else python3), BUILD_DIR (default: build/cmake), JOBS (default: nproc)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON=${PYTHON:-$(command -v python || command -v python3)}
BUILD_DIR=${BUILD_DIR:-build/cmake}
JOBS=${JOBS:-$(nproc)}

args=(-S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release -DPython3_EXECUTABLE="$PYTHON")
# Torch is optional: without it the CPU extension part is skipped, the rest still runs. With it, CMake
# must find its package (FASTGEN_REQUIRE_TORCH): the extension build is never skipped silently.
if torch_prefix=$("$PYTHON" -c 'import torch; print(torch.utils.cmake_prefix_path)' 2>/dev/null); then
  args+=(-DCMAKE_PREFIX_PATH="$torch_prefix" -DFASTGEN_REQUIRE_TORCH=ON)
else
  echo "cmake_check: torch not importable by $PYTHON; skipping the CPU extension build" >&2
fi

cmake "${args[@]}"
cmake --build "$BUILD_DIR" --parallel "$JOBS"
ctest --test-dir "$BUILD_DIR" --output-on-failure
# Said last, where it is seen: a run without nvcc checked none of the CUDA sources.
if ! grep -Eq '^CMAKE_CUDA_COMPILER:[A-Z]+=.*nvcc' "$BUILD_DIR/CMakeCache.txt"; then
  echo "cmake_check: WARNING: NO CUDA COMPILER (nvcc) FOUND: csrc/cuda/*.cu AND THE CUDA BINDINGS WERE NOT COMPILED" >&2
fi
