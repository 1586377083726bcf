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
of a mean over the global batch). Checkpoints, every optimizer's state and exact resume are the
Trainer's own.
"""
from __future__ import annotations

import math

import torch

from fastgen.train import BatchStream

D_PHASE, G_PHASE = 0, 1
PHASES = ("D", "G")


def rounds_stream(n_pairs: int, users: torch.Tensor, batch_size: int, g_users: int, d_epochs: int,
                  d_refresh: int, g_epochs: int) -> BatchStream:
    """Batches of one round: D's passes over ``n_pairs`` train positives, then G's over ``users``."""
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
                rows[:len(chunk)] = chunk
                yield (torch.full((batch_size,), G_PHASE), torch.zeros(batch_size, dtype=torch.long), rows,
                       torch.full((batch_size,), len(chunk)))

    return BatchStream(batches, d_epochs * d_steps + g_epochs * g_steps)


def phase_of_batch(batch) -> str:
    """The Trainer's ``phase_of``: the phase a batch of :func:`rounds_stream` is for."""
    return PHASES[int(batch[0][0])]


__all__ = ["D_PHASE", "G_PHASE", "PHASES", "phase_of_batch", "rounds_stream"]
