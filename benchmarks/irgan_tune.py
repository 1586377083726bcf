"""The seeded validation-only search behind IRGAN's default Settings (benchmarks/results/irgan_*.md).

    python benchmarks/irgan_tune.py OUT [--rounds 5] [--only NAME ...]

DNS pretraining runs once (the same seed every trial), then each trial of :data:`TRIALS` trains the
IRGAN rounds from it; each trial's validation NDCG@5 per round (round 0 = the DNS initialisation)
and its time are appended to OUT/trials.jsonl. The test split is never read here.
"""
from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

import torch

from fastgen.recipes.irgan import DataSpec, Settings
from fastgen.recipes.irgan import training
from fastgen.recipes.irgan.data import load_train_val

# name -> changes to Settings(); "authors" is the first pass's default (Adam 1e-3 for both networks)
TRIALS = {
    "adam-g1e-3": {},
    "adam-g1e-4": {"g_lr": 1e-4},
    "adam-g1e-5": {"g_lr": 1e-5},
    "sgd-g0.1": {"g_optimizer": "sgd", "g_lr": 0.1},
    "sgd-g1": {"g_optimizer": "sgd", "g_lr": 1.0},
    "exact-adam-g1e-4": {"estimator": "exact", "g_lr": 1e-4},
    "exact-sgd-g1": {"estimator": "exact", "g_optimizer": "sgd", "g_lr": 1.0},
    "paper-adam-g1e-4": {"reward": "paper", "g_lr": 1e-4},
    "adam-g1e-4-d1e-4": {"g_lr": 1e-4, "d_lr": 1e-4},
    "adam-g1e-4-noBaseline": {"g_lr": 1e-4, "baseline": False},
}


def validation_curve(run: Path) -> list[float]:
    with open(run / "log.csv", newline="") as f:
        return [float(row["eval_val_NDCG@5"]) for row in csv.DictReader(f) if row.get("eval_val_NDCG@5")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--only", nargs="*", default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)
    spec, base = DataSpec(), Settings()
    data = load_train_val(spec)
    start = time.perf_counter()
    dns = training.fit_mf("dns", base, spec, data, out / "dns", base.candidates)
    dns_best = training.load_mf(dns)[1]["selected"]["val"]["NDCG@5"]
    print(f"DNS: {time.perf_counter() - start:.0f} s, validation NDCG@5 {dns_best:.4f}")
    for name, changes in TRIALS.items():
        if args.only and name not in args.only:
            continue
        settings = base.quick(rounds=args.rounds, **changes)
        run = out / name
        start = time.perf_counter()
        training.fit_irgan(settings, spec, data, run, dns, print)
        record = {"trial": name, "changes": changes, "rounds": args.rounds, "seconds": time.perf_counter() - start,
                  "val_NDCG@5_by_round": validation_curve(run)}
        print(json.dumps(record), flush=True)
        with open(out / "trials.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
