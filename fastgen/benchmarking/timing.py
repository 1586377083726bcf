"""A small, dependency-free timing harness for fastgen's benchmarks.

What it does and why:
  * ``time_call(fn, config)`` runs ``fn`` untimed a few times (warm-up: allocator caches, lazy
    initialisation, first-touch of pages, torch.compile's lazy backward compile), then times
    individual calls with :func:`time.perf_counter` until BOTH at least ``min_repeats`` calls and at
    least ``min_time`` seconds have been measured (``max_repeats`` / ``max_time`` cap it). It reports
    the median and the interquartile range: robust to the odd slow call that a noisy shared machine
    produces, unlike the mean. The garbage collector is paused while timing, as ``timeit`` does.
    It also records how many cores OTHER processes kept busy meanwhile (``Timing.other_load``),
    so a result taken on a busy shared machine can be flagged instead of silently trusted.
  * ``threads(n)`` sets ``torch.set_num_threads(n)`` for a block and restores the previous value.
  * ``measure_floors(...)`` measures this machine's floors once per run: float32 matmul throughput
    of one thread (a 512x512 ``torch.mm``) and the stream-copy bandwidth of a 2.5 MB tensor (stays
    in L3) and of a 256 MB tensor (goes to DRAM), at each thread count benchmarked, and the read
    bandwidth at each weight-set size a benchmark names (its kernel's working set). Benchmarks turn
    their FLOP and byte counts into a "% of floor" with these numbers rather than trusting
    datasheet values.
"""
from __future__ import annotations

import contextlib
import gc
import os
import platform
import statistics
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Iterable, Iterator

import torch


# --------------------------------------------------------------------------------------------
# timing one callable
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TimingConfig:
    """How long to warm up and how many repeats to time (see the module docstring)."""

    warmup: int = 3             # untimed calls before timing ...
    warmup_time: float = 0.05   # ... and keep warming up until this many seconds have passed
    min_repeats: int = 20       # timed calls: at least this many ...
    min_time: float = 0.2       # ... and at least this many seconds in total
    max_repeats: int = 1_000_000
    max_time: float = 30.0      # stop here even if min_repeats was not reached (very slow calls)

    def __post_init__(self) -> None:
        if self.warmup < 0 or self.min_repeats < 1 or self.max_repeats < self.min_repeats:
            raise ValueError(f"fastgen.benchmarking: inconsistent TimingConfig {self}")
        if self.min_time < 0 or self.warmup_time < 0 or self.max_time <= 0:
            raise ValueError(f"fastgen.benchmarking: negative time in TimingConfig {self}")


#: The default for real runs: >= 20 repeats and >= 0.2 s per case after warm-up.
DEFAULT_TIMING = TimingConfig()
#: Fewer repeats, for demos and quick looks (numbers are noisier).
QUICK_TIMING = TimingConfig(warmup=2, warmup_time=0.02, min_repeats=10, min_time=0.05)


@dataclass(frozen=True)
class Timing:
    """Summary of the timed calls of one case, in seconds.

    other_load: CPU cores kept busy by OTHER processes, on average, while this case was timed
    (from /proc/stat minus this process's own CPU time; None where /proc/stat is missing). On a
    small shared machine a value above ~0.25 means the numbers (multi-threaded ones above all)
    are contaminated.
    """

    median: float
    q1: float
    q3: float
    minimum: float
    repeats: int
    total: float
    other_load: float | None = None

    @property
    def median_us(self) -> float:
        return self.median * 1e6

    @property
    def iqr(self) -> float:
        return self.q3 - self.q1

    @property
    def rel_iqr(self) -> float:
        """Interquartile range as a fraction of the median."""
        return self.iqr / self.median if self.median > 0 else float("nan")

    def as_dict(self) -> dict:
        return asdict(self)


def _system_busy_seconds() -> float | None:
    """CPU-seconds all processes have spent busy since boot (None without /proc/stat)."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu":
        return None
    ticks = [int(v) for v in fields[1:]]
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)          # idle + iowait
    total = sum(ticks[:8])                                          # guest time is inside user
    return (total - idle) / os.sysconf("SC_CLK_TCK")


class LoadMeter:
    """Average number of cores other processes kept busy between start() and stop()."""

    def start(self) -> "LoadMeter":
        self._busy0 = _system_busy_seconds()
        self._own0 = time.process_time()
        self._wall0 = time.perf_counter()
        return self

    def stop(self) -> float | None:
        busy1 = _system_busy_seconds()
        wall = time.perf_counter() - self._wall0
        if busy1 is None or self._busy0 is None or wall <= 0:
            return None
        own = time.process_time() - self._own0
        return max(0.0, (busy1 - self._busy0 - own) / wall)


def summarize(samples: Iterable[float], other_load: float | None = None) -> Timing:
    """Median, quartiles and minimum of per-call times (seconds)."""
    s = sorted(samples)
    if not s:
        raise ValueError("fastgen.benchmarking: no samples to summarize")
    if len(s) >= 2:
        q1, med, q3 = statistics.quantiles(s, n=4, method="inclusive")
    else:
        q1 = med = q3 = s[0]
    return Timing(median=med, q1=q1, q3=q3, minimum=s[0], repeats=len(s), total=sum(s),
                  other_load=other_load)


def time_call(fn: Callable[[], object], config: TimingConfig = DEFAULT_TIMING,
              sync: Callable[[], None] | None = None) -> Timing:
    """Time ``fn()`` (no arguments); ``sync`` (e.g. torch.cuda.synchronize) ends each timed call."""
    sync = sync or (lambda: None)
    pc = time.perf_counter
    start = pc()
    n = 0
    while n < config.warmup or pc() - start < config.warmup_time:
        fn()
        sync()
        n += 1
    samples: list[float] = []
    gc_was_enabled = gc.isenabled()
    gc.disable()
    meter = LoadMeter().start()
    try:
        sync()
        elapsed = 0.0
        while True:
            t0 = pc()
            fn()
            sync()
            dt = pc() - t0
            samples.append(dt)
            elapsed += dt
            n = len(samples)
            if n >= config.max_repeats or elapsed >= config.max_time:
                break
            if n >= config.min_repeats and elapsed >= config.min_time:
                break
    finally:
        if gc_was_enabled:
            gc.enable()
    return summarize(samples, other_load=meter.stop())


@contextlib.contextmanager
def threads(n: int) -> Iterator[None]:
    """Run the block with ``torch.set_num_threads(n)``; restore the previous count afterwards."""
    if n < 1:
        raise ValueError(f"fastgen.benchmarking.threads: need n >= 1, got {n}")
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


# --------------------------------------------------------------------------------------------
# machine floors
# --------------------------------------------------------------------------------------------

#: Timing.other_load above this (cores) marks a result as taken on a busy machine.
BUSY_THRESHOLD = 0.25
MATMUL_SIZE = 512
SMALL_STREAM_BYTES = 5 * 2**19     # 2.5 MiB: fits in L3 on the machines we use
LARGE_STREAM_BYTES = 256 * 2**20   # 256 MiB: far beyond any L3, streams from DRAM


@dataclass
class MachineFloors:
    """Measured floors.

    matmul_gflops_per_thread: float32 ``torch.mm`` of two 512x512 matrices at 1 thread,
        2*512^3 FLOPs / median time.
    stream_gbps: threads -> {"small": GB/s, "large": GB/s} for ``dst.copy_(src)``; bytes counted
        as read + write (2 x tensor size, the STREAM "copy" convention), 1 GB = 1e9 bytes.
    cache_bytes: last-level cache size; a working set up to this size is given the "small"
        (cache) bandwidth, larger ones the "large" (DRAM) bandwidth.
    other_load: average cores kept busy by other processes during the measurement (see Timing).
    """

    matmul_gflops_per_thread: float
    stream_gbps: dict[int, dict[str, float]] = field(default_factory=dict)
    cache_bytes: int = 32 * 2**20
    other_load: float | None = None  # cores other processes kept busy while measuring
    large_stream_bytes: int = LARGE_STREAM_BYTES
    #: threads -> {working-set bytes: GB/s} of repeatedly reading a buffer of exactly that size
    #: (see measure_read_gbps): the limit of a kernel that streams that many weight bytes per step.
    read_gbps: dict[int, dict[int, float]] = field(default_factory=dict)

    def flops_per_s(self, n_threads: int) -> float:
        return self.matmul_gflops_per_thread * 1e9 * n_threads

    def bytes_per_s(self, n_threads: int, working_set_bytes: int) -> float:
        """Best copy bandwidth measured at up to n_threads threads: more threads can always leave
        some idle, so a lower figure at a higher count (a disturbed measurement) is not a limit."""
        key = "small" if working_set_bytes <= self.cache_bytes else "large"
        usable = [bw[key] for t, bw in self.stream_gbps.items() if t <= n_threads]
        if not usable:  # only larger counts were measured: the smallest of them
            usable = [self.stream_gbps[min(self.stream_gbps)][key]]
        return max(usable) * 1e9

    def read_bytes_per_s(self, n_threads: int, working_set_bytes: int) -> float:
        """Read bandwidth measured at exactly this working set, best at up to n_threads threads.
        Only the exact size will do: a smaller set may sit in a faster cache, a larger one in a
        slower one, and a floor measured where the kernel's data is not is a floor it can beat."""
        usable = [bw[working_set_bytes] for t, bw in self.read_gbps.items()
                  if t <= n_threads and working_set_bytes in bw]
        if not usable:
            raise KeyError(f"fastgen.benchmarking: read bandwidth of a {working_set_bytes}-byte working set at "
                           f"<= {n_threads} threads was not measured; pass it to measure_floors(read_sets=...)")
        return max(usable) * 1e9

    def weight_stream_seconds(self, flops: float, step_bytes: int, n_threads: int) -> float:
        """Floor of one step that reads step_bytes of resident weights: max(compute time at matmul
        peak, the weights read once at the bandwidth measured for that working set)."""
        return max(flops / self.flops_per_s(n_threads), step_bytes / self.read_bytes_per_s(n_threads, step_bytes))

    def floor_seconds(self, flops: float, min_bytes: float, n_threads: int) -> float:
        """max(compute time at matmul peak, time to move the minimum bytes at stream bandwidth)."""
        return max(flops / self.flops_per_s(n_threads),
                   min_bytes / self.bytes_per_s(n_threads, int(min_bytes)))

    def describe(self) -> str:
        parts = [f"float32 matmul {self.matmul_gflops_per_thread:.1f} GFLOP/s per thread "
                 f"({MATMUL_SIZE}x{MATMUL_SIZE} torch.mm, 1 thread)"]
        for t in sorted(self.stream_gbps):
            bw = self.stream_gbps[t]
            parts.append(f"copy bandwidth at {t} thread{'s' if t > 1 else ''}: "
                         f"{bw['small']:.1f} GB/s ({SMALL_STREAM_BYTES / 2**20:.1f} MiB, cache), "
                         f"{bw['large']:.1f} GB/s ({self.large_stream_bytes // 2**20} MiB, DRAM)")
        for t in sorted(self.read_gbps):
            sizes = ", ".join(f"{gbps:.1f} GB/s ({nbytes / 1e6:.2f} MB)" for nbytes, gbps in sorted(self.read_gbps[t].items()))
            parts.append(f"read bandwidth of the kernels' working sets at {t} thread{'s' if t > 1 else ''}: {sizes}")
        if self.other_load is not None and self.other_load > BUSY_THRESHOLD:
            parts.append(f"WARNING: other processes kept {self.other_load:.2f} cores busy "
                         f"meanwhile, the floors may be underestimated")
        return "; ".join(parts)


def last_level_cache_bytes(default: int = 32 * 2**20) -> int:
    """Largest cache size reported by sysfs for cpu0 (default when unavailable)."""
    base = "/sys/devices/system/cpu/cpu0/cache"
    best = 0
    try:
        for entry in os.listdir(base):
            if not entry.startswith("index"):
                continue
            with open(os.path.join(base, entry, "size")) as f:
                text = f.read().strip()
            mult = {"K": 2**10, "M": 2**20, "G": 2**30}.get(text[-1:].upper(), 1)
            num = text[:-1] if mult != 1 else text
            best = max(best, int(num) * mult)
    except (OSError, ValueError):
        return default
    return best or default


def measure_matmul_gflops(config: TimingConfig = DEFAULT_TIMING, size: int = MATMUL_SIZE) -> float:
    """float32 GFLOP/s of one thread on a size x size x size torch.mm."""
    g = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=g)
    b = torch.randn(size, size, generator=g)
    out = torch.empty(size, size)
    with threads(1):
        t = time_call(lambda: torch.mm(a, b, out=out), config)
    return 2.0 * size**3 / t.median / 1e9


def measure_copy_gbps(nbytes: int, config: TimingConfig = DEFAULT_TIMING) -> float:
    """GB/s of dst.copy_(src) for float32 tensors of nbytes each, counting read + write."""
    n = nbytes // 4
    src = torch.rand(n)
    dst = torch.empty(n)
    dst.copy_(src)  # first-touch the destination pages
    t = time_call(lambda: dst.copy_(src), config)
    return 2.0 * n * 4 / t.median / 1e9


def measure_read_gbps(nbytes: int, config: TimingConfig = DEFAULT_TIMING) -> float:
    """GB/s of reading a float32 buffer of nbytes again and again, as a kernel reads its weights every
    step (so the buffer sits in whichever cache level it fits, as the weights do). The best of two
    streaming reads (a sum and a BLAS dot) at their fastest call: a floor must be a limit, not a
    typical speed, and one probe alone may be compute-bound where the other is not."""
    x = torch.rand(max(1, nbytes // 4))
    best = min(time_call(fn, config).minimum for fn in (x.sum, lambda: torch.dot(x, x)))
    return x.numel() * 4 / best / 1e9


def measure_floors(thread_counts: Iterable[int] = (1,), config: TimingConfig = DEFAULT_TIMING,
                   quick: bool = False, read_sets: Iterable[int] = ()) -> MachineFloors:
    """Measure the machine floors once (matmul per thread; copy bandwidth per thread count; read
    bandwidth of each working set in ``read_sets``, in bytes, per thread count).

    ``quick`` uses a shorter timing budget and a 64 MiB tensor instead of 256 MiB for the DRAM
    stream (still far beyond L3 on the machines we use).
    """
    if quick:
        config = TimingConfig(warmup=1, warmup_time=0.0, min_repeats=5, min_time=0.03)
    large = LARGE_STREAM_BYTES // 4 if quick else LARGE_STREAM_BYTES
    meter = LoadMeter().start()
    floors = MachineFloors(matmul_gflops_per_thread=measure_matmul_gflops(config),
                           cache_bytes=last_level_cache_bytes(), large_stream_bytes=large)
    large_cfg = TimingConfig(warmup=1, warmup_time=0.0, min_repeats=min(config.min_repeats, 10),
                             min_time=config.min_time)
    for t in sorted(set(thread_counts)):
        with threads(t):
            floors.stream_gbps[t] = {
                "small": measure_copy_gbps(SMALL_STREAM_BYTES, config),
                "large": measure_copy_gbps(large, large_cfg),
            }
            floors.read_gbps[t] = {nbytes: measure_read_gbps(nbytes, config) for nbytes in sorted(set(read_sets))}
    floors.other_load = meter.stop()
    return floors


# --------------------------------------------------------------------------------------------
# machine description
# --------------------------------------------------------------------------------------------

def cpu_model() -> str:
    """'model name' from /proc/cpuinfo (platform.processor() elsewhere)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def kernel_builds() -> str:
    """Which instruction-set build fastgen's CPU kernel families run (torch.ops.fastgen.cpu_kernel_builds),
    grouped, the most common build last as "the rest": 'fastgen CPU kernels avx512: items, masked_conv;
    avx2: the rest'. Empty without the compiled extension."""
    from fastgen import _extension

    if not _extension.available():
        return ""
    by_build: dict[str, list[str]] = {}
    for family, build in sorted(torch.ops.fastgen.cpu_kernel_builds().items()):
        by_build.setdefault(build, []).append(family)
    if len(by_build) == 1:
        return f"fastgen CPU kernels {next(iter(by_build))}"
    groups = sorted(by_build.items(), key=lambda kv: len(kv[1]))
    parts = [f"{build}: {', '.join(families)}" for build, families in groups[:-1]]
    return f"fastgen CPU kernels {'; '.join(parts)}; {groups[-1][0]}: the rest"


def machine_line() -> str:
    """One line: CPU model, core count, SIMD level, torch version, the fastgen CPU kernels' builds (and
    GPU if any)."""
    flags = cpu_flags()
    simd = [name for name, flag in (("AVX-512", "avx512f"), ("AVX2", "avx2"), ("FMA", "fma"))
            if flag in flags]
    cores = os.cpu_count() or 1
    parts = [f"{cpu_model()}, {cores} logical core{'s' if cores != 1 else ''}"
             + (f" ({'+'.join(simd)})" if simd else ""),
             f"torch {torch.__version__}"]
    if builds := kernel_builds():
        parts.append(builds)
    if torch.cuda.is_available():
        parts.append(f"GPU {torch.cuda.get_device_name()}")
    return "; ".join(parts)
