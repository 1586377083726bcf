"""A small, model-agnostic training loop with exact resume and multi-process data parallelism.

The contract with a model (the only thing a model author writes)::

    def loss_fn(model, batch, generator) -> (loss, metrics):
        ...  # loss: scalar tensor to minimise; metrics: dict of name -> float or 0-dim tensor

* ``model`` is the plain module given to the Trainer (never a DDP wrapper), so ``loss_fn`` may call
  any of its methods, any number of times. Under torch.distributed the Trainer runs the *whole*
  ``loss_fn`` inside DDP's forward, so gradients are still averaged across processes.
* ``batch`` is this process's shard of the global batch, moved to the model's device: a tensor when
  ``data`` is a tensor, a tuple when it is a tuple of tensors, a shard of whatever a
  :class:`~fastgen.train.data.BatchStream` yields (see fastgen.train.data for the data order).
* ``generator`` is a torch.Generator on the model's device. Draw every bit of training noise from
  it (``torch.randn(..., generator=generator, device=...)``, ``torch.bernoulli(p, generator=...)``);
  the Trainer saves and restores its state, which is what makes resuming bit-exact. Modules that
  use the global RNG (nn.Dropout) are exact too, because the global RNG states are checkpointed
  as well, but an explicit generator keeps noise independent of anything else that draws numbers.
* ``loss`` should be a mean over the batch: under DDP the gradients of the per-process losses are
  averaged, which equals the gradient of the global-batch mean when every slice has equal size
  (the Trainer guarantees that: the global batch size must divide by the number of processes).

Several networks with their own optimizers, losses and schedules (GANs, VAE-GAN, AVB, IRGAN):
``Trainer(model, phases=[Phase(...), ...])`` instead of a ``loss_fn``; see fastgen.train.phases.

Shards: each global batch is cut into ``world_size * micro_batches`` equal slices, shard ``s`` going
to process ``s // micro_batches`` (which accumulates the gradients of its ``micro_batches`` slices).
Shard ``s`` always draws its noise from its own generator, seeded by ``(seed, s)``, so a run on K
processes computes exactly what one process with ``micro_batches = K`` computes (up to the order
of float additions). ``$FASTGEN_SHARD_TRACE`` records which rows each shard took (fastgen.train.data).

The Trainer owns the data order: step ``k`` is always the same global batch (fastgen.train.data),
so resuming from a checkpoint at step ``k`` just starts there.

Outputs under ``out_dir`` (process 0 only): ``log.csv`` (step, epoch, loss, metrics, eval metrics
prefixed ``eval_``, grad_norm when clipping, lr, time; per-phase columns with phases, see
fastgen.train.phases), ``summary.json``, and ``checkpoint/``
(see fastgen.train.checkpoint), rewritten every ``checkpoint_every`` steps and at the end.
"""
from __future__ import annotations

import os
import sys
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Sequence, Union

import torch
import torch.distributed as dist
from torch import Tensor, nn
from tqdm import tqdm

from fastgen._atomic import write_json_atomic

from . import distributed
from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .csv_log import CsvLog
from .data import Batch, BatchStream, DataLayoutError, make_source, map_tensors, trace_shards
from .phases import Phase, PhaseStep
from .rng import derive_seed, get_rng_state, preserved_rng, seed_everything, set_rng_state, state_from_text, state_to_text
from .steps import LossFn, LossStep

EvalFn = Callable[[nn.Module], dict]

TRAINER_STATE_VERSION = 1


@dataclass
class TrainConfig:
    """Everything that shapes a run; saved in the checkpoint's trainer.json."""

    batch_size: int = 64                 # global batch, split evenly across processes
    epochs: int = 1
    max_steps: Optional[int] = None      # stop at this global step even mid-epoch
    lr: float = 1e-3                     # with phases: the default of each phase's Adam
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.0
    grad_clip: Optional[float] = None    # clip the gradient's global L2 norm to this (per phase)
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

    def total_steps(self, steps_per_epoch: int) -> int:
        """The global step a run ends at: ``epochs`` epochs, cut at ``max_steps``."""
        total = self.epochs * steps_per_epoch
        return total if self.max_steps is None else min(total, self.max_steps)


class Trainer:
    """Adam + gradient clipping + logging + evaluation + checkpoints + exact resume + DDP.

    ::

        trainer = Trainer(model, loss_fn, TrainConfig(batch_size=64, epochs=10), out_dir="runs/x",
                          eval_fn=lambda m: {"nll": ...}, model_config={"hidden": 256})
        trainer.load("runs/x/checkpoint")   # optional: resume exactly where that run stopped
        summary = trainer.fit(images)       # a tensor, a tuple of tensors of equal length, or a BatchStream

    ``phases=[Phase(...), ...]`` replaces ``loss_fn`` for models that train several networks with
    their own optimizers (fastgen.train.phases); ``trainer.optimizers`` then holds one per phase
    (``trainer.optimizer`` is the single-loss Adam, None with phases). ``phase_of(batch) -> name(s)``
    makes each step run only the phases its batch names (see fastgen.train.phases).

    ``lr_lambda(step) -> factor`` optionally scales ``config.lr`` (every phase's lr) per step (a pure
    function of the step, so resuming needs no scheduler state). ``model_config`` (JSON) is stored in
    the checkpoint's config.json, for rebuilding the model. Under torch.distributed (see
    :func:`fastgen.train.distributed.init_from_env`) create the Trainer, and call ``fit``,
    ``save`` and ``load``, on every process with the same arguments and data; only process 0
    writes files, and checkpoints must be on a file system every process can read.

    Creating a Trainer seeds Python's, NumPy's and torch's global RNGs from ``config.seed`` (and
    the rank). Those RNGs are process-wide: seed and build the model first (``seed_everything``),
    then build each Trainer right before its ``fit``.
    """

    def __init__(self, model: nn.Module, loss_fn: Optional[LossFn] = None, config: Optional[TrainConfig] = None, *,
                 phases: Optional[Iterable[Phase]] = None,
                 phase_of: Optional[Callable[[Batch], Union[str, Iterable[str]]]] = None,
                 out_dir: Union[str, os.PathLike, None] = None, eval_fn: Optional[EvalFn] = None,
                 model_config: Optional[dict] = None,
                 lr_lambda: Optional[Callable[[int], float]] = None,
                 device: Union[str, torch.device, None] = None):
        if (loss_fn is None) == (phases is None):
            raise TypeError("Trainer: give either a loss_fn (one loss, one optimizer) or phases=[Phase(...), ...]")
        if phase_of is not None and phases is None:
            raise TypeError("Trainer: phase_of chooses among phases, so it needs phases=[Phase(...), ...]")
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
        if phases is None:
            self.update: Union[LossStep, PhaseStep] = LossStep(model, loss_fn, cfg)
            self.optimizer: Optional[torch.optim.Optimizer] = self.update.optimizer
            self.optimizers: dict[str, torch.optim.Optimizer] = {}
        else:
            self.update = PhaseStep(model, phases, cfg, phase_of)
            self.optimizer, self.optimizers = None, self.update.optimizers
        self.step = 0             # optimizer updates done so far (global: the same on every process)
        self.elapsed = 0.0        # training seconds, summed over resumed sessions
        self.history: list[dict] = []  # the log rows written by this process (process 0)
        self.last_eval: dict = {}
        self._data_state: Optional[dict] = None      # length / batch layout of the data being fit
        self._resumed_data: Optional[dict] = None    # the same, read from a loaded checkpoint

    # -- public API --------------------------------------------------------------------------------

    def fit(self, data: Union[Tensor, Sequence[Tensor], BatchStream]) -> dict:
        """Train from ``self.step`` to the end of ``config.epochs`` (or ``config.max_steps``).

        Returns the summary also written to ``out_dir/summary.json``.
        """
        cfg = self.config
        source = make_source(data, cfg.batch_size, cfg.seed, self.world_size, cfg.micro_batches,
                             resumed=self._resumed_data)
        self._data_state = source.state
        steps_per_epoch = source.steps_per_epoch
        total = cfg.total_steps(steps_per_epoch)

        self.update.start(self.world_size, self.device)
        self.model.train()

        log = None
        if self.is_main and self.out_dir is not None:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            log = CsvLog(self.out_dir / "log.csv", keep_through_step=self.step)
        show = cfg.progress and self.is_main and sys.stderr.isatty()
        bar = tqdm(total=total, initial=self.step, unit="step", dynamic_ncols=True, disable=not show)

        start_step, session_start = self.step, time.perf_counter()
        clock_zero = session_start - self.elapsed
        window: dict[str, list[float]] = {}
        try:
            while self.step < total:
                batches = self._shard_batches(source, *divmod(self.step, steps_per_epoch))
                lr_factor = self.lr_lambda(self.step) if self.lr_lambda is not None else 1.0
                values = self.update.run(self.step, batches, self.generators, lr_factor)
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
                    row.update(self.update.learning_rates())
                    row["time"] = round(self.elapsed, 3)
                    window.clear()
                    self.history.append(row)
                    if log is not None:
                        log.append(row)
                    losses = {k: f"{v:.4g}" for k, v in row.items() if k == "loss" or k.startswith("loss/")}
                    bar.set_postfix(**losses, epoch=f"{row['epoch']:.2f}", refresh=False)
                bar.update(1)
                if self._due(cfg.checkpoint_every) and not last and self.out_dir is not None:
                    self.save()
        finally:
            bar.close()
            self.update.finish()

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
            "examples": source.examples,  # None for a BatchStream
            "steps_per_epoch": steps_per_epoch,
            "config": asdict(cfg),
            "model_config": self.model_config,
        }
        if isinstance(self.update, PhaseStep):
            summary["phases"] = self.update.schedule()
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
        """Checkpoint model, optimizer(s) and everything needed to resume exactly (default
        ``out_dir/checkpoint``). Call on every process; process 0 writes."""
        if directory is None:
            if self.out_dir is None:
                raise ValueError("Trainer.save: no directory given and the Trainer has no out_dir")
            directory = self.out_dir / "checkpoint"
        rng = {"global": get_rng_state(), "noise": [state_to_text(g.get_state()) for g in self.generators]}
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
        if isinstance(self.update, PhaseStep):
            extra["phases"] = self.update.schedule()
        return save_checkpoint(directory, self.model, self.model_config, self.update.saved_optimizers(),
                               extra=extra, step=self.step)

    def load(self, directory: Union[str, os.PathLike]) -> None:
        """Resume from a checkpoint written by :meth:`save`: weights, the state of every optimizer,
        step, RNG states; the next :meth:`fit` continues with the batch after the checkpoint's.

        Hyperparameters come from this Trainer (its config and phases: lr, betas, eps, weight
        decay), not the checkpoint's. Raises CheckpointError for a bad or mismatched checkpoint,
        also one written with other phases (or without phases, for a Trainer with them)."""
        ckpt = load_checkpoint(directory, self.model, self.update.saved_optimizers(), map_location=self.device)
        extra = ckpt.extra
        if extra.get("trainer_state_version") != TRAINER_STATE_VERSION:
            raise CheckpointError(f"{ckpt.directory / 'trainer.json'}: not written by this Trainer "
                                  f"(trainer_state_version {extra.get('trainer_state_version')!r}, "
                                  f"expected {TRAINER_STATE_VERSION})")
        self.step = ckpt.step
        self.elapsed = float(extra.get("elapsed", 0.0))
        self._resumed_data = extra.get("data")
        self.update.restore_hyperparameters()
        if isinstance(self.update, PhaseStep) and extra.get("phases") != self.update.schedule():
            warnings.warn(f"checkpoint {ckpt.directory} was trained with the phase schedule "
                          f"{extra.get('phases')}, this run has {self.update.schedule()}: from step "
                          f"{self.step} on the run differs from an uninterrupted one", RuntimeWarning, stacklevel=2)
        states = extra.get("rng") or []
        mine = states[self.rank] if len(states) == self.world_size else None
        noise = [] if mine is None else mine["noise"]
        noise = [noise] if isinstance(noise, str) else noise  # written before shards had generators
        if len(noise) == len(self.generators):
            set_rng_state(mine["global"])
            for generator, state in zip(self.generators, noise):
                generator.set_state(state_from_text(state))
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

    def _shard_batches(self, source, epoch: int, index: int) -> list[Batch]:
        """This process's shards of global batch ``index`` of ``epoch``: one per micro-batch."""
        share = self.config.batch_size // (self.world_size * self.config.micro_batches)
        pieces = source.shards(epoch, index, [slice(s * share, (s + 1) * share) for s in self.shards])
        trace_shards(self.rank, self.step + 1, self.shards, [rows for _, rows in pieces])
        return [map_tensors(batch, lambda t: t.to(self.device, non_blocking=True)) for batch, _ in pieces]


def _to_float(value: Any) -> float:
    return float(value.item()) if isinstance(value, Tensor) else float(value)


__all__ = ["DataLayoutError", "TrainConfig", "Trainer"]
