"""pytest-benchmark cases for DRAW's Gaussian-filterbank attention (read -> write).

    pytest benchmarks/bench_attention.py --benchmark-only
    pytest benchmarks/ --benchmark-only --benchmark-group-by=group   # providers side by side

Parametrised over shape x workload x provider x thread count; a provider that cannot run here
(fastgen.ops not built, torch.compile failing, no GPU) is skipped with the reason. Each result's
extra_info carries the matmul FLOPs, the minimum bytes, the floor and the % of floor (see
fastgen/benchmarking/attention.py for the formulas). The markdown table for the README comes from
benchmarks/run.py (`fastgen bench attention`), not from here.

Environment knobs:
  FASTGEN_BENCH_THREADS   comma-separated thread counts (default "1,2")
  FASTGEN_BENCH_QUICK=1   only the 64x2x28x28, N=12 shape
"""
from __future__ import annotations

import os

import pytest
import torch

from fastgen.benchmarking.attention import (
    DEFAULT_SHAPES,
    QUICK_SHAPES,
    WORKLOADS,
    ProviderUnavailable,
    default_providers,
    prepare_case,
    workload_flops,
    workload_min_bytes,
)
from fastgen.benchmarking.timing import measure_floors, threads as use_threads

THREADS = [int(t) for t in os.environ.get("FASTGEN_BENCH_THREADS", "1,2").split(",") if t.strip()]
SHAPES = QUICK_SHAPES if os.environ.get("FASTGEN_BENCH_QUICK") == "1" else DEFAULT_SHAPES


@pytest.fixture(scope="session")
def machine_floors():
    """Matmul and bandwidth floors, measured once per session."""
    return measure_floors(THREADS)


@pytest.mark.parametrize("n_threads", THREADS, ids=lambda t: f"{t}thr")
@pytest.mark.parametrize("provider", default_providers())
@pytest.mark.parametrize("workload", WORKLOADS)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: s.id)
def test_attention(benchmark, machine_floors, shape, workload, provider, n_threads):
    benchmark.group = f"attention {workload} {shape.id} {n_threads}thr"
    flops = workload_flops(shape, workload)
    nbytes = workload_min_bytes(shape, workload)
    floor_s = machine_floors.floor_seconds(flops, nbytes, n_threads)
    with use_threads(n_threads):
        try:
            case = prepare_case(shape, workload, provider)  # compiles here, outside the timing
        except ProviderUnavailable as exc:
            pytest.skip(f"{provider}: {exc}")
        try:
            benchmark.extra_info.update(flops=flops, min_bytes=nbytes, floor_us=floor_s * 1e6,
                                        compile_s=case.compile_s, device=case.device)
            if case.sync is None:
                benchmark(case.step)
            else:
                def step_synced():
                    case.step()
                    case.sync()
                benchmark(step_synced)
        finally:
            if provider == "compile":
                torch._dynamo.reset()
    stats = getattr(benchmark, "stats", None)
    if stats is not None and case.device == "cpu":  # None under --benchmark-disable
        benchmark.extra_info["pct_floor"] = 100.0 * floor_s / stats.stats.median
