"""The test figures of a finished IRGAN run: every model at the point validation chose, scored once on
the test split; IRGAN against its own DNS initialisation as a paired per-user difference."""
from __future__ import annotations

from pathlib import Path
from typing import Union

import torch

from fastgen.eval.ranking import KS, means, paired_difference
from fastgen.models.irgan import Popularity
from fastgen.recipes.irgan import data as irgan_data
from fastgen.recipes.irgan.data import DataSpec
from fastgen.recipes.irgan.folders import require_task
from fastgen.recipes.irgan.selection import per_user_metrics, stored_selection
from fastgen.recipes.irgan.training import load_mf
from fastgen.recipes.runs import RecipeError

MODELS = (("IRGAN", "best"), ("DNS-MF (IRGAN's initialisation)", "dns/best"), ("BPR-MF", "bpr/best"))
METRICS = tuple(f"P@{k}" for k in KS) + tuple(f"NDCG@{k}" for k in KS)


def run_spec(out: Path) -> DataSpec:
    require_task(out, "items", "evaluate it with `fastgen eval irgan --task {task} --checkpoint DIR`")
    folder = out / "best"
    if stored_selection(folder) is None:
        raise RecipeError(f"{out} holds no selected IRGAN generator ({folder}/config.json is missing): "
                          "train it with `fastgen train irgan --out DIR` first")
    _, config = load_mf(folder)
    data = config["data"]
    return DataSpec(data["split"], data["path"], data["seed"])


def test_report(out_dir: Union[str, Path]) -> dict:
    """{"models": {name: {metric: mean}}, "selected": {name: selection}, "paired": {metric: difference},
    "users": n}: reads the test split once."""
    out = Path(out_dir)
    spec = run_spec(out)
    test, exclude = irgan_data.load_test(spec)
    train = irgan_data.load_train_val(spec).train
    per_user, selected = {}, {}
    for name, folder in MODELS:
        if stored_selection(out / folder) is not None:
            model, config = load_mf(out / folder)
            per_user[name] = per_user_metrics(model, exclude, test)[1]
            selected[name] = config["selected"]
    popularity = Popularity(torch.bincount(train.pairs()[1], minlength=train.n_items), train.n_users)
    users, per_user["popularity"] = per_user_metrics(popularity, exclude, test)
    report = {"models": {name: means(values) for name, values in per_user.items()}, "selected": selected,
              "users": len(users), "split": spec.to_json()}
    base = MODELS[1][0]
    if base in per_user:
        report["paired"] = {m: vars(paired_difference(per_user["IRGAN"][m], per_user[base][m])) for m in METRICS}
    return report


def models_markdown(models: dict[str, dict[str, float]], metrics: tuple[str, ...]) -> list[str]:
    """A markdown table: a row per model, a column per metric (means)."""
    lines = ["| model | " + " | ".join(metrics) + " |", "|---|" + "---:|" * len(metrics)]
    return lines + [f"| {name} | " + " | ".join(f"{values[m]:.4f}" for m in metrics) + " |"
                    for name, values in models.items()]


def paired_markdown(paired: dict[str, dict], title: str) -> list[str]:
    """A markdown table of paired differences (fastgen.eval.ranking.paired_difference) under ``title``."""
    lines = ["", title, "", "| metric | mean difference | bootstrap CI | paired t CI |", "|---|---:|---:|---:|"]
    return lines + [f"| {m} | {d['mean']:+.4f} | {d['bootstrap'][0]:+.4f} .. {d['bootstrap'][1]:+.4f} | "
                    f"{d['t_interval'][0]:+.4f} .. {d['t_interval'][1]:+.4f} |" for m, d in paired.items()]


def markdown(report: dict) -> str:
    lines = models_markdown(report["models"], METRICS)
    if "paired" in report:
        lines += paired_markdown(report["paired"], f"IRGAN - DNS-MF, per user ({report['users']} test users), "
                                                   "95% intervals:")
    return "\n".join(lines)


__all__ = ["METRICS", "MODELS", "markdown", "models_markdown", "paired_markdown", "run_spec", "test_report"]
