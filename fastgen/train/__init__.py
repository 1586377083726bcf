"""The shared training stack: one model-agnostic Trainer and pickle-free checkpoints.

* :class:`Trainer` / :class:`TrainConfig` -- Adam, gradient clipping, tqdm, periodic evaluation,
  log.csv + summary.json, seeding, periodic checkpoints, bit-exact resume, and multi-process data
  parallelism (DDP) when torch.distributed is initialised. A model supplies only
  ``loss_fn(model, batch, generator) -> (loss, metrics)``; see :mod:`fastgen.train.trainer`.
* :func:`save_checkpoint` / :func:`load_checkpoint` -- a folder of safetensors + JSON, written
  atomically; every defect raises :class:`CheckpointError` (a ValueError) naming the file.
* :mod:`fastgen.train.distributed` -- :func:`init_from_env` for scripts launched by torchrun.
"""
from . import distributed
from .checkpoint import Checkpoint, CheckpointError, FORMAT_VERSION, load_checkpoint, save_checkpoint
from .distributed import init_from_env
from .trainer import (
    TrainConfig,
    Trainer,
    derive_seed,
    epoch_permutation,
    get_rng_state,
    preserved_rng,
    seed_everything,
    set_rng_state,
)

__all__ = [
    "Checkpoint",
    "CheckpointError",
    "FORMAT_VERSION",
    "TrainConfig",
    "Trainer",
    "derive_seed",
    "distributed",
    "epoch_permutation",
    "get_rng_state",
    "init_from_env",
    "load_checkpoint",
    "preserved_rng",
    "save_checkpoint",
    "seed_everything",
    "set_rng_state",
]
