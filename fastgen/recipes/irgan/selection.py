"""Validation-only model selection: ranking metrics of a scorer on a split, and the keeper that saves
the best-on-validation weights of a run (its stopping point) as a checkpoint folder (both tasks: items
and web search)."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Callable, Optional

import torch
from torch import Tensor, nn

from fastgen.eval.ranking import KS, means, ranking_metrics
from fastgen.models.irgan import UserItems
from fastgen.train.checkpoint import CONFIG, save_checkpoint

SELECT_BY = "NDCG@5"  # the validation metric that picks the stopping point


def per_user_metrics(scorer: nn.Module, exclude: UserItems, relevant: UserItems) -> tuple[Tensor, dict[str, Tensor]]:
    """(users, {metric: per-user values}): ``scorer`` ranks every item but the user's ``exclude`` items,
    over the users with at least one ``relevant`` item."""
    users = relevant.users_with_items()
    indptr = torch.cat([torch.zeros(1, dtype=torch.long), exclude.counts[users].cumsum(0)])
    rows = [exclude.indices[exclude.indptr[u]:exclude.indptr[u + 1]] for u in users.tolist()]
    ranked = scorer.recommend(users, max(KS), (indptr, torch.cat(rows) if rows else exclude.indices[:0]))
    return users, ranking_metrics(ranked, relevant.mask(), users)


def split_metrics(scorer: nn.Module, exclude: UserItems, relevant: UserItems) -> dict[str, float]:
    return means(per_user_metrics(scorer, exclude, relevant)[1])


class BestOnValidation:
    """A Trainer eval_fn: ``validate(pick(model))``, the validation metrics of the scorer to select
    (an MF, or web search's MLP generator); whenever :data:`SELECT_BY` improves, the scorer's weights
    are saved to ``folder`` with ``config`` and the metrics (resumable: the best value so far is read
    back from ``folder``)."""

    def __init__(self, folder: Path, config: dict, validate: Callable[[nn.Module], dict[str, float]],
                 pick: Callable[[nn.Module], nn.Module], position: Callable[[], int]):
        self.folder, self.config, self.validate = folder, config, validate
        self.pick, self.position = pick, position
        self.best = -math.inf
        if (folder / CONFIG).is_file():
            stored = json.loads((folder / CONFIG).read_text(encoding="utf-8"))["config"]["selected"]
            self.best = stored["val"][SELECT_BY]

    def __call__(self, model: nn.Module) -> dict:
        scorer = self.pick(model)
        metrics = self.validate(scorer)
        if metrics[SELECT_BY] > self.best:
            self.best = metrics[SELECT_BY]
            selected = {"step": self.position(), "by": f"validation {SELECT_BY}", "val": metrics}
            save_checkpoint(self.folder, scorer, {**self.config, "selected": selected}, step=self.position())
        return {f"val_{k}": v for k, v in metrics.items()}


def stored_selection(folder: Path) -> Optional[dict]:
    path = folder / CONFIG
    return json.loads(path.read_text(encoding="utf-8"))["config"]["selected"] if path.is_file() else None


__all__ = ["BestOnValidation", "SELECT_BY", "per_user_metrics", "split_metrics", "stored_selection"]
