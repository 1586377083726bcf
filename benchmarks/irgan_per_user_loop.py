"""How long the authors' IRGAN schedule takes through a per-user Python loop (their code's shape):
one SGD update per user for G (REINFORCE over 2 x |positives| proposal draws), one per 16 pairs for D.

    python benchmarks/irgan_per_user_loop.py [--users N]

Times one G epoch over ``--users`` users and one D epoch's worth of pairs at the same rate, then
extrapolates to the reference schedule (15 rounds x (100 D epochs + 50 G epochs), 943 users,
39,709 train positives). 1 thread.
"""
from __future__ import annotations

import argparse
import time

import torch

from fastgen.models.irgan import MF, MFConfig, discriminator_loss, draw_negatives, generator_loss
from fastgen.recipes.irgan.data import DataSpec, load_train_val

ROUNDS, D_EPOCHS, G_EPOCHS, D_BATCH = 15, 100, 50, 16


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=200)
    args = parser.parse_args()
    torch.set_num_threads(1)
    data = load_train_val(DataSpec())
    train, mask = data.train, data.train.mask()
    cfg = MFConfig(train.n_users, train.n_items, 5)
    g, d = MF(cfg), MF(cfg)
    g_opt, d_opt = torch.optim.SGD(g.parameters(), lr=1e-3), torch.optim.SGD(d.parameters(), lr=1e-3)
    rng = torch.Generator().manual_seed(0)
    users = train.users_with_items()[:args.users]
    start = time.perf_counter()
    for u in users.tolist():
        g_opt.zero_grad()
        generator_loss(g, d, torch.tensor([u]), train, mask, rng)[0].backward()
        g_opt.step()
    per_user = (time.perf_counter() - start) / len(users)
    pair_users, pair_items = train.pairs()
    negatives = draw_negatives(g, train, rng)
    steps = 200
    start = time.perf_counter()
    for s in range(steps):
        rows = slice(s * D_BATCH, (s + 1) * D_BATCH)
        d_opt.zero_grad()
        discriminator_loss(d, pair_users[rows], pair_items[rows], negatives[rows], 0.1 / D_BATCH)[0].backward()
        d_opt.step()
    per_d_step = (time.perf_counter() - start) / steps
    g_epoch, d_epoch = per_user * train.n_users, per_d_step * len(pair_users) / D_BATCH
    total = ROUNDS * (D_EPOCHS * d_epoch + G_EPOCHS * g_epoch)
    print(f"per-user G update {per_user * 1e3:.2f} ms -> G epoch {g_epoch:.1f} s; D step of {D_BATCH} pairs "
          f"{per_d_step * 1e3:.2f} ms -> D epoch {d_epoch:.1f} s; the reference schedule "
          f"({ROUNDS} x ({D_EPOCHS} D + {G_EPOCHS} G epochs)): {total / 3600:.1f} h")


if __name__ == "__main__":
    main()
