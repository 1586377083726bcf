"""The shared training stack: one model-agnostic Trainer and pickle-free checkpoints.

* :class:`Trainer` / :class:`TrainConfig` -- Adam, gradient clipping, tqdm, periodic evaluation,
  log.csv + summary.json, seeding, periodic checkpoints, bit-exact resume, and multi-process data
  parallelism (DDP) when torch.distributed is initialised. A model supplies only
  ``loss_fn(model, batch, generator) -> (loss, metrics)``; see :mod:`fastgen.train.trainer`.
* :class:`Phase` -- several networks in one step, each with its own optimizer, loss and schedule
  (``Trainer(model, phases=[...])``; GANs, VAE-GAN, AVB, IRGAN); see :mod:`fastgen.train.phases`.
* :class:`BatchStream` -- data built per epoch by a function, not held in a tensor; see
  :mod:`fastgen.train.data`.
* :func:`save_checkpoint` / :func:`load_checkpoint` -- a folder of safetensors + JSON, written
  atomically; every defect raises :class:`CheckpointError` (a ValueError) naming the file.
* :mod:`fastgen.train.distributed` -- :func:`init_from_env` for scripts launched by torchrun.
"""
from . import distributed
from .checkpoint import Checkpoint, CheckpointError, FORMAT_VERSION, load_checkpoint, save_checkpoint
from .data import BatchStream, DataLayoutError
from .distributed import init_from_env
from .phases import Phase
from .rng import (
    derive_seed,
    epoch_permutation,
    get_rng_state,
    preserved_rng,
    seed_everything,
    set_rng_state,
)
from .trainer import TrainConfig, Trainer

__all__ = [
    "BatchStream",
    "Checkpoint",
    "CheckpointError",
    "DataLayoutError",
    "FORMAT_VERSION",
    "Phase",
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
