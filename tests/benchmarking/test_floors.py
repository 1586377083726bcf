"""The floor logic of fastgen.benchmarking.timing: a floor is a limit, so a weight-streaming kernel's
floor uses the read bandwidth measured at exactly its working set, never a figure from another size."""
import pytest

from fastgen.benchmarking.timing import MachineFloors, TimingConfig, measure_floors

MB = 10**6


def floors() -> MachineFloors:
    # A 2.5 MiB copy figure far below the working-set reads: the figure the old floor used by mistake.
    return MachineFloors(matmul_gflops_per_thread=100.0, stream_gbps={1: {"small": 20.0, "large": 8.0}},
                         read_gbps={1: {int(1.5 * MB): 90.0, 3 * MB: 50.0}, 2: {3 * MB: 40.0}})


def test_weight_floor_uses_the_read_bandwidth_of_the_exact_working_set():
    f = floors()
    assert f.read_bytes_per_s(1, int(1.5 * MB)) == 90e9
    assert f.read_bytes_per_s(1, 3 * MB) == 50e9
    # More threads may leave one idle: a worse figure at 2 threads is no limit, the best at <= 2 is.
    assert f.read_bytes_per_s(2, 3 * MB) == 50e9
    assert f.weight_stream_seconds(flops=1e6, step_bytes=3 * MB, n_threads=1) == pytest.approx(3 * MB / 50e9)
    # Compute-bound when the FLOPs take longer than the bytes (large batches).
    assert f.weight_stream_seconds(flops=1e9, step_bytes=3 * MB, n_threads=1) == pytest.approx(1e9 / 100e9)


def test_an_unmeasured_working_set_is_an_error_not_a_guess():
    with pytest.raises(KeyError, match="2000000-byte working set"):
        floors().read_bytes_per_s(1, 2 * MB)
    with pytest.raises(KeyError, match="was not measured"):
        floors().read_bytes_per_s(1, 3 * MB + 4)


def test_measure_floors_reads_each_named_working_set_at_each_thread_count():
    tiny = TimingConfig(warmup=1, warmup_time=0.0, min_repeats=2, min_time=0.0)
    f = measure_floors((1, 2), tiny, quick=True, read_sets=(64 * 1024, 3 * MB, 64 * 1024))
    assert set(f.read_gbps) == {1, 2}
    assert all(set(bw) == {64 * 1024, 3 * MB} and min(bw.values()) > 0 for bw in f.read_gbps.values())
    assert "read bandwidth of the kernels' working sets at 2 threads" in f.describe()
