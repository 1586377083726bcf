"""Matrix factorisation scorers and the IRGAN pair (Wang et al. 2017, section 3 on item
recommendation): the generator p(i | u) = softmax_i(u . v_i + b_i) and the discriminator
D(i | u) = sigmoid(u . v_i + b_i), each its own MF with user and item embeddings and an item bias."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .items import Exclude, topk_items

INIT_DELTA = 0.05  # uniform(-0.05, 0.05) initialisation, as the authors' code


@dataclass(frozen=True)
class MFConfig:
    n_users: int
    n_items: int
    dim: int = 5  # the paper's setting for MovieLens

    def __post_init__(self) -> None:
        for name in ("n_users", "n_items", "dim"):
            value = getattr(self, name)
            if not (isinstance(value, int) and value >= 1):
                raise ValueError(f"MFConfig.{name} must be an int >= 1, got {value!r}")


class MF(nn.Module):
    """score(u, i) = u . v_i + b_i."""

    def __init__(self, config: MFConfig, generator: torch.Generator = None):
        super().__init__()
        self.config = config
        def init(*shape):
            return nn.Parameter((torch.rand(*shape, generator=generator) * 2 - 1) * INIT_DELTA)
        self.user_emb = init(config.n_users, config.dim)
        self.item_emb = init(config.n_items, config.dim)
        self.item_bias = nn.Parameter(torch.zeros(config.n_items))

    def score(self, users: Tensor, items: Tensor) -> Tensor:
        """Scores of (user, item) pairs; ``items`` may carry extra trailing columns per user ([B, k])."""
        u = self.user_emb[users]
        if items.dim() == users.dim() + 1:
            u = u.unsqueeze(-2)
        return (u * self.item_emb[items]).sum(-1) + self.item_bias[items]

    def all_scores(self, users: Tensor) -> Tensor:
        """[B, I] scores of every item for ``users`` (the generator's policy gradient needs them all)."""
        return self.user_emb[users] @ self.item_emb.T + self.item_bias

    def l2(self, users: Tensor, items: Tensor) -> Tensor:
        """Half the squared norm of the rows a batch touches, averaged over its pairs."""
        return 0.5 * (self.user_emb[users].square().sum(-1) + self.item_emb[items].square().sum(-1)
                      + self.item_bias[items].square()).mean()

    @torch.no_grad()
    def recommend(self, users: Tensor, k: int, exclude: Exclude = None) -> Tensor:
        """[B, k] top items of ``users`` (``exclude``: CSR over the B users)."""
        return topk_items(self.user_emb[users], self.item_emb, self.item_bias, k, exclude)[1]


class IRGAN(nn.Module):
    """The generator and discriminator of item-recommendation IRGAN, one module for the Trainer."""

    def __init__(self, config: MFConfig, generator: torch.Generator = None):
        super().__init__()
        self.config = config
        self.generator = MF(config, generator)
        self.discriminator = MF(config, generator)


class Popularity(nn.Module):
    """The popularity baseline as a scorer: every user ranks items by their count of train positives."""

    def __init__(self, counts: Tensor, n_users: int):
        super().__init__()
        n_items = len(counts)
        self.user_emb = nn.Parameter(torch.zeros(n_users, 1), requires_grad=False)
        self.item_emb = nn.Parameter(torch.zeros(n_items, 1), requires_grad=False)
        self.item_bias = nn.Parameter(counts.float(), requires_grad=False)

    recommend = MF.recommend


__all__ = ["INIT_DELTA", "IRGAN", "MF", "MFConfig", "Popularity"]
