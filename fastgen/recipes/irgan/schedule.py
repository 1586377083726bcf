"""IRGAN's epoch-wise schedule on the fastgen Trainer.

A Trainer step feeds one global batch to the phases, but IRGAN alternates *blocks of whole epochs*
over two different datasets: per round, ``d_epochs`` passes of the discriminator over the train
positives (negatives redrawn from the generator every ``d_refresh`` passes), then ``g_epochs``
passes of the generator over the users. So the data is a :class:`~fastgen.train.BatchStream` whose
Trainer epoch is one IRGAN round; every batch is ``(phase, key, rows, n)`` tensors of the global
batch size: the phase it is for (0 = D, 1 = G; :func:`phase_of_batch` names it for the Trainer's
``phase_of`` hook, which runs that phase only), a key naming its negatives' draw (round, refresh
group), the rows (train positives for D, users for G, padded with -1 to the batch size) and ``n``,
the number of real rows in the whole global batch (so that a shard of a process can weigh its part
of a mean over the global batch). G's rows fill the batch from the front, or with ``spread`` lie
evenly over it, so that every process's shard holds its share of the users (web search).
Checkpoints, every optimizer's state and exact resume are the Trainer's own.
"""
from __future__ import annotations

import contextlib
import math
from typing import Iterator

import torch
from torch import Tensor, nn

from fastgen.recipes.runs import RecipeError
from fastgen.train import BatchStream
from fastgen.train.trainer import DataLayoutError

D_PHASE, G_PHASE = 0, 1
PHASES = ("D", "G")


def rounds_stream(n_pairs: int, users: torch.Tensor, batch_size: int, g_users: int, d_epochs: int,
                  d_refresh: int, g_epochs: int, spread: bool = False) -> BatchStream:
    """Batches of one round: D's passes over ``n_pairs`` train positives, then G's over ``users``
    (``spread``: G's rows evenly over the batch instead of at its front)."""
    if n_pairs < batch_size:
        raise ValueError(f"batch_size {batch_size} exceeds the {n_pairs} train positives")
    if not 1 <= g_users <= batch_size:
        raise ValueError(f"g_users must be in 1..batch_size ({batch_size}), got {g_users}")
    d_steps, g_steps = n_pairs // batch_size, math.ceil(len(users) / g_users)

    def batches(epoch: int, generator: torch.Generator):
        for d in range(d_epochs):
            order = torch.randperm(n_pairs, generator=generator)
            key = torch.full((batch_size,), epoch * d_epochs + d // d_refresh)
            for s in range(d_steps):
                yield (torch.full((batch_size,), D_PHASE), key, order[s * batch_size:(s + 1) * batch_size],
                       torch.full((batch_size,), batch_size))
        for _ in range(g_epochs):
            order = users[torch.randperm(len(users), generator=generator)]
            for s in range(g_steps):
                rows = torch.full((batch_size,), -1)
                chunk = order[s * g_users:(s + 1) * g_users]
                rows[spread_slots(len(chunk), batch_size) if spread else slice(len(chunk))] = chunk
                yield (torch.full((batch_size,), G_PHASE), torch.zeros(batch_size, dtype=torch.long), rows,
                       torch.full((batch_size,), len(chunk)))

    return BatchStream(batches, d_epochs * d_steps + g_epochs * g_steps)


def spread_slots(n: int, size: int) -> torch.Tensor:
    """``n`` slots of a batch of ``size`` rows, evenly apart: each equal slice holds n / slices (rounded)."""
    return torch.arange(n) * size // n if n else torch.zeros(0, dtype=torch.long)


def share_of_mean(loss: Tensor, real: int, rows: int, batch: int, n: int) -> Tensor:
    """A shard's part of a mean over the ``n`` real rows of a global batch of ``batch`` rows: ``loss``,
    the mean over the shard's ``real`` rows of its ``rows``, weighed so that the Trainer's average over
    the equal shards is the global mean (exactly ``loss`` for one whole batch)."""
    return loss * (real * (batch / rows) / n)


def no_gradient(module: nn.Module) -> Tensor:
    """The loss of a shard without real rows: zero, with a graph to back-propagate (every process must)."""
    return sum(p.sum() for p in module.parameters()) * 0


@contextlib.contextmanager
def layout_refusals() -> Iterator[None]:
    """A Trainer's DataLayoutError (a batch that does not split over the processes, a resumed run's
    other layout) as the RecipeError that the CLI prints in one line."""
    try:
        yield
    except DataLayoutError as e:
        raise RecipeError(str(e)) from None


def phase_of_batch(batch) -> str:
    """The Trainer's ``phase_of``: the phase a batch of :func:`rounds_stream` is for."""
    return PHASES[int(batch[0][0])]


__all__ = ["D_PHASE", "G_PHASE", "PHASES", "layout_refusals", "no_gradient", "phase_of_batch", "rounds_stream",
           "share_of_mean", "spread_slots"]
