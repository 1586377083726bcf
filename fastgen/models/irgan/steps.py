"""The losses of item-recommendation IRGAN and of the MF baselines, each vectorised over a batch of
users or (user, item) pairs.

* :func:`draw_negatives`: per train positive one item from the generator at temperature 0.2.
* :func:`discriminator_loss`: logistic loss of D on true pairs against the generator's picks.
* :func:`generator_loss`: the gradient of J(u) = E_{i ~ p(.|u)} [reward(u, i)] (Wang et al. 2017,
  eq. 5), averaged over the batch's users, by one of :data:`ESTIMATORS`:

  - "sampled" (the paper's): REINFORCE with importance sampling. For each user
    ``per_positive`` x |positives| items are drawn from a proposal q mixing the generator's softmax
    (weight 1 - MIX) with a uniform pick among the user's positives (MIX); draw k contributes
    w_k (r_k - b_k) grad log p(i_k), w = p / q. The baseline b_k is the self-normalised mean reward
    of the user's *other* draws (sum_{j != k} w_j r_j / sum_{j != k} w_j): independent of draw k,
    so the estimate stays exactly unbiased (a baseline subtracted from w r instead of from r, or
    one that includes draw k, is not: E_q[grad log p] != 0 when q != p).
  - "exact": the item pool is small (ML-100k: 1,682 items), so J itself, sum_i p(i|u) r(u, i), is
    differentiated through the whole softmax: the zero-variance limit of the estimator above.

  Rewards (:data:`REWARDS`): "code" 2 (sigmoid(f) - 0.5), what the authors' released code uses
  (the default); "paper" log(1 + exp(f)), the form of the paper's eq. 5.
* :func:`bpr_loss`: BPR against the best of ``candidates`` uniform negatives (dynamic negative
  sampling, Zhang et al. 2013, which pretrains the generator); one candidate is plain BPR.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .interactions import UserItems
from .items import sample_items
from .mf import MF

D_TEMPERATURE = 0.2   # the generator's temperature when it proposes negatives to D
MIX = 0.2             # the proposal's weight on the user's own positives
SAMPLES_PER_POSITIVE = 2
REWARDS = ("code", "paper")
ESTIMATORS = ("sampled", "exact")
CHUNKS = 8            # groups of users per generator step, by positive count (see generator_loss)


def draw_negatives(generator_mf: MF, positives: UserItems, rng: torch.Generator,
                   temperature: float = D_TEMPERATURE) -> Tensor:
    """One generator pick per entry of ``positives`` (aligned with ``positives.pairs()``): for each
    user, as many draws as it has positives."""
    counts = positives.counts
    width = int(counts.max()) if len(counts) else 0
    uniforms = torch.rand(positives.n_users, max(width, 1), generator=rng, dtype=torch.float64)
    picks = sample_items(generator_mf.user_emb.detach(), generator_mf.item_emb.detach(),
                         generator_mf.item_bias.detach(), uniforms, temperature)
    users, _ = positives.pairs()
    slot = torch.arange(len(users)) - positives.indptr[users]
    return picks[users, slot]


def discriminator_loss(d: MF, users: Tensor, positives: Tensor, negatives: Tensor, l2: float) -> tuple[Tensor, dict]:
    """Mean logistic loss of true pairs against generator picks, plus ``l2`` times the half squared
    norm of the rows each pair touches (user row counted for both pairs)."""
    items = torch.stack([positives, negatives], 1)               # [B, 2]
    u, v, b = d.user_emb[users], d.item_emb[items], d.item_bias[items]
    f = (u.unsqueeze(1) * v).sum(-1) + b                         # [B, 2]
    loss = F.softplus(-f[:, 0]).mean() + F.softplus(f[:, 1]).mean()
    metrics = {"real": torch.sigmoid(f[:, 0]).mean().detach(), "fake": torch.sigmoid(f[:, 1]).mean().detach()}
    if l2:
        loss = loss + l2 * 0.5 * (2 * u.square().sum(-1) + v.square().sum((1, 2)) + b.square().sum(1)).mean()
    return loss, metrics


def reward_of_scores(f: Tensor, form: str) -> Tensor:
    if form == "code":
        return 2 * (torch.sigmoid(f) - 0.5)
    if form == "paper":
        return F.softplus(f)
    raise ValueError(f"reward must be one of {REWARDS}, got {form!r}")


def reward(d: MF, users: Tensor, items: Tensor, form: str) -> Tensor:
    return reward_of_scores(d.score(users, items), form)


def proposal_draws(g: MF, users: Tensor, positives: UserItems, rng: torch.Generator,
                   mix: float = MIX, per_positive: int = SAMPLES_PER_POSITIVE) -> tuple[Tensor, Tensor]:
    """(items [B, K], valid [B, K]): per user ``per_positive`` x |positives| draws from the proposal
    (1 - mix) softmax(generator) + mix uniform(positives); K is the batch's largest count."""
    counts = positives.counts[users]
    wanted = per_positive * counts
    width = max(int(wanted.max()), 1)
    valid = torch.arange(width) < wanted.unsqueeze(1)
    soft = sample_items(g.user_emb.detach()[users], g.item_emb.detach(), g.item_bias.detach(),
                        torch.rand(len(users), width, generator=rng, dtype=torch.float64), 1.0)
    pick = (torch.rand(len(users), width, generator=rng) * counts.clamp(min=1).unsqueeze(1)).long()
    own = positives.indices[(positives.indptr[users].unsqueeze(1) + pick).clamp(max=max(len(positives.indices) - 1, 0))]
    from_own = torch.rand(len(users), width, generator=rng) < mix
    return torch.where(from_own, own, soft), valid


def generator_loss(g: MF, d: MF, users: Tensor, positives: UserItems, positive_mask: Tensor,
                   rng: torch.Generator, form: str = "code", baseline: bool = True, mix: float = MIX,
                   estimator: str = "sampled", per_positive: int = SAMPLES_PER_POSITIVE) -> tuple[Tensor, dict]:
    """A surrogate whose gradient estimates -grad of the users' mean J(u) (see the module docstring);
    every user needs at least one positive. Metrics: "reward", the mean of each user's estimate of J."""
    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator must be one of {ESTIMATORS}, got {estimator!r}")
    if len(users) and bool((positives.counts[users] == 0).any()):
        raise ValueError("generator_loss: every user needs at least one train positive (the proposal mixes them in)")
    if estimator == "exact":
        log_p = torch.log_softmax(g.all_scores(users), dim=1)    # [B, I]
        with torch.no_grad():
            r = reward_of_scores(d.all_scores(users), form)
        j = (log_p.exp() * r).sum(1)
        return -j.mean(), {"reward": j.mean().detach()}
    # users in chunks of similar positive counts, so that few of the [chunk, K] draws are padding
    order = users[torch.argsort(positives.counts[users], stable=True)]
    loss, estimate = 0.0, 0.0
    for chunk in order.tensor_split(min(CHUNKS, len(users))):
        terms, estimates = _sampled_terms(g, d, chunk, positives, positive_mask, rng, form, baseline, mix,
                                          per_positive)
        loss, estimate = loss + terms.sum(), estimate + estimates.sum()
    return loss / len(users), {"reward": estimate / len(users)}


def _sampled_terms(g: MF, d: MF, users: Tensor, positives: UserItems, positive_mask: Tensor,
                   rng: torch.Generator, form: str, baseline: bool, mix: float,
                   per_positive: int) -> tuple[Tensor, Tensor]:
    """(per-user surrogate [B], per-user importance-sampling estimate of J [B])."""
    items, valid = proposal_draws(g, users, positives, rng, mix, per_positive)
    drawn = torch.log_softmax(g.all_scores(users), dim=1).gather(1, items)
    with torch.no_grad():
        own = positive_mask[users.unsqueeze(1), items]
        r = reward(d, users.unsqueeze(1).expand_as(items), items, form)
    return reinforce_terms(drawn, own, positives.counts[users], r, valid, mix, baseline)


def reinforce_terms(drawn: Tensor, own: Tensor, counts: Tensor, r: Tensor, valid: Tensor, mix: float,
                    baseline: bool) -> tuple[Tensor, Tensor]:
    """The importance-sampled REINFORCE terms of rows of draws from (1 - mix) p + mix uniform(positives)
    (see the module docstring): ``drawn`` [B, K] log p of each draw (differentiable), ``own`` [B, K]
    whether it is one of its row's ``counts`` [B] positives, ``r`` [B, K] its reward, ``valid`` [B, K]
    false on padding. Returns (per-row surrogate [B], per-row importance-sampling estimate of J [B])."""
    with torch.no_grad():
        p = drawn.exp()
        proposal = (1 - mix) * p + mix * own.to(p.dtype) / counts.unsqueeze(1).to(p.dtype)
        w = p / proposal * valid
        n = valid.sum(1)
        wr = w * r
        total_wr, total_w = wr.sum(1, keepdim=True), w.sum(1, keepdim=True)
        if baseline:  # leave-one-out, self-normalised: independent of the draw it is subtracted from
            rest = total_w - w
            b = torch.where(rest > 0, (total_wr - wr) / rest.clamp(min=1e-30), torch.zeros_like(w))
            coef = w * (r - b)
        else:
            coef = wr
    return -(drawn * coef).sum(1) / n, total_wr.squeeze(1) / n


def bpr_loss(mf: MF, users: Tensor, positives: Tensor, rng: torch.Generator, candidates: int = 1,
             l2: float = 0.0) -> Tensor:
    """-log sigmoid(s(u, i) - s(u, j)), j the highest-scoring of ``candidates`` uniform items."""
    drawn = torch.randint(0, mf.config.n_items, (len(users), candidates), generator=rng)
    if candidates > 1:
        with torch.no_grad():
            best = mf.score(users, drawn).argmax(1, keepdim=True)
        drawn = drawn.gather(1, best)
    negatives = drawn[:, 0]
    loss = F.softplus(mf.score(users, negatives) - mf.score(users, positives)).mean()
    return loss + l2 * (mf.l2(users, positives) + mf.l2(users, negatives)) if l2 else loss


__all__ = ["D_TEMPERATURE", "ESTIMATORS", "MIX", "REWARDS", "SAMPLES_PER_POSITIVE", "bpr_loss",
           "discriminator_loss", "draw_negatives", "generator_loss", "proposal_draws", "reinforce_terms", "reward", "reward_of_scores"]
