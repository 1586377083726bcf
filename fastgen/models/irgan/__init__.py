"""IRGAN (Wang et al. 2017): a generator that selects items and a discriminator that tells true
relevant pairs from its picks, as matrix factorisations (item recommendation) or MLP scorers
(web search, :mod:`.letor`). Sampling and ranking go through :mod:`.items` only."""
from .interactions import UserItems
from .items import sample_items, scores, topk_items
from .mf import IRGAN, MF, MFConfig, Popularity
from .steps import (D_TEMPERATURE, ESTIMATORS, MIX, REWARDS, bpr_loss, discriminator_loss, draw_negatives, generator_loss,
                    proposal_draws, reward)

__all__ = ["D_TEMPERATURE", "ESTIMATORS", "IRGAN", "MF", "MFConfig", "MIX", "Popularity", "REWARDS", "UserItems", "bpr_loss",
           "discriminator_loss", "draw_negatives", "generator_loss", "proposal_draws", "reward", "sample_items",
           "scores", "topk_items"]
