"""Benchmark harness: timing (warm-up, median + IQR), thread control, measured machine floors,
and the per-family benchmarks that produce the markdown tables in benchmarks/results/.

    from fastgen.benchmarking import run_attention_benchmark
    print(run_attention_benchmark(threads=(1, 2), quick=True))
"""
from fastgen.benchmarking.attention import attention_results, run_attention_benchmark
from fastgen.benchmarking.timing import (
    DEFAULT_TIMING,
    QUICK_TIMING,
    MachineFloors,
    Timing,
    TimingConfig,
    machine_line,
    measure_floors,
    threads,
    time_call,
)

__all__ = [
    "DEFAULT_TIMING", "QUICK_TIMING", "MachineFloors", "Timing", "TimingConfig", "machine_line",
    "measure_floors", "threads", "time_call", "attention_results", "run_attention_benchmark",
]
