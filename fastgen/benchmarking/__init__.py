"""Benchmark harness: timing (warm-up, median + IQR), thread control, measured machine floors. Each
family's benchmark is its own module (attention, draw, wavenet), reached through the family table
(``fastgen bench <family>``, fastgen.recipes.registry); gpu.py runs every family's GPU section.

    from fastgen.benchmarking.attention import run_attention_benchmark
    print(run_attention_benchmark(threads=(1, 2), quick=True))
"""
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
    "measure_floors", "threads", "time_call",
]
