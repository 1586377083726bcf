"""Web-search IRGAN (Wang et al. 2017, section 4.2): pointwise, with MLP scorers over a query's
candidate documents (LETOR features). The generator p(d | q) = softmax over the query's pool of
g(x_d) picks documents; the discriminator D(d | q) = sigmoid(f(x_d)) tells the query's relevant
documents (label > 0) from the generator's picks; the generator learns by the same importance-sampled
REINFORCE as item recommendation (:func:`fastgen.models.irgan.steps.reinforce_terms`).

Pools are padded: :class:`Pools` holds, per query, its documents' rows (``-inf`` logits on padding)."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fastgen.data.letor import LetorQueries

from .steps import D_TEMPERATURE, MIX, SAMPLES_PER_POSITIVE, reinforce_terms, reward_of_scores


class MLPScorer(nn.Module):
    """f(x) = w2 . tanh(W1 x + b1) + b2, the authors' scorer (hidden size = the feature count)."""

    def __init__(self, n_features: int, hidden: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(n_features, hidden), nn.Tanh(), nn.Linear(hidden, 1))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x).squeeze(-1)


class WebIRGAN(nn.Module):
    def __init__(self, n_features: int, hidden: int):
        super().__init__()
        self.generator = MLPScorer(n_features, hidden)
        self.discriminator = MLPScorer(n_features, hidden)


@dataclass(frozen=True)
class Pools:
    """Per query (row) its documents' indices into ``data.features``, padded to the longest pool."""

    rows: Tensor       # int64 [Q, M] (0 on padding)
    valid: Tensor      # bool [Q, M]
    relevant: Tensor   # bool [Q, M]: label > 0

    @classmethod
    def of(cls, data: LetorQueries) -> "Pools":
        sizes = data.ptr.diff()
        width = int(sizes.max())
        valid = torch.arange(width) < sizes.unsqueeze(1)
        rows = torch.where(valid, data.ptr[:-1].unsqueeze(1) + torch.arange(width), torch.zeros((), dtype=torch.long))
        return cls(rows, valid, valid & (data.labels[rows] > 0))

    def logits(self, scorer: MLPScorer, features: Tensor, queries: Tensor) -> Tensor:
        """[B, M] scores of the queries' pools, -inf on padding."""
        out = scorer(features[self.rows[queries]])
        return out.masked_fill(~self.valid[queries], -torch.inf)

    def positives(self) -> tuple[Tensor, Tensor]:
        """(query, slot) of every relevant document."""
        q, slot = torch.nonzero(self.relevant, as_tuple=True)
        return q, slot


def draw_from_logits(logits: Tensor, uniforms: Tensor) -> Tensor:
    """Inverse-CDF draws [B, K] (slots) from softmax(logits) [B, M] at the uniforms [B, K]; a uniform
    above the rounded total falls on the row's last finite slot, never on padding."""
    cdf = torch.softmax(logits.double(), dim=1).cumsum(1)
    last = (torch.isfinite(logits).sum(1, keepdim=True) - 1).clamp(min=0)
    return torch.minimum(torch.searchsorted(cdf, uniforms.double().contiguous(), right=True), last)


def draw_negatives(g: MLPScorer, features: Tensor, pools: Pools, rng: torch.Generator,
                   temperature: float = D_TEMPERATURE) -> Tensor:
    """One generator pick (a slot of its query's pool) per relevant document, aligned with ``pools.positives()``."""
    q, _ = pools.positives()
    with torch.no_grad():
        logits = pools.logits(g, features, torch.arange(len(pools.rows))) / temperature
    return draw_from_logits(logits[q], torch.rand(len(q), 1, generator=rng, dtype=torch.float64))[:, 0]


def discriminator_loss(d: MLPScorer, features: Tensor, pools: Pools, queries: Tensor, positives: Tensor,
                       negatives: Tensor) -> tuple[Tensor, dict]:
    real = d(features[pools.rows[queries, positives]])
    fake = d(features[pools.rows[queries, negatives]])
    loss = F.softplus(-real).mean() + F.softplus(fake).mean()
    return loss, {"real": torch.sigmoid(real).mean().detach(), "fake": torch.sigmoid(fake).mean().detach()}


def generator_loss(g: MLPScorer, d: MLPScorer, features: Tensor, pools: Pools, queries: Tensor,
                   rng: torch.Generator, form: str = "paper", mix: float = MIX,
                   per_positive: int = SAMPLES_PER_POSITIVE) -> tuple[Tensor, dict]:
    """REINFORCE over ``per_positive`` x |relevant| draws per query from (1 - mix) p + mix uniform(relevant)."""
    relevant = pools.relevant[queries]
    counts = relevant.sum(1)
    if bool((counts == 0).any()):
        raise ValueError("generator_loss: every query needs a relevant document (the proposal mixes them in)")
    log_p = torch.log_softmax(pools.logits(g, features, queries), dim=1)
    width = int(counts.max()) * per_positive
    valid = torch.arange(width) < (per_positive * counts).unsqueeze(1)
    soft = draw_from_logits(log_p.detach(), torch.rand(len(queries), width, generator=rng, dtype=torch.float64))
    relevant_slots = torch.argsort((~relevant).to(torch.int8), dim=1, stable=True)  # relevant slots first
    pick = (torch.rand(len(queries), width, generator=rng) * counts.unsqueeze(1)).long()
    own_draw = relevant_slots.gather(1, pick)
    slots = torch.where(torch.rand(len(queries), width, generator=rng) < mix, own_draw, soft)
    with torch.no_grad():
        r = reward_of_scores(d(features[pools.rows[queries.unsqueeze(1), slots]]), form)
    terms, estimate = reinforce_terms(log_p.gather(1, slots), relevant.gather(1, slots), counts, r, valid, mix, True)
    return terms.mean(), {"reward": estimate.mean()}


def pointwise_loss(scorer: MLPScorer, features: Tensor, labels: Tensor) -> Tensor:
    """Logistic loss of label > 0 on the labelled documents (the generator's pretraining)."""
    known = labels >= 0
    return F.binary_cross_entropy_with_logits(scorer(features[known]), (labels[known] > 0).float())


__all__ = ["MLPScorer", "Pools", "WebIRGAN", "discriminator_loss", "draw_from_logits", "draw_negatives",
           "generator_loss", "pointwise_loss"]
