"""Each user's items (a train split's relevant items, a test split's) as CSR, the layout the item
ops take for exclusion, with the dense mask and the pair list derived from it."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class UserItems:
    """Sorted, de-duplicated items per user: ``indices[indptr[u]:indptr[u + 1]]``."""

    indptr: Tensor   # int64 [U + 1]
    indices: Tensor  # int64 [nnz]
    n_items: int

    @classmethod
    def from_pairs(cls, users: Tensor, items: Tensor, n_users: int, n_items: int) -> "UserItems":
        if users.shape != items.shape or users.dim() != 1:
            raise ValueError(f"users and items must be 1-D of one length, got {tuple(users.shape)} and "
                             f"{tuple(items.shape)}")
        if len(users) and (users.min() < 0 or users.max() >= n_users or items.min() < 0 or items.max() >= n_items):
            raise ValueError(f"users must lie in 0..{n_users - 1} and items in 0..{n_items - 1}")
        key = torch.unique(users.long() * n_items + items.long())  # sorted by user, then item
        counts = torch.bincount(key // n_items, minlength=n_users)
        indptr = torch.cat([torch.zeros(1, dtype=torch.long), counts.cumsum(0)])
        return cls(indptr, key % n_items, n_items)

    @property
    def n_users(self) -> int:
        return len(self.indptr) - 1

    @property
    def counts(self) -> Tensor:
        return self.indptr.diff()

    def pairs(self) -> tuple[Tensor, Tensor]:
        """(users, items) of every entry, by user then item."""
        return torch.repeat_interleave(torch.arange(self.n_users), self.counts), self.indices

    def mask(self) -> Tensor:
        """Dense bool [U, I]."""
        out = torch.zeros(self.n_users, self.n_items, dtype=torch.bool)
        users, items = self.pairs()
        out[users, items] = True
        return out

    def csr(self) -> tuple[Tensor, Tensor]:
        return self.indptr, self.indices

    def union(self, other: "UserItems") -> "UserItems":
        (u1, i1), (u2, i2) = self.pairs(), other.pairs()
        return UserItems.from_pairs(torch.cat([u1, u2]), torch.cat([i1, i2]), self.n_users, self.n_items)

    def users_with_items(self) -> Tensor:
        return torch.nonzero(self.counts > 0).squeeze(1)


__all__ = ["UserItems"]
