"""What the Trainer trains on, cut into the shards of each global batch.

Two kinds of data, both visited in an order fixed by ``(seed, epoch)`` so that step ``k`` is always
the same global batch and a resumed run just starts at step ``k``:

* **Tensors** (a tensor, or a tuple of tensors of equal length): epoch ``e`` visits
  ``epoch_permutation(seed, e, n)`` in global batches of ``batch_size``; an incomplete final batch
  is dropped, so an epoch is ``n // batch_size`` steps.
* **A** :class:`BatchStream`: ``batches(epoch, generator)`` yields the global batches of ``epoch``
  itself (random crops, a sampler over files, batches built on the fly). See its contract.

Shards: each global batch is cut into ``world_size * micro_batches`` equal slices along its first
dimension, shard ``s`` going to process ``s // micro_batches``. With ``$FASTGEN_SHARD_TRACE`` set to
a folder, every process appends the rows of each of its shards (data rows for tensors, positions in
the global batch for a stream), one JSON line per shard and step, to ``rank<r>.jsonl`` there.
"""
from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Optional, Sequence, Union

import torch
from torch import Tensor

from .rng import data_generator, epoch_permutation

Batch = Union[Tensor, tuple]


class DataLayoutError(ValueError):
    """The data, batch size or process layout does not fit (Trainer.fit's checks before its first
    step; a setting for the user to change)."""


@dataclass(frozen=True)
class BatchStream:
    """Training data as a function of the epoch: ``batches(epoch, generator) -> iterable``.

    The contract (what makes resuming exact and data parallelism correct):

    * ``batches(epoch, generator)`` yields the global batches of ``epoch`` in order, at least
      ``steps_per_epoch`` of them (the Trainer takes that many and drops the rest).
    * Each batch is a tensor, or a tuple (a NamedTuple too) of tensors and ``None``; every tensor's
      first dimension is the global ``batch_size``. The Trainer cuts each tensor into the shards of
      the processes and micro-batches, and moves them to the model's device.
    * What it yields depends only on ``epoch``, on numbers drawn from ``generator`` (a CPU
      torch.Generator that the Trainer seeds from ``(seed, epoch)``) and on fixed data: never on a
      global RNG, the wall clock or state left over from an earlier call. The Trainer resumes at
      step ``k`` of an epoch by calling ``batches`` afresh and skipping ``k`` batches, and every
      process calls it with the same arguments and keeps its own shards of each batch.
    """

    batches: Callable[[int, torch.Generator], Iterable[Batch]]
    steps_per_epoch: int

    def __post_init__(self) -> None:
        if not callable(self.batches):
            raise TypeError(f"BatchStream.batches must be callable (epoch, generator) -> iterable of batches, "
                            f"got {type(self.batches).__name__}")
        if not isinstance(self.steps_per_epoch, int) or self.steps_per_epoch < 1:
            raise ValueError(f"BatchStream.steps_per_epoch must be an int >= 1, got {self.steps_per_epoch!r}")


def map_tensors(batch: Batch, fn: Callable[[Tensor], Tensor]) -> Batch:
    """``batch`` with ``fn`` applied to each tensor (a tuple keeps its type, NamedTuple too; None stays)."""
    if isinstance(batch, Tensor):
        return fn(batch)
    values = [None if v is None else fn(v) for v in batch]
    return type(batch)(*values) if hasattr(batch, "_fields") else type(batch)(values)


class TensorSource:
    """Global batches of rows of a tensor dataset, in the epoch's permutation."""

    def __init__(self, data: Union[Tensor, Sequence[Tensor]], batch_size: int, seed: int):
        tensors = (data,) if isinstance(data, Tensor) else tuple(data)
        if not tensors or not all(isinstance(t, Tensor) for t in tensors):
            raise TypeError("Trainer.fit: data must be a tensor, a tuple of tensors or a BatchStream")
        n = len(tensors[0])
        if any(len(t) != n for t in tensors):
            raise ValueError(f"Trainer.fit: data tensors differ in length: {[len(t) for t in tensors]}")
        if n < batch_size:
            raise DataLayoutError(f"Trainer.fit: {n} examples, fewer than one batch of {batch_size}")
        self.tensors, self.batch_size, self.seed = tensors, batch_size, seed
        self.examples: Optional[int] = n
        self.steps_per_epoch = n // batch_size
        self.state = {"examples": n, "batch_size": batch_size, "seed": seed, "steps_per_epoch": self.steps_per_epoch}
        self._permutation, self._epoch = None, -1

    def shards(self, epoch: int, index: int, slices: Sequence[slice]) -> list[tuple[Batch, list[int]]]:
        """(batch, data rows) of each slice of global batch ``index`` of ``epoch``."""
        if epoch != self._epoch:
            self._permutation, self._epoch = epoch_permutation(self.seed, epoch, len(self.tensors[0])), epoch
        rows = self._permutation[index * self.batch_size:(index + 1) * self.batch_size]
        out = []
        for piece in slices:
            r = rows[piece]
            batch = tuple(t[r.to(t.device)] for t in self.tensors)
            out.append((batch[0] if len(batch) == 1 else batch, r.tolist()))
        return out


class StreamSource:
    """Global batches drawn from a :class:`BatchStream`, skipping ahead on resume."""

    def __init__(self, stream: BatchStream, batch_size: int, seed: int):
        self.stream, self.batch_size, self.seed = stream, batch_size, seed
        self.examples: Optional[int] = None
        self.steps_per_epoch = stream.steps_per_epoch
        self.state = {"stream": True, "batch_size": batch_size, "seed": seed, "steps_per_epoch": self.steps_per_epoch}
        self._iterator: Optional[Iterator[Batch]] = None
        self._next = (-1, -1)  # the (epoch, index) self._iterator yields next

    def shards(self, epoch: int, index: int, slices: Sequence[slice]) -> list[tuple[Batch, list[int]]]:
        """(batch, positions in the global batch) of each slice of global batch ``index`` of ``epoch``."""
        if self._next != (epoch, index):
            self._iterator = iter(self.stream.batches(epoch, data_generator(self.seed, epoch)))
            for skipped in range(index):
                self._take(epoch, skipped)
        batch = self._take(epoch, index)
        self._next = (epoch, index + 1)
        return [(map_tensors(batch, lambda t, p=piece: t[p]), list(range(piece.start, piece.stop)))
                for piece in slices]

    def _take(self, epoch: int, index: int) -> Batch:
        try:
            batch = next(self._iterator)
        except StopIteration:
            raise DataLayoutError(f"BatchStream: epoch {epoch} ended after {index} batches, but "
                                  f"steps_per_epoch is {self.steps_per_epoch}") from None
        self._check(batch, epoch, index)
        return batch

    def _check(self, batch: Any, epoch: int, index: int) -> None:
        where = f"BatchStream: batch {index} of epoch {epoch}"
        parts = [batch] if isinstance(batch, Tensor) else list(batch) if isinstance(batch, tuple) else None
        if parts is None:
            raise TypeError(f"{where} is a {type(batch).__name__}; a batch is a tensor or a tuple of tensors")
        for i, part in enumerate(parts):
            if part is None:
                continue
            if not isinstance(part, Tensor):
                raise TypeError(f"{where}: element {i} is a {type(part).__name__}, not a tensor or None")
            if part.dim() == 0 or part.shape[0] != self.batch_size:
                raise DataLayoutError(f"{where}: element {i} has shape {tuple(part.shape)}; its first "
                                      f"dimension must be the global batch size {self.batch_size}")


def make_source(data: Any, batch_size: int, seed: int, world_size: int, micro_batches: int,
                resumed: Optional[dict] = None) -> Union[TensorSource, StreamSource]:
    """The source of ``data`` for global batches of ``batch_size``, checked against the process
    layout and, for a resumed run (``resumed``: the checkpoint's data state), against the data the
    checkpoint was trained on, so that its steps map to the same batches."""
    if batch_size % (world_size * micro_batches):
        raise DataLayoutError(f"batch_size {batch_size} must be divisible by the number of shards: "
                              f"{world_size} process(es) x {micro_batches} micro-batch(es)")
    source = (StreamSource(data, batch_size, seed) if isinstance(data, BatchStream)
              else TensorSource(data, batch_size, seed))
    if resumed is not None:
        kinds = ["a BatchStream" if state.get("stream") else "tensors" for state in (resumed, source.state)]
        if kinds[0] != kinds[1]:
            raise DataLayoutError(f"cannot resume: the checkpoint was trained on {kinds[0]}, this run on {kinds[1]}")
        for key in ("examples", "batch_size", "steps_per_epoch"):
            if resumed.get(key) != source.state.get(key):
                raise DataLayoutError(
                    f"cannot resume: the checkpoint was trained with {key} = {resumed.get(key)}, "
                    f"this run has {source.state.get(key)}, so its steps do not map to the same "
                    "places in the data")
        if resumed.get("seed") != seed:
            warnings.warn(f"resuming with seed {seed}, the checkpoint used {resumed.get('seed')}: "
                          "the data order from here on differs", RuntimeWarning, stacklevel=3)
    return source


def trace_shards(rank: int, step: int, shards: range, rows: Sequence[list[int]]) -> None:
    """Append the rows of each shard to ``$FASTGEN_SHARD_TRACE/rank<rank>.jsonl`` when that
    variable is set (a check that processes really take different slices; off by default)."""
    folder = os.environ.get("FASTGEN_SHARD_TRACE")
    if not folder:
        return
    with open(Path(folder) / f"rank{rank}.jsonl", "a", encoding="utf-8") as f:
        for shard, r in zip(shards, rows):
            f.write(json.dumps({"step": step, "shard": shard, "rows": r}) + "\n")


__all__ = ["Batch", "BatchStream", "DataLayoutError", "StreamSource", "TensorSource", "make_source",
           "map_tensors", "trace_shards"]
