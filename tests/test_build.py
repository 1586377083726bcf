"""The build is part of what CI checks: the kernels must exist there, and the portable (generic) CPU
build must pass the op tests too, not just the AVX2 build this machine picks by default."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fastgen import _extension

ROOT = Path(__file__).resolve().parents[1]
# Every op family with an AVX2 and a generic CPU build, plus the test that asserts which one ran.
CPU_OP_TESTS = ("tests/ops/test_cpu_capability.py", "tests/ops/test_attention.py", "tests/ops/test_lstm.py",
                "tests/ops/test_draw_generate.py", "tests/ops/test_wavenet_generate.py", "tests/ops/test_items.py",
                "tests/ops/test_pixel_lstm.py", "tests/models/test_pixelrnn_fast_sampling.py")
# The generic pass checks kernel results; compile/opcheck/gradcheck plumbing does not depend on the ISA,
# the slow every-backend token comparison is covered by the kernel-vs-reference tests kept here, and the
# Triton cases (interpreter) do not touch the CPU build.
GENERIC_PASS_SELECTION = "not compile and not opcheck and not gradcheck and not all_paths and not triton"


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def test_kernels_are_built_in_ci():
    # Without fastgen._C eight test modules skip and pytest would pass with every kernel untested.
    if not in_ci():
        pytest.skip(f"not in CI (CI unset); fastgen._C import error, if any: {_extension.IMPORT_ERROR}")
    assert _extension.available(), f"CI=true but fastgen._C does not import: {_extension.IMPORT_ERROR!r}"


@pytest.mark.skipif(not _extension.available(), reason="fastgen._C not built")
def test_op_tests_pass_on_the_generic_cpu_build():
    # The kernel table is picked once per process, so the generic build runs in a child pytest.
    env = dict(os.environ, FASTGEN_CPU_CAPABILITY="generic")
    cmd = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "-k", GENERIC_PASS_SELECTION,
           *CPU_OP_TESTS]
    run = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    tail = "\n".join(run.stdout.splitlines()[-30:]) + run.stderr[-2000:]
    assert run.returncode == 0, f"FASTGEN_CPU_CAPABILITY=generic {' '.join(cmd[1:])} failed:\n{tail}"
    assert " passed" in run.stdout and " skipped" not in run.stdout, tail


@pytest.mark.skipif(subprocess.run(["sh", "-c", "command -v cmake && command -v ninja"], capture_output=True).returncode,
                    reason="cmake or ninja not installed")
def test_cmake_check_fails_when_torch_cmake_package_is_missing(tmp_path):
    # A Python whose torch reports a CMake prefix where no TorchConfig.cmake exists: the extension build
    # must fail the check, not be skipped (the check used to pass with the CPU extension unbuilt).
    python = tmp_path / "python"
    python.write_text(f"#!/bin/sh\necho {tmp_path / 'no-torch-cmake-here'}\n")
    python.chmod(0o755)
    env = dict(os.environ, PYTHON=str(python), BUILD_DIR=str(tmp_path / "build"), CUDACXX="/bin/false")
    run = subprocess.run(["bash", ".ci/cmake_check.sh"], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode != 0, run.stdout[-2000:]
    assert "Torch" in run.stderr, run.stderr[-2000:]
