"""A Trainer step made of phases: several networks, each with its own optimizer, loss and schedule.

::

    def d_loss(model, batch, generator): ...   # the discriminator's loss (and metrics)
    def g_loss(model, batch, generator): ...   # the generator's
    trainer = Trainer(gan, phases=[Phase("D", gan.discriminator, d_loss, lr=2e-4, betas=(0.5, 0.999)),
                                   Phase("G", gan.generator, g_loss, lr=2e-4, betas=(0.5, 0.999))],
                      config=TrainConfig(batch_size=64, epochs=10))

Each Trainer step takes one global batch and runs the phases in the order given, each seeing the
parameters the phases before it left:

* ``params`` (a module or parameters of the Trainer's model, disjoint between phases) are the only
  parameters the phase's backward writes gradients to and its optimizer updates. A phase's loss
  may run through other phases' networks (the generator's loss through the discriminator): their
  parameters are left exactly as they were.
* ``every=k`` updates the phase on steps k, 2k, ... only (steps count from 1), so
  ``[Phase("A", ..., every=1), Phase("B", ..., every=3)]`` makes 3 updates of A per update of B,
  B's after A's third. ``repeat=k`` makes k updates in a row on the step's batch, each with its
  own forward (and fresh noise from the generator). The schedule is a pure function of the step,
  so resuming anywhere in a cycle continues it exactly.
* **Simultaneous** phases: consecutive phases given the *same* ``loss_fn`` object share one
  forward. That ``loss_fn`` returns ``{phase name: loss}`` (and metrics); each phase's loss is
  back-propagated into its own parameters only, and all of them step after the forward (VAE-GAN's
  three losses from one pass). Such phases must share ``every`` and ``repeat``.
* **Phases chosen by the batch**: ``Trainer(..., phases=[...], phase_of=fn)`` runs at each step only
  the phases ``fn(batch)`` names (a name or several), for data that alternates blocks of batches
  meant for different networks (IRGAN: epochs of discriminator batches, then epochs of generator
  batches, each kind its own data). The other phases neither run nor step, so Adam's moments do
  not move them on a zero gradient. ``every`` still applies on top; a simultaneous group runs only
  when all its phases are named. ``fn`` sees each shard of the step's batch and must name the same
  phases for every one (put the choice in a column the whole global batch shares).
* Optimizer: Adam with the TrainConfig's settings, ``lr`` / ``betas`` overridden per phase, or any
  ``optimizer=lambda params: torch.optim.SGD(params, lr=0.1)``. The Trainer's ``lr_lambda`` scales
  every phase's learning rate. ``grad_clip`` clips the phase's gradient norm (default: the
  TrainConfig's; ``math.inf`` never clips).

Micro-batches and processes work as for one loss (see fastgen.train.trainer): every phase
accumulates its gradient over this process's shards and, under torch.distributed, the gradients
are averaged over the processes by explicit all-reduces after each update's backward passes (no DDP
wrapper: one forward may feed several backward passes into different parameters), and every fit
starts by broadcasting process 0's parameters and buffers, as DDP does.

log.csv columns: ``loss/<phase>``, ``<phase>/<metric>`` (``<a>+<b>/<metric>`` for a simultaneous
group), ``grad_norm/<phase>`` when clipping and ``lr/<phase>``; a phase's columns are averaged over
the steps it ran in each row's window.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Callable, Iterable, Optional, Union

import torch
import torch.distributed as dist
from torch import Tensor, nn

from .data import Batch
from .steps import LossFn, check_finite, check_scalar, hyperparameters, mean_over_processes, split_output, stacked

OptimizerFactory = Callable[[list], torch.optim.Optimizer]
_NAME = re.compile(r"[A-Za-z0-9_-]+")


@dataclass
class Phase:
    """One network's update within a Trainer step (see the module docstring)."""

    name: str
    params: Union[nn.Module, Iterable[nn.Parameter]]
    loss_fn: LossFn
    optimizer: Optional[OptimizerFactory] = None
    lr: Optional[float] = None
    betas: Optional[tuple[float, float]] = None
    every: int = 1
    repeat: int = 1
    grad_clip: Optional[float] = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.fullmatch(self.name):
            raise ValueError(f"Phase name {self.name!r} must be letters, digits, '_' or '-' "
                             "(it names the phase's optimizer files in checkpoints)")
        for key in ("every", "repeat"):
            value = getattr(self, key)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"Phase {self.name!r}: {key} must be an int >= 1, got {value!r}")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ValueError(f"Phase {self.name!r}: grad_clip must be > 0 or None, got {self.grad_clip}")
        if self.optimizer is not None and (self.lr is not None or self.betas is not None):
            raise ValueError(f"Phase {self.name!r}: give either an optimizer factory or lr / betas, not both")
        if not callable(self.loss_fn):
            raise TypeError(f"Phase {self.name!r}: loss_fn must be callable (model, batch, generator)")
        # a generator of parameters would be spent by the first Trainer built from this phase
        self.params = self.params if isinstance(self.params, nn.Module) else tuple(self.params)

    def parameters(self) -> list[nn.Parameter]:
        """The parameters this phase trains: a module's that require grad, or those listed."""
        if isinstance(self.params, nn.Module):
            found = [p for p in self.params.parameters() if p.requires_grad]
        else:
            found = list(self.params)
            frozen = [tuple(p.shape) for p in found if not (isinstance(p, Tensor) and p.requires_grad)]
            if frozen:
                raise ValueError(f"Phase {self.name!r}: parameters of shapes {frozen} do not require grad")
        unique = list({id(p): p for p in found}.values())
        if not unique:
            raise ValueError(f"Phase {self.name!r} has no parameters to train")
        return unique


@dataclass
class _Stage:
    """Phases updated from one forward of their shared loss_fn."""

    phases: list[Phase]

    @property
    def label(self) -> str:
        return "+".join(p.name for p in self.phases)

    def losses(self, model: nn.Module, batch: Batch, generator: torch.Generator) -> tuple[list[Tensor], dict]:
        names = [p.name for p in self.phases]
        out, metrics = split_output(self.phases[0].loss_fn(model, batch, generator))
        if len(names) == 1:
            return [check_scalar(out, f"phase {names[0]!r}: loss_fn's loss")], metrics
        if not isinstance(out, dict):
            raise TypeError(f"phases {', '.join(names)} share one loss_fn (a simultaneous group), so it must "
                            f"return {{phase name: loss}} (and metrics), got {type(out).__name__}")
        if set(out) != set(names):
            raise ValueError(f"the loss_fn of phases {', '.join(names)} returned losses for {sorted(out)}; "
                             "it must return exactly one per phase of its group")
        return [check_scalar(out[n], f"phase {n!r}: loss") for n in names], metrics


class PhaseStep:
    """Runs the phases of a Trainer step (the step rule behind ``Trainer(model, phases=[...])``)."""

    def __init__(self, model: nn.Module, phases: Iterable[Phase], config,
                 phase_of: Optional[Callable[[Batch], Union[str, Iterable[str]]]] = None):
        self.model, self.config, self.world_size = model, config, 1
        if phase_of is not None and not callable(phase_of):
            raise TypeError(f"Trainer: phase_of must be callable (batch) -> phase name(s), got {type(phase_of).__name__}")
        self.phase_of = phase_of
        self.phases = list(phases)
        if not self.phases or not all(isinstance(p, Phase) for p in self.phases):
            raise TypeError("Trainer: phases must be a non-empty list of fastgen.train.Phase")
        names = [p.name for p in self.phases]
        if len(set(names)) != len(names):
            raise ValueError(f"Trainer: phase names must differ, got {names}")
        self.params = {p.name: p.parameters() for p in self.phases}
        self._check_parameters()
        self.optimizers = {p.name: self._optimizer(p) for p in self.phases}
        self._base_lrs = {n: [g["lr"] for g in o.param_groups] for n, o in self.optimizers.items()}
        self._hyperparameters = {n: hyperparameters(o) for n, o in self.optimizers.items()}
        self.stages = self._stages()

    # -- construction checks -----------------------------------------------------------------------

    def _check_parameters(self) -> None:
        in_model = {id(p) for p in self.model.parameters()}
        owner: dict[int, str] = {}
        names = {id(p): n for n, p in self.model.named_parameters()}
        for phase in self.phases:
            for p in self.params[phase.name]:
                if id(p) not in in_model:  # the checkpoint saves the model: such a parameter would not resume
                    raise ValueError(f"Phase {phase.name!r}: a parameter of shape {tuple(p.shape)} is not a "
                                     "parameter of the Trainer's model")
                if id(p) in owner:
                    raise ValueError(f"parameter {names[id(p)]!r} is in phases {owner[id(p)]!r} and "
                                     f"{phase.name!r}; each parameter belongs to one phase")
                owner[id(p)] = phase.name

    def _optimizer(self, phase: Phase) -> torch.optim.Optimizer:
        params, cfg = self.params[phase.name], self.config
        if phase.optimizer is None:
            return torch.optim.Adam(params, lr=cfg.lr if phase.lr is None else phase.lr,
                                    betas=cfg.betas if phase.betas is None else tuple(phase.betas),
                                    eps=cfg.eps, weight_decay=cfg.weight_decay)
        optimizer = phase.optimizer(params)
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(f"Phase {phase.name!r}: the optimizer factory returned a "
                            f"{type(optimizer).__name__}, not a torch.optim.Optimizer")
        built = {id(p) for g in optimizer.param_groups for p in g["params"]}
        if built != {id(p) for p in params}:
            raise ValueError(f"Phase {phase.name!r}: the optimizer factory built an optimizer over other "
                             "parameters than the phase's")
        return optimizer

    def _stages(self) -> list[_Stage]:
        stages: list[_Stage] = []
        for phase in self.phases:
            if stages and stages[-1].phases[0].loss_fn is phase.loss_fn:
                stages[-1].phases.append(phase)
            elif any(s.phases[0].loss_fn is phase.loss_fn for s in stages):
                raise ValueError(f"Phase {phase.name!r} shares its loss_fn with an earlier phase but does not "
                                 "follow it: phases of one simultaneous group must be listed together")
            else:
                stages.append(_Stage([phase]))
        for stage in stages:
            first = stage.phases[0]
            odd = [p.name for p in stage.phases if (p.every, p.repeat) != (first.every, first.repeat)]
            if odd:
                raise ValueError(f"phases {stage.label} share one loss_fn (one forward) but {', '.join(odd)} "
                                 f"differ from {first.name!r} in every / repeat")
        return stages

    # -- the step interface (see fastgen.train.steps) ------------------------------------------------

    def start(self, world_size: int, device: torch.device) -> None:
        self.world_size = world_size
        if world_size > 1:  # as DDP does when it wraps a model: every process starts from process 0's
            _broadcast_from_first(list(self.model.parameters()) + list(self.model.buffers()))

    def finish(self) -> None:
        """Nothing to release: the phases all-reduce by hand, without a DDP wrapper."""

    def run(self, step: int, batches: list[Batch], generators: list[torch.Generator],
            lr_factor: float) -> dict[str, float]:
        for name, optimizer in self.optimizers.items():
            for group, base in zip(optimizer.param_groups, self._base_lrs[name]):
                group["lr"] = base * lr_factor
        if self.world_size > 1:  # buffers (running statistics) follow process 0's, as under DDP
            _broadcast_from_first(list(self.model.buffers()))
        out: dict[str, float] = {}
        named = self._named_phases(batches)
        for stage in self.stages:
            first = stage.phases[0]
            if (step + 1) % first.every or not self._chosen(stage, named):
                continue
            sums: dict[str, float] = {}
            for _ in range(first.repeat):
                for key, value in self._update(stage, step, batches, generators).items():
                    sums[key] = sums.get(key, 0.0) + value
            out.update({key: value / first.repeat for key, value in sums.items()})
        return out

    def _named_phases(self, batches: list[Batch]) -> Optional[frozenset]:
        """The phases this step's batch names (None: no ``phase_of``, every phase runs)."""
        if self.phase_of is None:
            return None
        picks = []
        for batch in batches:
            names = self.phase_of(batch)
            picks.append(frozenset([names] if isinstance(names, str) else names))
        if any(p != picks[0] for p in picks):
            raise ValueError(f"phase_of named different phases for the shards of one batch: "
                             f"{[sorted(p) for p in picks]}; it must depend on what the whole global batch shares")
        unknown = picks[0] - {p.name for p in self.phases}
        if unknown or not picks[0]:
            raise ValueError(f"phase_of named {sorted(picks[0])}; it must name one or more of "
                             f"{[p.name for p in self.phases]}")
        return picks[0]

    @staticmethod
    def _chosen(stage: _Stage, named: Optional[frozenset]) -> bool:
        if named is None:
            return True
        inside = [p.name in named for p in stage.phases]
        if any(inside) and not all(inside):
            raise ValueError(f"phase_of named only part of the simultaneous group {stage.label} (one forward "
                             "feeds all of them): name all of its phases or none")
        return all(inside)

    def learning_rates(self) -> dict[str, float]:
        return {f"lr/{name}": o.param_groups[0]["lr"] for name, o in self.optimizers.items()}

    def saved_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return self.optimizers

    def restore_hyperparameters(self) -> None:
        for name, optimizer in self.optimizers.items():
            for group, settings in zip(optimizer.param_groups, self._hyperparameters[name]):
                group.update(settings)

    def schedule(self) -> list[dict]:
        """The phases and their schedule, as stored in checkpoints (to spot a changed schedule)."""
        chosen = {"by_batch": True} if self.phase_of is not None else {}
        return [{"name": p.name, "every": p.every, "repeat": p.repeat, **chosen} for p in self.phases]

    # -- one update of one stage ---------------------------------------------------------------------

    def _update(self, stage: _Stage, step: int, batches: list[Batch],
                generators: list[torch.Generator]) -> dict[str, float]:
        params = [self.params[p.name] for p in stage.phases]
        for phase in stage.phases:
            self.optimizers[phase.name].zero_grad(set_to_none=True)
        values = None
        for batch, generator in zip(batches, generators):
            losses, metrics = stage.losses(self.model, batch, generator)
            for i, (loss, own) in enumerate(zip(losses, params)):
                # inputs=own: the loss writes gradients into this phase's parameters only
                (loss / len(batches)).backward(inputs=own, retain_graph=i < len(losses) - 1)
            shard = stacked([*losses, *metrics.values()])
            values = shard if values is None else values + shard
        values = mean_over_processes(values / len(batches), self.world_size)
        columns = [f"loss/{p.name}" for p in stage.phases] + [f"{stage.label}/{m}" for m in metrics]
        out = dict(zip(columns, values.tolist()))
        check_finite({c: out[c] for c in columns[:len(losses)]}, step)
        if self.world_size > 1:
            _average_gradients([p for own in params for p in own], self.world_size)
        for phase, own in zip(stage.phases, params):
            clip = self.config.grad_clip if phase.grad_clip is None else phase.grad_clip
            if clip is not None and clip != math.inf:
                out[f"grad_norm/{phase.name}"] = float(nn.utils.clip_grad_norm_(own, clip))
            self.optimizers[phase.name].step()
        return out


def _broadcast_from_first(tensors: list[Tensor]) -> None:
    with torch.no_grad():
        for t in tensors:
            dist.broadcast(t.detach(), src=0)


def _average_gradients(params: list[nn.Parameter], world_size: int) -> None:
    """Average ``params``' gradients over the processes (DDP's arithmetic: the mean of the
    per-process means). A parameter no process computed a gradient for keeps none, so its
    optimizer skips it as it would in one process."""
    present = torch.tensor([float(p.grad is not None) for p in params], device=params[0].device)
    dist.all_reduce(present)
    by_dtype: dict[torch.dtype, list[Tensor]] = {}
    for p, count in zip(params, present.tolist()):
        if count:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            by_dtype.setdefault(p.grad.dtype, []).append(p.grad)
    for grads in by_dtype.values():  # one all-reduce per dtype
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        flat /= world_size
        for g, part in zip(grads, flat.split([g.numel() for g in grads])):
            g.copy_(part.view_as(g))


__all__ = ["OptimizerFactory", "Phase", "PhaseStep"]
