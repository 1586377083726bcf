"""Benchmark of DRAW's Gaussian-filterbank attention: read then write, forward and backward.

Providers (columns):
  eager           fastgen.reference.attention (plain PyTorch; the "eager" column)
  compile         torch.compile(reference read -> write), default mode, dynamic=False, compiled once
                  per (shape, workload, thread count) outside the timed region. Inductor's C++
                  kernels bake the thread count in at compile time, so it recompiles per count.
  fastgen-cpu     fastgen.ops.attention_read / attention_write under use_backend("cpu")
  eager-cuda      the eager column on CUDA tensors (only with a GPU; the GPU columns' baseline)
  compile-cuda    the compile column on CUDA tensors (Inductor's Triton kernels; only with a GPU)
  fastgen-triton  the same under use_backend("triton"), CUDA tensors (only with a GPU)
  fastgen-cuda    the same under use_backend("cuda"), CUDA tensors (only with a GPU)
A provider that cannot run (fastgen.ops not importable, no built kernel, compile failure) is shown
as "n/a" with the reason beneath the table; the other columns are still measured.

Workloads (per call):
  forward           with no_grad: patch = attention_read(x, p_read, N);
                    image = attention_write(patch, p_write, H, W)
  forward+backward  the same with x, p_read, p_write requiring grad, then image.sum().backward()
                    (grads are reset to None before each call, so nothing accumulates)

Shapes, workloads, providers and the FLOP / minimum-byte accounting live in
fastgen.benchmarking.attention_cases (its docstring has the formulas); every public name there
is importable from here too.

Floor = max(FLOPs / (measured matmul FLOP/s per thread * threads),
            min bytes / measured copy bandwidth at that thread count (cache or DRAM figure,
            chosen by whether min bytes fits in the last-level cache));
"% of floor" = floor / measured time * 100 (100% = as fast as this machine can possibly go).
GPU columns are timed but get no % of floor (the floors are the CPU's).
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import os
import time
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

import torch
from torch import Tensor

from fastgen.benchmarking.attention_cases import (  # re-exported: this module is the public face
    ALL_PROVIDERS,
    BASELINES,
    CPU_PROVIDERS,
    DEFAULT_SHAPES,
    FASTGEN_BACKEND,
    GPU_PROVIDERS,
    QUICK_SHAPES,
    REL_ERR_WARN,
    WORKLOADS,
    ProviderUnavailable,
    Shape,
    as_shape,
    default_providers,
    make_inputs,
    read_backward_flops,
    read_forward_flops,
    relative_error,
    short_reason,
    workload_flops,
    workload_min_bytes,
    write_backward_flops,
    write_forward_flops,
)
from fastgen.benchmarking.timing import (
    BUSY_THRESHOLD,
    DEFAULT_TIMING,
    QUICK_TIMING,
    MachineFloors,
    Timing,
    TimingConfig,
    machine_line,
    measure_floors,
    threads as _threads,
    time_call,
)
from fastgen.reference import attention as _ref


# --------------------------------------------------------------------------------------------
# providers
# --------------------------------------------------------------------------------------------

def _fastgen_ops():
    """(attention_read, attention_write, use_backend) from fastgen.ops, or ProviderUnavailable."""
    try:
        import fastgen.ops as ops
        from fastgen.backend import use_backend
    except Exception as exc:  # noqa: BLE001 - any import failure makes the column n/a
        raise ProviderUnavailable(f"import fastgen.ops failed: {short_reason(exc)}") from exc
    missing = [n for n in ("attention_read", "attention_write") if not hasattr(ops, n)]
    if missing:
        raise ProviderUnavailable(f"fastgen.ops has no {' / '.join(missing)} (not written yet?)")
    return ops.attention_read, ops.attention_write, use_backend


@dataclass
class PreparedCase:
    """A ready-to-time workload: ``step()`` runs one call; ``outputs()`` one call's results."""

    provider: str
    shape: Shape
    workload: str
    step: Callable[[], object]
    outputs: Callable[[], list[Tensor]]
    sync: Callable[[], None] | None = None
    compile_s: float | None = None
    device: str = "cpu"


def prepare_case(shape: Shape | Sequence[int], workload: str, provider: str,
                 seed: int = 0) -> PreparedCase:
    """Build (and for ``compile``, compile) one case; call under the thread count to be timed.

    Raises ProviderUnavailable with a short reason when the provider cannot run here. The first
    call (which compiles for ``compile``) happens here, outside any timed region.
    """
    s = as_shape(shape)
    if workload not in WORKLOADS:
        raise ValueError(f"fastgen.benchmarking.attention: unknown workload {workload!r}; "
                         f"choose one of {', '.join(WORKLOADS)}")
    device = "cpu"
    ctx: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext
    compile_s = None
    if provider in ("eager", "compile", "eager-cuda", "compile-cuda"):
        read, write = _ref.attention_read, _ref.attention_write
        if provider.endswith("-cuda"):
            if not torch.cuda.is_available():
                raise ProviderUnavailable("no CUDA device")
            device = "cuda"
    elif provider in FASTGEN_BACKEND:
        backend = FASTGEN_BACKEND[provider]
        if backend != "cpu":
            if not torch.cuda.is_available():
                raise ProviderUnavailable("no CUDA device")
            device = "cuda"
        read, write, use_backend = _fastgen_ops()
        ctx = lambda: use_backend(backend)  # noqa: E731
    else:
        raise ValueError(f"fastgen.benchmarking.attention: unknown provider {provider!r}; "
                         f"choose from {', '.join(ALL_PROVIDERS)}")

    N, H, W = s.N, s.H, s.W

    def composite(x: Tensor, p_read: Tensor, p_write: Tensor) -> Tensor:
        return write(read(x, p_read, N), p_write, H, W)

    fn = composite
    if provider.startswith("compile"):
        torch._dynamo.reset()  # new thread count / shape: no stale cache entries
        fn = torch.compile(composite, dynamic=False)

    backward = workload == "forward+backward"
    x, p_read, p_write = make_inputs(s, device, requires_grad=backward, seed=seed)

    if backward:
        def step() -> Tensor:
            x.grad = p_read.grad = p_write.grad = None
            with ctx():
                image = fn(x, p_read, p_write)
                image.sum().backward()
            return image

        def outputs() -> list[Tensor]:
            image = step()
            return [image.detach(), x.grad, p_read.grad, p_write.grad]
    else:
        def step() -> Tensor:
            with torch.no_grad(), ctx():
                return fn(x, p_read, p_write)

        def outputs() -> list[Tensor]:
            return [step()]

    sync = torch.cuda.synchronize if device == "cuda" else None
    start = time.perf_counter()
    try:
        step()
        if sync is not None:
            sync()
    except ProviderUnavailable:
        raise
    except Exception as exc:  # noqa: BLE001 - whatever fails, the column becomes n/a
        what = "torch.compile failed" if provider.startswith("compile") else f"{provider} failed"
        raise ProviderUnavailable(f"{what}: {short_reason(exc)}") from exc
    if provider.startswith("compile"):
        compile_s = time.perf_counter() - start
    return PreparedCase(provider=provider, shape=s, workload=workload, step=step,
                        outputs=outputs, sync=sync, compile_s=compile_s, device=device)


# --------------------------------------------------------------------------------------------
# running
# --------------------------------------------------------------------------------------------

def attention_results(threads: Iterable[int] = (1, 2), quick: bool = False,
                      providers: Sequence[str] | None = None,
                      shapes: Sequence[Shape | Sequence[int]] | None = None,
                      workloads: Sequence[str] = WORKLOADS,
                      timing: TimingConfig | None = None,
                      floors: MachineFloors | None = None,
                      log: Callable[[str], None] | None = None,
                      busy_retries: int = 2) -> list[dict]:
    """Run the benchmark and return one dict per (threads, workload, shape, provider).

    Keys: workload, threads, shape (label), B, C, H, W, N, provider, available, reason,
    median_us, q1_us, q3_us, min_us, repeats, compile_s, rel_err, flops, min_bytes, floor_us,
    pct_floor (None where not applicable), device, other_load (cores busy with other processes
    while timing), busy (other_load + threads exceeded the cores by > BUSY_THRESHOLD),
    matmul_gflops_per_thread, bandwidth_gbps.
    ``quick`` selects QUICK_SHAPES and QUICK_TIMING unless shapes / timing are given.
    ``busy_retries``: when other processes took a core this thread count needs while a case was
    timed, wait a second and time it again, up to this many times, keeping the quietest.
    """
    thread_counts = list(dict.fromkeys(int(t) for t in threads))
    providers = tuple(providers) if providers is not None else default_providers()
    for p in providers:
        if p not in ALL_PROVIDERS:
            raise ValueError(f"fastgen.benchmarking.attention: unknown provider {p!r}; "
                             f"choose from {', '.join(ALL_PROVIDERS)}")
    for w in workloads:
        if w not in WORKLOADS:
            raise ValueError(f"fastgen.benchmarking.attention: unknown workload {w!r}; "
                             f"choose one of {', '.join(WORKLOADS)}")
    shape_list = [as_shape(s) for s in (shapes if shapes is not None
                                         else (QUICK_SHAPES if quick else DEFAULT_SHAPES))]
    timing = timing or (QUICK_TIMING if quick else DEFAULT_TIMING)
    if floors is None:
        floors = measure_floors(thread_counts, quick=quick)
    log = log or (lambda msg: None)

    results: list[dict] = []
    for t in thread_counts:
        with _threads(t):
            for workload in workloads:
                for s in shape_list:
                    flops = workload_flops(s, workload)
                    nbytes = workload_min_bytes(s, workload)
                    floor_s = floors.floor_seconds(flops, nbytes, t)
                    want = prepare_case(s, workload, "eager").outputs()
                    for provider in providers:
                        row = dict(workload=workload, threads=t, shape=s.label, B=s.B, C=s.C,
                                   H=s.H, W=s.W, N=s.N, provider=provider, available=False,
                                   reason=None, median_us=None, q1_us=None, q3_us=None,
                                   min_us=None, repeats=0, compile_s=None, rel_err=None,
                                   flops=flops, min_bytes=nbytes, floor_us=floor_s * 1e6,
                                   pct_floor=None, device=None, other_load=None, busy=False,
                                   matmul_gflops_per_thread=floors.matmul_gflops_per_thread,
                                   bandwidth_gbps=floors.bytes_per_s(t, nbytes) / 1e9)
                        log(f"[attention] {workload} threads={t} {s.label} {provider} ...")
                        try:
                            case = prepare_case(s, workload, provider)
                            row["rel_err"] = relative_error(case.outputs(), want)
                            tm = _time_quietest(case, timing, busy_retries, log,
                                                allowed_load=_allowed_load(t))
                        except ProviderUnavailable as exc:
                            row["reason"] = str(exc)
                            log(f"[attention]   n/a: {exc}")
                            results.append(row)
                            continue
                        finally:
                            if provider.startswith("compile"):
                                torch._dynamo.reset()
                        row.update(available=True, median_us=tm.median * 1e6,
                                   q1_us=tm.q1 * 1e6, q3_us=tm.q3 * 1e6,
                                   min_us=tm.minimum * 1e6, repeats=tm.repeats,
                                   compile_s=case.compile_s, device=case.device,
                                   other_load=tm.other_load,
                                   busy=(tm.other_load is not None
                                         and tm.other_load > _allowed_load(t)))
                        if case.device == "cpu":
                            row["pct_floor"] = 100.0 * floor_s / tm.median
                        log(f"[attention]   {row['median_us']:.1f} us "
                            f"({tm.repeats} repeats, rel err {row['rel_err']:.1e})")
                        results.append(row)
    return results


def _allowed_load(n_threads: int) -> float:
    """Other processes' load (cores) above which a run at n_threads oversubscribes the CPU."""
    return max(0, (os.cpu_count() or 1) - n_threads) + BUSY_THRESHOLD


def _time_quietest(case: PreparedCase, timing: TimingConfig, retries: int,
                   log: Callable[[str], None], allowed_load: float = BUSY_THRESHOLD) -> Timing:
    """time_call, repeated (up to ``retries`` times, 1 s apart) while other processes'
    load exceeded ``allowed_load``; the quietest measurement wins."""
    best = time_call(case.step, timing, sync=case.sync)
    for _ in range(retries):
        if best.other_load is None or best.other_load <= allowed_load:
            break
        log(f"[attention]   busy machine (other load {best.other_load:.2f} cores), retrying")
        time.sleep(1.0)
        again = time_call(case.step, timing, sync=case.sync)
        if again.other_load is not None and again.other_load < best.other_load:
            best = again
    return best


# --------------------------------------------------------------------------------------------
# markdown
# --------------------------------------------------------------------------------------------

def _fmt_us(row: dict | None) -> str:
    if row is None or not row["available"]:
        return "n/a"
    half_iqr = 50.0 * (row["q3_us"] - row["q1_us"]) / row["median_us"]
    us = row["median_us"]
    num = f"{us:.0f}" if us >= 1000 else f"{us:.1f}"
    return f"{num} ±{half_iqr:.0f}%" + (" †" if _busy(row) else "")


def _busy(row: dict) -> bool:
    return bool(row.get("busy"))


def _fmt_num(v: float) -> str:
    """3 significant digits, no exponent for the magnitudes we print."""
    return f"{v:.1f}" if v >= 100 else f"{v:.3g}"


def _fmt_pct(row: dict | None) -> str:
    if row is None or not row["available"] or row["pct_floor"] is None:
        return "n/a" if row is None or not row["available"] else "–"
    p = row["pct_floor"]
    return f"{p:.2g}%" if p < 10 else f"{p:.0f}%"


def _fmt_ratio(fast: dict | None, slow: dict | None) -> str:
    if not fast or not slow or not fast["available"] or not slow["available"]:
        return "n/a"
    return f"{slow['median_us'] / fast['median_us']:.2f}×"


def format_attention_markdown(results: list[dict], floors: MachineFloors | None = None,
                              timing: TimingConfig | None = None,
                              title: str = "DRAW attention benchmark (Gaussian filterbank read → write)",
                              date: str | None = None) -> str:
    """Render attention_results() as a markdown document: header, then one table per
    (workload, threads)."""
    date = date or _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    providers = list(dict.fromkeys(r["provider"] for r in results))
    lines = [f"# {title}", ""]
    lines.append(f"- Machine: {machine_line()}")
    if floors is not None:
        lines.append(f"- Floors measured in this run: {floors.describe()}")
    lines.append(f"- Date: {date}")
    loads = [r["other_load"] for r in results if r.get("other_load") is not None]
    if loads:
        lines.append(f"- Other processes' CPU use while timing: mean {sum(loads) / len(loads):.2f}, "
                     f"max {max(loads):.2f} cores"
                     + (" (quiet machine)" if max(loads) <= BUSY_THRESHOLD else
                        " — a shared machine: other jobs compete for caches and memory "
                        "bandwidth even on a free core")
                     + "; † marks cells where they took a core we needed (oversubscribed).")
    if timing is not None:
        lines.append(f"- Timing: median per call after warm-up (≥{timing.warmup} calls and "
                     f"≥{timing.warmup_time:g} s), ≥{timing.min_repeats} repeats and "
                     f"≥{timing.min_time:g} s per case; ±x% = half the interquartile range "
                     f"as a percentage of the median.")
    lines += [
        "- Workloads: forward = `attention_read(x, p_read, N)` then "
        "`attention_write(patch, p_write, H, W)` under no_grad; forward+backward = the same "
        "with x, p_read, p_write requiring grad, then `image.sum().backward()`.",
        "- Providers: eager = `fastgen.reference.attention`; compile = "
        "`torch.compile(reference read → write)` (default mode, compiled once per shape and "
        "thread count outside the timed region); fastgen-X = `fastgen.ops` under "
        "`use_backend(\"X\")`.",
        "- Floor = max(matmul FLOPs / (matmul FLOP/s per thread × threads), minimum bytes / "
        "copy bandwidth); % floor = floor time / measured time (100% = machine limit). "
        "Formulas: `fastgen/benchmarking/attention_cases.py` docstring.",
        "",
    ]
    groups: dict[tuple[str, int], list[dict]] = {}
    for r in results:
        groups.setdefault((r["workload"], r["threads"]), []).append(r)
    for (workload, t), rows in groups.items():
        lines.append(f"## {workload}, {t} thread{'s' if t != 1 else ''}")
        lines.append("")
        # The floors are the CPU's (measured matmul rate and copy bandwidth): shown with CPU columns only.
        cpu_floor = any(p in CPU_PROVIDERS for p in providers)
        header = ["shape B×C×H×W, N", "MFLOP", "min MB"] + ["floor µs"] * cpu_floor
        align = ["---", "---:", "---:"] + ["---:"] * cpu_floor
        for p in providers:
            header.append(f"{p} µs")
            align.append("---:")
            if p not in GPU_PROVIDERS:
                header.append(f"{p} % floor")
                align.append("---:")
        ratios = ratio_columns(providers)
        for fast, base in ratios:
            header.append(f"{_short_name(fast)} vs {base}")
            align.append("---:")
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "|".join(align) + "|")
        by_shape: dict[str, dict[str, dict]] = {}
        for r in rows:
            by_shape.setdefault(r["shape"], {})[r["provider"]] = r
        notes: list[str] = []
        compile_times: list[str] = []
        busy: list[float] = []
        n_timed = 0
        for label, cells in by_shape.items():
            any_row = next(iter(cells.values()))
            cols = [label, _fmt_num(any_row["flops"] / 1e6), _fmt_num(any_row["min_bytes"] / 1e6)]
            cols += [_fmt_num(any_row["floor_us"])] * cpu_floor
            for p in providers:
                cols.append(_fmt_us(cells.get(p)))
                if p not in GPU_PROVIDERS:
                    cols.append(_fmt_pct(cells.get(p)))
            for fast, base in ratios:
                cols.append(_fmt_ratio(cells.get(fast), cells.get(base)))
            lines.append("| " + " | ".join(cols) + " |")
            for p, r in cells.items():
                if not r["available"]:
                    notes.append(f"{p}, {label}: n/a — {r['reason']}")
                elif r["rel_err"] is not None and not (r["rel_err"] <= REL_ERR_WARN):
                    notes.append(f"{p}, {label}: WARNING relative error vs eager "
                                 f"{r['rel_err']:.1e} (> {REL_ERR_WARN:g})")
                if r["compile_s"] is not None:
                    compile_times.append(f"{label}: {r['compile_s']:.1f} s")
                n_timed += bool(r["available"])
                if r["available"] and _busy(r):
                    busy.append(r["other_load"])
        notes = _collapse_na(notes)
        if compile_times:
            notes.append("torch.compile first call time (compilation; Inductor's on-disk cache "
                         "makes it short when the same graph was compiled before): "
                         + "; ".join(compile_times))
        if busy:
            notes.append(f"† OVERSUBSCRIBED: {len(busy)} of {n_timed} cells were timed while other "
                         f"processes kept {min(busy):.2f}–{max(busy):.2f} cores busy on average, "
                         f"more than the cores this thread count leaves free; treat them as "
                         f"unreliable.")
        if notes:
            lines.append("")
            lines += [f"- {n}" for n in notes]
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def ratio_columns(providers: Sequence[str]) -> list[tuple[str, str]]:
    """(fastgen provider, baseline) pairs shown as speedup columns: same device, both measured."""
    return [(fast, base) for fast, bases in BASELINES.items() if fast in providers
            for base in bases if base in providers]


def _short_name(provider: str) -> str:
    """'fastgen' for the CPU column (the README's tables say "fastgen vs eager"), else the backend."""
    return "fastgen" if provider == "fastgen-cpu" else provider


def _collapse_na(notes: list[str]) -> list[str]:
    """Collapse identical n/a reasons of one provider over all shapes into a single note."""
    out: list[str] = []
    seen: dict[tuple[str, str], int] = {}
    for n in notes:
        if " n/a — " in n:
            head, reason = n.split(" n/a — ", 1)
            provider = head.split(",", 1)[0]
            key = (provider, reason)
            if key in seen:
                continue
            seen[key] = len(out)
            out.append(f"{provider}: n/a — {reason}")
        else:
            out.append(n)
    return out


def run_attention_benchmark(threads: Iterable[int] = (1, 2), quick: bool = False,
                            providers: Sequence[str] | None = None,
                            shapes: Sequence[Shape | Sequence[int]] | None = None,
                            workloads: Sequence[str] = WORKLOADS,
                            timing: TimingConfig | None = None,
                            log: Callable[[str], None] | None = None,
                            busy_retries: int = 2) -> str:
    """Measure the machine floors, run every case, and return the markdown report.

    quick=True: fewer repeats and only the 64×2×28×28, N=12 shape (shapes / timing override).
    providers: subset of ALL_PROVIDERS (default: default_providers()).
    """
    thread_counts = list(dict.fromkeys(int(t) for t in threads))
    timing = timing or (QUICK_TIMING if quick else DEFAULT_TIMING)
    floors = measure_floors(thread_counts, quick=quick)
    results = attention_results(thread_counts, quick=quick, providers=providers, shapes=shapes,
                                workloads=workloads, timing=timing, floors=floors, log=log,
                                busy_retries=busy_retries)
    return format_attention_markdown(results, floors=floors, timing=timing)


__all__ = [
    "Shape", "DEFAULT_SHAPES", "QUICK_SHAPES", "WORKLOADS", "ALL_PROVIDERS", "CPU_PROVIDERS",
    "GPU_PROVIDERS", "ProviderUnavailable", "PreparedCase", "prepare_case", "make_inputs",
    "default_providers", "workload_flops", "workload_min_bytes", "read_forward_flops",
    "write_forward_flops", "read_backward_flops", "write_backward_flops", "relative_error",
    "attention_results", "format_attention_markdown", "run_attention_benchmark",
]
