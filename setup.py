"""Builds fastgen._C: CPU kernels always, CUDA kernels when torch has CUDA and nvcc is found.

FASTGEN_FORCE_CUDA=1 builds the CUDA kernels even if detection says no; FASTGEN_SKIP_CUDA=1 never
builds them. Build against the installed torch: pip install --no-build-isolation -e .
"""
import glob
import os

from setuptools import setup
from torch.utils import cpp_extension

ROOT = os.path.dirname(os.path.abspath(__file__))


def _flag(name: str) -> bool:
    return os.environ.get(name, "0").lower() in ("1", "true", "yes", "on")


def _want_cuda() -> bool:
    if _flag("FASTGEN_SKIP_CUDA"):
        return False
    if _flag("FASTGEN_FORCE_CUDA"):
        return True
    # Decide by the torch build and the toolkit, not by a GPU being present: wheels are built on
    # machines without one.
    import torch

    return torch.version.cuda is not None and cpp_extension.CUDA_HOME is not None


def _sources(pattern: str) -> list[str]:
    return sorted(os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, pattern)))


def _extension():
    sources = ["csrc/registration.cpp"] + _sources("csrc/autograd/*.cpp") + _sources("csrc/cpu/*.cpp")
    # -O3 but no -march=native: the wheel must run on any x86-64; AVX2 kernels are chosen at run time.
    # -fopenmp at compile time only: at::parallel_for is an inline template built on OpenMP pragmas
    # (serial without the flag); its GOMP symbols bind to the OpenMP runtime torch has already
    # loaded, rather than a second runtime of our own.
    cxx = ["-O3", "-std=c++17", "-fvisibility=hidden", "-ffp-contract=fast", "-fopenmp"]
    include_dirs = [os.path.join(ROOT, "csrc", "include")]
    if _want_cuda():
        sources += _sources("csrc/cuda/*.cu") + _sources("csrc/cuda/*_binding.cpp")
        nvcc = ["-O3", "-std=c++17", "-gencode=arch=compute_80,code=sm_80", "-gencode=arch=compute_90,code=sm_90"]
        return cpp_extension.CUDAExtension(
            "fastgen._C", sources, include_dirs=include_dirs,
            define_macros=[("FASTGEN_WITH_CUDA", "1")],
            extra_compile_args={"cxx": cxx, "nvcc": nvcc},
        )
    return cpp_extension.CppExtension("fastgen._C", sources, include_dirs=include_dirs, extra_compile_args={"cxx": cxx})


setup(
    ext_modules=[_extension()],
    cmdclass={"build_ext": cpp_extension.BuildExtension.with_options(use_ninja=True)},
)
