"""What one Trainer step does with this process's shards of a global batch.

Two step rules share one interface (the Trainer calls nothing else):

* :class:`LossStep` (the default): one ``loss_fn``, one Adam over every parameter, one backward per
  micro-batch; under torch.distributed the whole loss runs inside DDP's forward, so DDP averages
  the gradients across processes.
* :class:`fastgen.train.phases.PhaseStep`: several networks, each with its own optimizer, loss and
  schedule (GANs, VAE-GAN, AVB, IRGAN).

Interface: ``start(world_size, device)`` before a fit's first step; ``run(step, batches,
generators, lr_factor) -> {column: float}`` (global-batch means, for log.csv); ``learning_rates()
-> {column: lr}``; ``saved_optimizers()`` (what the checkpoint holds); ``restore_hyperparameters()``
after loading one (hyperparameters come from this run, not the checkpoint).
"""
from __future__ import annotations

import contextlib
import math
from typing import Callable, Union

import torch
import torch.distributed as dist
from torch import Tensor, nn

from .data import Batch

LossFn = Callable[[nn.Module, Batch, torch.Generator], Union[Tensor, tuple]]


def split_output(out) -> tuple:
    """A loss function's result as (losses, metrics dict): it may return the losses alone."""
    if isinstance(out, tuple) and len(out) == 2 and (out[1] is None or isinstance(out[1], dict)):
        return out[0], dict(out[1] or {})
    return out, {}


def check_scalar(loss, what: str) -> Tensor:
    if not isinstance(loss, Tensor) or loss.numel() != 1:
        raise TypeError(f"{what} must be a scalar tensor, got "
                        f"{tuple(loss.shape) if isinstance(loss, Tensor) else type(loss).__name__}")
    return loss


def stacked(values: list) -> Tensor:
    """Loss and metric values as one float64 vector (one all-reduce for all of them)."""
    device = next((v.device for v in values if isinstance(v, Tensor)), None)
    return torch.stack([torch.as_tensor(v, dtype=torch.float64, device=device).detach().reshape(())
                        for v in values])


def mean_over_processes(values: Tensor, world_size: int) -> Tensor:
    """The global-batch mean of per-process means (every process holds an equal slice)."""
    if world_size > 1:
        dist.all_reduce(values)
        values /= world_size
    return values


def check_finite(values: dict, step: int) -> None:
    """Stop before a step that would write NaN or Inf into the weights (``step``: steps done)."""
    for name, value in values.items():
        if not math.isfinite(value):
            raise FloatingPointError(f"{name} is {value} at step {step + 1} "
                                     f"(the weights are those after step {step})")


def hyperparameters(optimizer: torch.optim.Optimizer) -> list[dict]:
    """Every param group's settings (all but its parameters), to re-apply after loading a checkpoint."""
    return [{k: v for k, v in group.items() if k != "params"} for group in optimizer.param_groups]


class _LossModule(nn.Module):
    """model + loss_fn as one module, so DDP's forward covers the whole loss computation."""

    def __init__(self, model: nn.Module, loss_fn: LossFn):
        super().__init__()
        self.model = model
        self.loss_fn = loss_fn

    def forward(self, batch: Batch, generator: torch.Generator) -> tuple[Tensor, dict]:
        loss, metrics = split_output(self.loss_fn(self.model, batch, generator))
        return check_scalar(loss, "loss_fn's loss"), metrics


class LossStep:
    """One loss, one Adam over all of the model's parameters (the Trainer's default step)."""

    def __init__(self, model: nn.Module, loss_fn: LossFn, config):
        self.model, self.config = model, config
        self.module = _LossModule(model, loss_fn)
        self.net: nn.Module = self.module
        self.world_size = 1
        self.optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, betas=config.betas,
                                          eps=config.eps, weight_decay=config.weight_decay)
        self._hyperparameters = hyperparameters(self.optimizer)

    def start(self, world_size: int, device: torch.device) -> None:
        self.world_size = world_size
        self.net = self.module if world_size == 1 else nn.parallel.DistributedDataParallel(
            self.module, device_ids=[device] if device.type == "cuda" else None,
            find_unused_parameters=self.config.find_unused_parameters)

    def finish(self) -> None:
        """Drop the DDP wrapper at the end of ``fit``, while the process group is still registered.
        Otherwise its Reducer can hold the last reference to a gloo group and destroy it with the GIL
        held after ``destroy_process_group``, joining a gloo worker thread that waits for the GIL to
        free a finished collective's tensors: a deadlock at exit (seen in about one run in five)."""
        self.net = self.module

    def run(self, step: int, batches: list[Batch], generators: list[torch.Generator],
            lr_factor: float) -> dict[str, float]:
        for group in self.optimizer.param_groups:
            group["lr"] = self.config.lr * lr_factor
        self.optimizer.zero_grad(set_to_none=True)
        values = None
        for m, (batch, generator) in enumerate(zip(batches, generators)):
            last = m == len(batches) - 1
            # DDP all-reduces the accumulated gradients once, in the last micro-batch's backward
            sync = contextlib.nullcontext() if last or self.world_size == 1 else self.net.no_sync()
            with sync:
                loss, metrics = self.net(batch, generator)
                (loss / len(batches)).backward()  # mean over micro-batches; exact for 2, 4, ... like DDP's
            shard = stacked([loss, *metrics.values()])
            values = shard if values is None else values + shard
        values = mean_over_processes(values / len(batches), self.world_size)
        out = dict(zip(["loss", *metrics], values.tolist()))
        check_finite({"loss": out["loss"]}, step)
        if self.config.grad_clip is not None:
            out["grad_norm"] = float(nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip))
        self.optimizer.step()
        return out

    def learning_rates(self) -> dict[str, float]:
        return {"lr": self.optimizer.param_groups[0]["lr"]}

    def saved_optimizers(self) -> torch.optim.Optimizer:
        return self.optimizer

    def restore_hyperparameters(self) -> None:
        for group, settings in zip(self.optimizer.param_groups, self._hyperparameters):
            group.update(settings)


__all__ = ["LossFn", "LossStep", "check_finite", "check_scalar", "hyperparameters", "mean_over_processes",
           "split_output", "stacked"]
