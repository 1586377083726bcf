"""Multi-process data parallel helpers: one process per device, launched by torchrun.

    torchrun --nproc_per_node 2 my_train.py      # my_train.py calls init_from_env() first

:func:`init_from_env` reads torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR,
MASTER_PORT) and initialises the default process group: NCCL when CUDA is available (each process
then owns ``cuda:LOCAL_RANK``), gloo on CPU. Without those variables it does nothing, so the same
script runs as a single process. The Trainer notices an initialised process group by itself.
"""
from __future__ import annotations

import contextlib
import datetime
import os
from typing import Iterator, Optional

import torch
import torch.distributed as dist

_TORCHRUN_VARS = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def is_initialized() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    """This process's rank (0 when not distributed)."""
    return dist.get_rank() if is_initialized() else 0


def world_size() -> int:
    """Number of processes (1 when not distributed)."""
    return dist.get_world_size() if is_initialized() else 1


def is_main_process() -> bool:
    """True on the one process that writes logs and checkpoints (rank 0)."""
    return rank() == 0


def local_device() -> torch.device:
    """``cuda:LOCAL_RANK`` when the process group uses NCCL, else the CPU."""
    if is_initialized() and dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def barrier() -> None:
    if is_initialized():
        dist.barrier()


@contextlib.contextmanager
def main_process_first() -> Iterator[None]:
    """Run the block on process 0 first, then on the others (e.g. one process fills a data cache,
    the rest read it). Without a process group it just runs the block."""
    if not is_main_process():
        barrier()
    try:
        yield
    finally:
        if is_main_process():
            barrier()


def init_from_env(backend: Optional[str] = None,
                  timeout: Optional[datetime.timedelta] = None) -> bool:
    """Initialise the default process group from torchrun's environment variables.

    ``backend`` defaults to "nccl" when CUDA is available and "gloo" otherwise. Returns True when
    running distributed (also when a process group was already initialised), False when the
    torchrun variables are absent (a plain single-process run).
    """
    if is_initialized():
        return True
    missing = [v for v in _TORCHRUN_VARS if v not in os.environ]
    if len(missing) == len(_TORCHRUN_VARS):
        return False
    if missing:
        raise RuntimeError(f"init_from_env: torchrun environment incomplete, missing {', '.join(missing)}")
    if not dist.is_available():
        raise RuntimeError("init_from_env: this PyTorch build has no torch.distributed support")
    if backend is None:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    kwargs = {} if timeout is None else {"timeout": timeout}
    dist.init_process_group(backend=backend, init_method="env://", **kwargs)
    return True


def shutdown() -> None:
    """Destroy the default process group (call once at the end of a torchrun script)."""
    if is_initialized():
        dist.destroy_process_group()


__all__ = ["barrier", "init_from_env", "is_initialized", "is_main_process", "local_device",
           "main_process_first", "rank", "shutdown", "world_size"]
