"""A small, model-agnostic training loop with exact resume and multi-process data parallelism.

The contract with a model (the only thing a model author writes)::

    def loss_fn(model, batch, generator) -> (loss, metrics):
        ...  # loss: scalar tensor to minimise; metrics: dict of name -> float or 0-dim tensor

* ``model`` is the plain module given to the Trainer (never a DDP wrapper), so ``loss_fn`` may call
  any of its methods, any number of times. Under torch.distributed the Trainer runs the *whole*
  ``loss_fn`` inside DDP's forward, so gradients are still averaged across processes.
* ``batch`` is ``data[idx]`` moved to the model's device: a tensor when ``data`` is a tensor, a
  tuple when it is a tuple of tensors. Under DDP each process gets its slice of the global batch.
* ``generator`` is a torch.Generator on the model's device. Draw every bit of training noise from
  it (``torch.randn(..., generator=generator, device=...)``, ``torch.bernoulli(p, generator=...)``);
  the Trainer saves and restores its state, which is what makes resuming bit-exact. Modules that
  use the global RNG (nn.Dropout) are exact too, because the global RNG states are checkpointed
  as well, but an explicit generator keeps noise independent of anything else that draws numbers.
* ``loss`` should be a mean over the batch: under DDP the gradients of the per-process losses are
  averaged, which equals the gradient of the global-batch mean when every slice has equal size
  (the Trainer guarantees that: the global batch size must divide by the number of processes).

Shards: each global batch is cut into ``world_size * micro_batches`` equal slices, shard ``s`` going
to process ``s // micro_batches`` (which accumulates the gradients of its ``micro_batches`` slices).
Shard ``s`` always draws its noise from its own generator, seeded by ``(seed, s)``, so a run on K
processes computes exactly what one process with ``micro_batches = K`` computes (up to the order
of float additions). With ``$FASTGEN_SHARD_TRACE`` set to a folder, every process appends the data
rows of each of its shards, one JSON line per shard and step, to ``rank<r>.jsonl`` there.

The Trainer owns the data order: epoch ``e`` visits ``torch.randperm(len(data))`` drawn from a
generator seeded by ``(seed, e)``, in global batches of ``batch_size`` (an incomplete final batch
is dropped, so an epoch is ``len(data) // batch_size`` steps). Step ``k`` is therefore always the
same batch, and resuming from a checkpoint at step ``k`` just starts there.

Outputs under ``out_dir`` (process 0 only): ``log.csv`` (step, epoch, loss, metrics, eval metrics
prefixed ``eval_``, grad_norm when clipping, lr, time), ``summary.json``, and ``checkpoint/``
(see fastgen.train.checkpoint), rewritten every ``checkpoint_every`` steps and at the end.
"""
from __future__ import annotations

import base64
import contextlib
import csv
import hashlib
import json
import math
import os
import random
import sys
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Sequence, Union

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn
from tqdm import tqdm

from fastgen._atomic import atomic_write, write_json_atomic

from . import distributed
from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint

Batch = Union[Tensor, tuple]
LossFn = Callable[[nn.Module, Batch, torch.Generator], Union[Tensor, tuple[Tensor, dict]]]
EvalFn = Callable[[nn.Module], dict]

TRAINER_STATE_VERSION = 1


# --- seeds and RNG state --------------------------------------------------------------------------

def derive_seed(seed: int, *tags: Any) -> int:
    """A 63-bit seed determined by ``seed`` and ``tags`` (e.g. ("data", epoch)); stable across runs."""
    digest = hashlib.sha256(repr((int(seed),) + tags).encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, NumPy's global RNG and torch (CPU and every CUDA device)."""
    random.seed(seed)
    np.random.seed(seed % (1 << 32))
    torch.manual_seed(seed)


def epoch_permutation(seed: int, epoch: int, n: int) -> Tensor:
    """The order in which the Trainer visits ``n`` examples in ``epoch`` (int64, on the CPU)."""
    generator = torch.Generator().manual_seed(derive_seed(seed, "data", epoch))
    return torch.randperm(n, generator=generator)


def _b64(state: Tensor) -> str:
    return base64.b64encode(state.cpu().numpy().tobytes()).decode("ascii")


def _unb64(text: str) -> Tensor:
    return torch.frombuffer(bytearray(base64.b64decode(text)), dtype=torch.uint8)


def get_rng_state() -> dict:
    """Every global RNG state (torch CPU, CUDA devices, NumPy, Python) as JSON-able data."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    return {
        "torch": _b64(torch.get_rng_state()),
        "cuda": [_b64(s) for s in torch.cuda.get_rng_state_all()] if torch.cuda.is_available() else [],
        "numpy": {"kind": kind, "keys": keys.tolist(), "pos": int(pos), "has_gauss": int(has_gauss),
                  "cached_gaussian": float(cached)},
        "python": {"version": version, "state": list(internal), "gauss_next": gauss_next},
    }


def set_rng_state(state: dict) -> None:
    """Restore what :func:`get_rng_state` returned."""
    torch.set_rng_state(_unb64(state["torch"]))
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([_unb64(s) for s in state["cuda"]])
    n = state["numpy"]
    np.random.set_state((n["kind"], np.array(n["keys"], dtype=np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss_next"]))


@contextlib.contextmanager
def preserved_rng() -> Iterator[None]:
    """Run a block without it consuming any global random numbers (evaluation uses this, so the
    training trajectory does not depend on when or whether evaluation ran)."""
    state = get_rng_state()
    try:
        yield
    finally:
        set_rng_state(state)


# --- configuration --------------------------------------------------------------------------------

@dataclass
class TrainConfig:
    """Everything that shapes a run; saved in the checkpoint's trainer.json."""

    batch_size: int = 64                 # global batch, split evenly across processes
    epochs: int = 1
    max_steps: Optional[int] = None      # stop at this global step even mid-epoch
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.0
    grad_clip: Optional[float] = None    # clip the gradient's global L2 norm to this
    seed: int = 0
    eval_every: Optional[int] = None     # steps between eval_fn calls (it also runs at the end)
    checkpoint_every: Optional[int] = None  # steps between checkpoints (one is also written at the end)
    log_every: int = 1                   # steps per log.csv row (loss/metrics averaged over them)
    progress: bool = True                # tqdm bar (shown only on a TTY, and only by process 0)
    find_unused_parameters: bool = False  # DDP: set when some parameters get no gradient in a step
    micro_batches: int = 1               # slices per process per step, their gradients accumulated

    def __post_init__(self) -> None:
        self.betas = tuple(self.betas)
        for name in ("batch_size", "epochs", "log_every", "micro_batches"):
            if getattr(self, name) < 1:
                raise ValueError(f"TrainConfig.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("max_steps", "eval_every", "checkpoint_every"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"TrainConfig.{name} must be >= 1 or None, got {value}")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ValueError(f"TrainConfig.grad_clip must be > 0 or None, got {self.grad_clip}")


class _LossModule(nn.Module):
    """model + loss_fn as one module, so DDP's forward covers the whole loss computation."""

    def __init__(self, model: nn.Module, loss_fn: LossFn):
        super().__init__()
        self.model = model
        self.loss_fn = loss_fn

    def forward(self, batch: Batch, generator: torch.Generator) -> tuple[Tensor, dict]:
        out = self.loss_fn(self.model, batch, generator)
        if isinstance(out, Tensor):
            return out, {}
        loss, metrics = out
        return loss, dict(metrics or {})


class _CsvLog:
    """log.csv that grows a column when a new metric first appears (the file is then rewritten)."""

    def __init__(self, path: Path, keep_through_step: int):
        self.path = path
        self.fields: list[str] = []
        rows: list[dict] = []
        if path.is_symlink():  # not a log this run wrote: replace the link, never read through it
            warnings.warn(f"{path} is a symbolic link; replacing it with a fresh log", RuntimeWarning,
                          stacklevel=3)
        elif path.exists():  # a resumed run drops rows written after its checkpoint
            with open(path, newline="", encoding="utf-8") as f:
                reader = csv.DictReader(f)
                self.fields = list(reader.fieldnames or [])
                rows = [r for r in reader if r.get("step", "").isdigit() and int(r["step"]) <= keep_through_step]
        self._rewrite(rows)

    def _rewrite(self, rows: list[dict]) -> None:
        with atomic_write(self.path, newline="") as f:
            writer = csv.DictWriter(f, self.fields)
            if self.fields:
                writer.writeheader()
            writer.writerows(rows)

    def append(self, row: dict) -> None:
        new = [k for k in row if k not in self.fields]
        if new:
            with open(self.path, newline="", encoding="utf-8") as f:
                rows = list(csv.DictReader(f)) if self.fields else []
            tail = [k for k in ("lr", "time") if k in self.fields or k in row]
            self.fields = [k for k in self.fields if k not in tail] + [k for k in new if k not in tail] + tail
            self._rewrite(rows)
        with open(self.path, "a", newline="", encoding="utf-8") as f:
            csv.DictWriter(f, self.fields).writerow({k: _csv_value(v) for k, v in row.items()})


def _csv_value(value: Any) -> Any:
    return repr(value) if isinstance(value, float) else value  # repr: floats read back exactly


# --- the trainer ----------------------------------------------------------------------------------

class DataLayoutError(ValueError):
    """The data, batch size or process layout does not fit (Trainer.fit's checks before its first
    step; a setting for the user to change)."""


class Trainer:
    """Adam + gradient clipping + logging + evaluation + checkpoints + exact resume + DDP.

    ::

        trainer = Trainer(model, loss_fn, TrainConfig(batch_size=64, epochs=10), out_dir="runs/x",
                          eval_fn=lambda m: {"nll": ...}, model_config={"hidden": 256})
        trainer.load("runs/x/checkpoint")   # optional: resume exactly where that run stopped
        summary = trainer.fit(images)       # a tensor, or a tuple of tensors of equal length

    ``lr_lambda(step) -> factor`` optionally scales ``config.lr`` per step (a pure function of
    the step, so resuming needs no scheduler state). ``model_config`` (JSON) is stored in the
    checkpoint's config.json, for rebuilding the model. Under torch.distributed (see
    :func:`fastgen.train.distributed.init_from_env`) create the Trainer, and call ``fit``,
    ``save`` and ``load``, on every process with the same arguments and data; only process 0
    writes files, and checkpoints must be on a file system every process can read.

    Creating a Trainer seeds Python's, NumPy's and torch's global RNGs from ``config.seed`` (and
    the rank). Those RNGs are process-wide: seed and build the model first (``seed_everything``),
    then build each Trainer right before its ``fit``.
    """

    def __init__(self, model: nn.Module, loss_fn: LossFn, config: Optional[TrainConfig] = None, *,
                 out_dir: Union[str, os.PathLike, None] = None, eval_fn: Optional[EvalFn] = None,
                 model_config: Optional[dict] = None,
                 lr_lambda: Optional[Callable[[int], float]] = None,
                 device: Union[str, torch.device, None] = None):
        self.config = config if config is not None else TrainConfig()
        cfg = self.config
        self.model = model
        self.loss_fn = loss_fn
        self.eval_fn = eval_fn
        self.model_config = dict(model_config or {})
        self.lr_lambda = lr_lambda
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.rank, self.world_size = distributed.rank(), distributed.world_size()
        self.is_main = self.rank == 0
        if device is None:
            first = next(model.parameters(), None)
            device = first.device if first is not None else torch.device("cpu")
        self.device = torch.device(device)

        seed_everything(derive_seed(cfg.seed, "global", self.rank))
        # one noise generator per shard of this process (see "Shards" in the module docstring)
        self.shards = range(self.rank * cfg.micro_batches, (self.rank + 1) * cfg.micro_batches)
        self.generators = [torch.Generator(device=self.device).manual_seed(derive_seed(cfg.seed, "noise", s))
                           for s in self.shards]
        self.optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=cfg.betas,
                                          eps=cfg.eps, weight_decay=cfg.weight_decay)
        self.step = 0             # optimizer updates done so far (global: the same on every process)
        self.elapsed = 0.0        # training seconds, summed over resumed sessions
        self.history: list[dict] = []  # the log rows written by this process (process 0)
        self.last_eval: dict = {}
        self._data_state: Optional[dict] = None      # length / batch layout of the data being fit
        self._resumed_data: Optional[dict] = None    # the same, read from a loaded checkpoint

    # -- public API --------------------------------------------------------------------------------

    def fit(self, data: Union[Tensor, Sequence[Tensor]]) -> dict:
        """Train from ``self.step`` to the end of ``config.epochs`` (or ``config.max_steps``).

        Returns the summary also written to ``out_dir/summary.json``.
        """
        cfg = self.config
        tensors = (data,) if isinstance(data, Tensor) else tuple(data)
        n = self._check_data(tensors)
        steps_per_epoch = n // cfg.batch_size
        total = cfg.epochs * steps_per_epoch
        if cfg.max_steps is not None:
            total = min(total, cfg.max_steps)

        net: nn.Module = _LossModule(self.model, self.loss_fn)
        if self.world_size > 1:
            net = nn.parallel.DistributedDataParallel(
                net, device_ids=[self.device] if self.device.type == "cuda" else None,
                find_unused_parameters=cfg.find_unused_parameters)
        self.model.train()

        log = None
        if self.is_main and self.out_dir is not None:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            log = _CsvLog(self.out_dir / "log.csv", keep_through_step=self.step)
        show = cfg.progress and self.is_main and sys.stderr.isatty()
        bar = tqdm(total=total, initial=self.step, unit="step", dynamic_ncols=True, disable=not show)

        start_step, session_start = self.step, time.perf_counter()
        clock_zero = session_start - self.elapsed
        window: dict[str, list[float]] = {}
        permutation, permutation_epoch = None, -1
        try:
            while self.step < total:
                epoch, index = divmod(self.step, steps_per_epoch)
                if epoch != permutation_epoch:
                    permutation, permutation_epoch = epoch_permutation(cfg.seed, epoch, n), epoch
                values = self._train_step(net, self._batches(tensors, permutation, index))
                self.step += 1
                self.elapsed = time.perf_counter() - clock_zero
                for name, value in values.items():
                    window.setdefault(name, []).append(value)

                last = self.step == total
                eval_metrics = self.evaluate() if last or self._due(cfg.eval_every) else {}
                if self._due(cfg.log_every) or eval_metrics or last:
                    row = {"step": self.step, "epoch": self.step / steps_per_epoch}
                    row.update({k: sum(v) / len(v) for k, v in window.items()})
                    row.update(eval_metrics)
                    row.update(lr=self.optimizer.param_groups[0]["lr"], time=round(self.elapsed, 3))
                    window.clear()
                    self.history.append(row)
                    if log is not None:
                        log.append(row)
                    bar.set_postfix(loss=f"{row['loss']:.4g}", epoch=f"{row['epoch']:.2f}", refresh=False)
                bar.update(1)
                if self._due(cfg.checkpoint_every) and not last and self.out_dir is not None:
                    self.save()
        finally:
            bar.close()

        if self.out_dir is not None:
            self.save()
        session = time.perf_counter() - session_start
        summary = {
            "step": self.step,
            "epochs": self.step / steps_per_epoch,
            "final": self.history[-1] if self.history else {},
            "eval": self.last_eval,
            "elapsed_s": self.elapsed,
            "steps_this_session": self.step - start_step,
            "steps_per_second": (self.step - start_step) / session if session > 0 else None,
            "world_size": self.world_size,
            "examples": n,
            "steps_per_epoch": steps_per_epoch,
            "config": asdict(cfg),
            "model_config": self.model_config,
        }
        if self.is_main and self.out_dir is not None:
            write_json_atomic(self.out_dir / "summary.json", summary)
        distributed.barrier()  # every process returns only once the final checkpoint exists
        return summary

    def evaluate(self) -> dict:
        """Run ``eval_fn(model)`` on process 0 (eval mode, no grad, global RNG left untouched);
        returns its metrics prefixed ``eval_`` ({} elsewhere or without an eval_fn)."""
        if self.eval_fn is None or not self.is_main:
            return {}
        was_training = self.model.training
        self.model.eval()
        try:
            with preserved_rng(), torch.no_grad():
                metrics = self.eval_fn(self.model)
        finally:
            self.model.train(was_training)
        self.last_eval = {f"eval_{k}": _to_float(v) for k, v in dict(metrics or {}).items()}
        return self.last_eval

    def save(self, directory: Union[str, os.PathLike, None] = None) -> Optional[Path]:
        """Checkpoint model, optimizer and everything needed to resume exactly (default
        ``out_dir/checkpoint``). Call on every process; process 0 writes."""
        if directory is None:
            if self.out_dir is None:
                raise ValueError("Trainer.save: no directory given and the Trainer has no out_dir")
            directory = self.out_dir / "checkpoint"
        rng = {"global": get_rng_state(), "noise": [_b64(g.get_state()) for g in self.generators]}
        if self.world_size > 1:
            every = [None] * self.world_size
            dist.all_gather_object(every, rng)
        else:
            every = [rng]
        if not self.is_main:
            return None
        extra = {
            "trainer_state_version": TRAINER_STATE_VERSION,
            "step": self.step,
            "elapsed": self.elapsed,
            "config": asdict(self.config),
            "world_size": self.world_size,
            "data": self._data_state,
            "rng": every,  # one entry per process, in rank order; its noise: one state per shard
        }
        return save_checkpoint(directory, self.model, self.model_config, self.optimizer,
                               extra=extra, step=self.step)

    def load(self, directory: Union[str, os.PathLike]) -> None:
        """Resume from a checkpoint written by :meth:`save`: weights, Adam state, step, RNG
        states; the next :meth:`fit` continues with the batch after the checkpoint's.

        Hyperparameters come from this Trainer's config (lr, betas, eps, weight decay), not the
        checkpoint's. Raises CheckpointError for a bad or mismatched checkpoint."""
        ckpt = load_checkpoint(directory, self.model, self.optimizer, map_location=self.device)
        extra = ckpt.extra
        if extra.get("trainer_state_version") != TRAINER_STATE_VERSION:
            raise CheckpointError(f"{ckpt.directory / 'trainer.json'}: not written by this Trainer "
                                  f"(trainer_state_version {extra.get('trainer_state_version')!r}, "
                                  f"expected {TRAINER_STATE_VERSION})")
        self.step = ckpt.step
        self.elapsed = float(extra.get("elapsed", 0.0))
        self._resumed_data = extra.get("data")
        for group in self.optimizer.param_groups:
            group.update(lr=self.config.lr, betas=self.config.betas, eps=self.config.eps,
                         weight_decay=self.config.weight_decay)
        states = extra.get("rng") or []
        mine = states[self.rank] if len(states) == self.world_size else None
        noise = [] if mine is None else mine["noise"]
        noise = [noise] if isinstance(noise, str) else noise  # written before shards had generators
        if len(noise) == len(self.generators):
            set_rng_state(mine["global"])
            for generator, state in zip(self.generators, noise):
                generator.set_state(_unb64(state))
        else:
            warnings.warn(f"checkpoint {ckpt.directory} was written by {len(states)} process(es) with "
                          f"{len(noise)} shard(s) here, this run has {self.world_size} with "
                          f"{len(self.generators)}: random states are re-derived from the seed, so the "
                          "resumed run is not bit-identical to an uninterrupted one",
                          RuntimeWarning, stacklevel=2)
            seed_everything(derive_seed(self.config.seed, "global", self.rank, self.step))
            for generator, shard in zip(self.generators, self.shards):
                generator.manual_seed(derive_seed(self.config.seed, "noise", shard, self.step))

    # -- internals ---------------------------------------------------------------------------------

    def _due(self, every: Optional[int]) -> bool:
        return every is not None and self.step % every == 0

    def _check_data(self, tensors: tuple[Tensor, ...]) -> int:
        cfg = self.config
        if not tensors or not all(isinstance(t, Tensor) for t in tensors):
            raise TypeError("Trainer.fit: data must be a tensor or a tuple of tensors")
        n = len(tensors[0])
        if any(len(t) != n for t in tensors):
            raise ValueError(f"Trainer.fit: data tensors differ in length: {[len(t) for t in tensors]}")
        shards = self.world_size * cfg.micro_batches
        if cfg.batch_size % shards:
            raise DataLayoutError(f"batch_size {cfg.batch_size} must be divisible by the number of shards: "
                             f"{self.world_size} process(es) x {cfg.micro_batches} micro-batch(es)")
        if n < cfg.batch_size:
            raise DataLayoutError(f"Trainer.fit: {n} examples, fewer than one batch of {cfg.batch_size}")
        self._data_state = {"examples": n, "batch_size": cfg.batch_size, "seed": cfg.seed,
                            "steps_per_epoch": n // cfg.batch_size}
        saved = self._resumed_data
        if saved is not None:
            for key in ("examples", "batch_size"):
                if saved.get(key) != self._data_state[key]:
                    raise DataLayoutError(
                        f"cannot resume: the checkpoint was trained with {key} = {saved.get(key)}, "
                        f"this run has {self._data_state[key]}, so its step {self.step} does not "
                        "map to the same place in the data")
            if saved.get("seed") != cfg.seed:
                warnings.warn(f"resuming with seed {cfg.seed}, the checkpoint used {saved.get('seed')}: "
                              "the data order from here on differs", RuntimeWarning, stacklevel=3)
        return n

    def _batches(self, tensors: tuple[Tensor, ...], permutation: Tensor, index: int) -> list[Batch]:
        """This process's shards of global batch ``index``: one batch per micro-batch."""
        size = self.config.batch_size
        rows = permutation[index * size:(index + 1) * size]
        share = size // (self.world_size * self.config.micro_batches)
        shard_rows = [rows[s * share:(s + 1) * share] for s in self.shards]
        _trace_shards(self.rank, self.step + 1, self.shards, shard_rows)
        batches = []
        for r in shard_rows:
            batch = tuple(t[r.to(t.device)].to(self.device, non_blocking=True) for t in tensors)
            batches.append(batch[0] if len(batch) == 1 else batch)
        return batches

    def _train_step(self, net: nn.Module, batches: list[Batch]) -> dict[str, float]:
        cfg = self.config
        lr = cfg.lr * (self.lr_lambda(self.step) if self.lr_lambda is not None else 1.0)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.zero_grad(set_to_none=True)
        values = None
        for m, (batch, generator) in enumerate(zip(batches, self.generators)):
            last = m == len(batches) - 1
            # DDP all-reduces the accumulated gradients once, in the last micro-batch's backward
            sync = contextlib.nullcontext() if last or self.world_size == 1 else net.no_sync()
            with sync:
                loss, metrics = net(batch, generator)
                if not isinstance(loss, Tensor) or loss.numel() != 1:
                    raise TypeError("loss_fn must return a scalar tensor loss (and a dict of metrics)")
                (loss / len(batches)).backward()  # mean over micro-batches; exact for 2, 4, ... like DDP's
            shard = _stacked(loss, metrics)
            values = shard if values is None else values + shard
        values /= len(batches)
        names = ["loss", *metrics]
        if self.world_size > 1:  # log the global-batch mean (equal slices: mean of the means)
            dist.all_reduce(values)
            values /= self.world_size
        out = dict(zip(names, values.tolist()))
        if not math.isfinite(out["loss"]):
            raise FloatingPointError(f"loss is {out['loss']} at step {self.step + 1} "
                                     f"(the weights are those after step {self.step})")
        if cfg.grad_clip is not None:
            norm = nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
            out["grad_norm"] = float(norm)
        self.optimizer.step()
        return out


def _stacked(loss: Tensor, metrics: dict) -> Tensor:
    """The loss and metric values as one float64 vector (one all-reduce for all of them)."""
    return torch.stack([loss.detach().reshape(()).double()] +
                       [torch.as_tensor(v, dtype=torch.float64, device=loss.device).detach().reshape(())
                        for v in metrics.values()])


def _trace_shards(rank: int, step: int, shards: range, rows: list[Tensor]) -> None:
    """Append the data rows of each shard to ``$FASTGEN_SHARD_TRACE/rank<rank>.jsonl`` when that
    variable is set (a check that processes really take different slices; off by default)."""
    folder = os.environ.get("FASTGEN_SHARD_TRACE")
    if not folder:
        return
    with open(Path(folder) / f"rank{rank}.jsonl", "a", encoding="utf-8") as f:
        for shard, r in zip(shards, rows):
            f.write(json.dumps({"step": step, "shard": shard, "rows": r.tolist()}) + "\n")


def _to_float(value: Any) -> float:
    return float(value.item()) if isinstance(value, Tensor) else float(value)


__all__ = ["DataLayoutError", "TrainConfig", "Trainer", "derive_seed", "epoch_permutation", "get_rng_state",
           "preserved_rng", "seed_everything", "set_rng_state"]
