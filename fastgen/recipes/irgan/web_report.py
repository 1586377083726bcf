"""The test figures of a finished web-search IRGAN run (``fastgen eval irgan --task web``): the generator
validation chose and its own pointwise pretraining, each scored once on the test queries (P@k, NDCG@k,
MAP per query), and their paired per-query difference with 95% intervals."""
from __future__ import annotations

from pathlib import Path
from typing import Union

from fastgen.eval.ranking import means, paired_difference
from fastgen.models.irgan.letor import MLPScorer
from fastgen.recipes.irgan.folders import WEB_KIND, require_task
from fastgen.recipes.irgan.report import models_markdown, paired_markdown
from fastgen.recipes.irgan.selection import SELECT_BY
from fastgen.recipes.irgan.web import COMMAND, METRICS, PRETRAIN, evaluate, fingerprint, load_test, load_train_val
from fastgen.recipes.runs import RecipeError, check_run_sections, load_weights, read_checkpoint

MODELS = ("IRGAN generator", "pointwise MLP (its initialisation)")


def web_test_report(out_dir: Union[str, Path]) -> dict:
    """{"data", "selected_round", "val", "test_queries", "models": {name: {metric: mean}}, "paired"}:
    reads the test queries once (after checking that the training data are those the run saw)."""
    out = Path(out_dir)
    require_task(out, "web", "evaluate it with `fastgen eval irgan --task {task} --checkpoint DIR`")
    if not (out / "best" / "config.json").is_file():
        raise RecipeError(f"{out} holds no selected web-search generator ({out / 'best'}/config.json is missing): "
                          f"train it with `{COMMAND} --out DIR` first (or --resume an unfinished run)")
    best, run = read_checkpoint(out / "best", (WEB_KIND,), COMMAND)
    check_run_sections(best, {"model": ("n_features", "hidden"), "data": ("source", "seed", "fingerprint"),
                              "selected": ("step", "val")})
    initial = read_checkpoint(out / PRETRAIN, (WEB_KIND,), COMMAND)[0]
    source, seed = run["data"]["source"], run["data"]["seed"]
    if fingerprint(load_train_val(source, out, seed)) != run["data"]["fingerprint"]:
        raise RecipeError(f"the data in {source} differ from those the run in {out} was trained on: restore them "
                          "to evaluate it")
    test = load_test(source, out, seed)
    per_query = {}
    for name, ckpt in zip(MODELS, (best, initial)):
        scorer = load_weights(MLPScorer(run["model"]["n_features"], run["model"]["hidden"]), ckpt)
        per_query[name] = evaluate(scorer, test)
    irgan, pretrained = (per_query[name] for name in MODELS)
    return {"task": "web", "data": run["data"]["description"], "selected_round": run["selected"]["step"],
            "selected_by": f"validation {SELECT_BY}", "val": run["selected"]["val"], "test_queries": len(irgan["MAP"]),
            "models": {name: means(values) for name, values in per_query.items()},
            "paired": {m: vars(paired_difference(irgan[m], pretrained[m])) for m in METRICS}
            if len(irgan["MAP"]) >= 2 else {}}


def web_markdown(report: dict) -> str:
    lines = [f"Web search ({report['data']}), {report['test_queries']} test queries; generator chosen at round "
             f"{report['selected_round']} by {report['selected_by']}:", ""]
    lines += models_markdown(report["models"], METRICS)
    if report["paired"]:
        lines += paired_markdown(report["paired"], f"IRGAN generator - its pretraining, per query "
                                                   f"({report['test_queries']} test queries), 95% intervals:")
    return "\n".join(lines)


__all__ = ["MODELS", "web_markdown", "web_test_report"]
