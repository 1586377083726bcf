"""``fastgen train|eval|sample|bench irgan``: IRGAN item recommendation on MovieLens-100k over
fastgen.recipes.irgan (DNS pretraining, the IRGAN rounds, baselines, validation-only selection, the
test split read once by eval), and with ``--task web`` LETOR web search (fastgen.recipes.irgan.web).
The demo part is in :mod:`fastgen.cli.irgan_demo`."""
from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from fastgen.cli.args import (CLIError, JSON_SUFFIXES, add_threads_flag, check_out_file, check_out_folder, flag,
                              non_negative_int, optional_path, positive_float, positive_int, set_threads,
                              user_errors, write_text)
from fastgen.cli.training import training_processes
from fastgen.recipes.family import DemoBudget, Family
from fastgen.recipes.runs import check_resume_flags, differing_flags

# The schedule flags: dest -> (type, help, task). Task None: both tasks (each its own default); "items" or
# "web": that task's only (the other refuses it by name). All default to None, so that --resume can
# tell a flag given from one left alone.
_SCHEDULE = {
    "dim": (positive_int, "embedding size", "items"),
    "hidden": (positive_int, "hidden units of the MLP scorers", "web"),
    "pre_epochs": (positive_int, "pretraining epochs (items: DNS and the BPR baseline; web: full-batch steps)", None),
    "pre_batch": (positive_int, "pretraining pairs per step", "items"),
    "pre_lr": (positive_float, "pretraining Adam lr", None),
    "candidates": (positive_int, "DNS negatives", "items"),
    "rounds": (positive_int, "IRGAN rounds (with --resume: the run's, or more)", None),
    "d_epochs": (positive_int, "discriminator passes per round", None),
    "d_refresh": (positive_int, "passes between redraws of D's negatives", None),
    "g_epochs": (positive_int, "generator passes per round", None),
    "batch_size": (positive_int, "D pairs per step", None),
    "g_users": (positive_int, "users per G step", "items"),
    "g_queries": (positive_int, "queries per G step", "web"),
    "d_lr": (positive_float, "discriminator Adam lr", None),
    "g_lr": (positive_float, "generator lr (items: Adam, or SGD with --g-optimizer sgd; web: Adam)", None),
    "micro_batches": (positive_int, "slices of each process's share of a batch, their gradients accumulated (one "
                                    "process with K computes what `torchrun --nproc_per_node K` does)", "web"),
}
_CHOICES = {"reward": (("code", "paper"), "code: 2(sigmoid(f) - 0.5), the authors' code; paper: log(1 + exp(f)), "
                                          "the paper's", None),
            "estimator": (("sampled", "exact"), "sampled: REINFORCE with importance sampling; exact: differentiate "
                                                "the expected reward over all items", "items"),
            "g_optimizer": (("adam", "sgd"), "the generator's optimizer", "items")}
_ITEMS_ONLY = ("split", "no_baseline", "no_baselines")  # item flags that are no schedule setting of the web task
TASKS = ("items", "web")
COMMAND = "fastgen train irgan"


def _default(task: str, name: str):
    from fastgen.recipes.irgan import Settings
    from fastgen.recipes.irgan.web import WebSettings
    return getattr(Settings() if task == "items" else WebSettings(), name)


def _default_text(name: str, task) -> str:
    if task is not None:
        return f"default {_default(task, name)}"
    return f"default: items {_default('items', name)}, web {_default('web', name)}"


def _only(task) -> str:
    return "" if task is None else f"; --task {task} only"


def _add_train_arguments(m: argparse.ArgumentParser) -> None:
    from fastgen.recipes.irgan.data import SPLITS
    m.add_argument("--out", required=True, metavar="DIR", help="run folder (created)")
    m.add_argument("--task", choices=TASKS, default="items",
                   help="items (default): MovieLens-100k recommendation; web: LETOR web search with MLP scorers "
                        "(--data a LETOR file, a fold folder or 'synthetic', needed unless --resume)")
    m.add_argument("--split", choices=SPLITS,
                   help="u1 (default): the official split, rebuilt as mku.sh does; random: 20%% of each "
                        "user's ratings as test, seeded; --task items only")
    m.add_argument("--data", metavar="PATH", help="items: a u.data file or a folder with u.data (and "
                                                  "u1.base/u1.test) (default: the copy in the recbole wheel); "
                                                  "web: a LETOR 4.0 file, a fold folder or 'synthetic' "
                                                  "(MQ2008 is not offline)")
    m.add_argument("--seed", type=non_negative_int, help="seed (default 0)")
    g = m.add_argument_group("schedule and model (defaults: items the authors' schedule, web ours; with --resume: "
                             "the run's, which a flag given must equal, except a larger --rounds)")
    for name, (kind, text, task) in _SCHEDULE.items():
        g.add_argument(flag(name), dest=name, type=kind, metavar="N" if kind is positive_int else "LR",
                       help=f"{text} ({_default_text(name, task)}{_only(task)})")
    for name, (choices, text, task) in _CHOICES.items():
        g.add_argument(flag(name), dest=name, choices=choices,
                       help=f"{text} ({_default_text(name, task)}{_only(task)})")
    g.add_argument("--no-baseline", action="store_true", default=None,
                   help="REINFORCE without the per-user mean baseline; --task items only")
    m.add_argument("--no-baselines", action="store_true", default=None,
                   help="skip the BPR-MF baseline; --task items only")
    m.add_argument("--resume", action="store_true", help="continue the run in --out where it stopped")
    add_threads_flag(m)


def _given_settings(args: argparse.Namespace) -> dict:
    """The settings the flags given set for ``args.task`` (CLIError naming any flag of the other task)."""
    tasks = {**{n: t for n, (_, _, t) in {**_SCHEDULE, **_CHOICES}.items()}, **dict.fromkeys(_ITEMS_ONLY, "items")}
    wrong = [flag(n) for n, task in tasks.items() if task not in (None, args.task) and getattr(args, n) is not None]
    if wrong:
        other = next(t for t in TASKS if t != args.task)
        raise CLIError(f"{', '.join(wrong)}: --task {other} only, not --task {args.task}")
    given = {n: getattr(args, n) for n, task in tasks.items() if task in (None, args.task) and n not in _ITEMS_ONLY}
    if args.task == "items":
        given["baseline"] = None if args.no_baseline is None else False
    return {**{n: v for n, v in given.items() if v is not None}, "seed": args.seed}


def _settings(make, task: str, args: argparse.Namespace, out: Path):
    """(settings, stored run description or None): a new run's from the flags given over the defaults;
    a resumed run's from the run's, which the flags given must equal (a larger --rounds may differ)."""
    from fastgen.recipes.irgan.folders import check_irgan_folder, resumed_settings, stored_description
    given = _given_settings(args)
    if not args.resume:
        return make(**{k: v for k, v in given.items() if v is not None}), None
    check_irgan_folder(out, True, task)
    run = stored_description(out, task, COMMAND)
    try:  # a description written before a setting existed holds that setting's default
        stored = dataclasses.asdict(make(**run["settings"]))
    except (TypeError, ValueError) as e:
        raise CLIError(f"{out}: the run's stored settings are not valid here: {e}") from None
    return resumed_settings(make, given, stored, out), run


def train(args: argparse.Namespace) -> int:
    with training_processes():  # under torchrun: data parallel, process 0 alone prints
        set_threads(args)
        out = Path(args.out)
        check_out_folder(out)
        with user_errors():
            return _train_web(args, out) if args.task == "web" else _train_items(args, out)


def _train_items(args: argparse.Namespace, out: Path) -> int:
    from fastgen.recipes.irgan import DataSpec, Settings, train_run
    settings, run = _settings(Settings, "items", args, out)
    if run is None:
        spec = DataSpec(args.split or "u1", args.data, settings.seed)
    else:
        data = run["data"]
        check_resume_flags(out, differing_flags({"split": args.split, "data": args.data},
                                                {"split": data["split"], "data": data["path"]}), "--rounds")
        spec = DataSpec(data["split"], data["path"], settings.seed)
    times = train_run(settings, spec, out, resume=args.resume, baselines=not args.no_baselines)
    print(" ".join(f"{name} {seconds:.1f} s" for name, seconds in times.items()))
    print(f"run folder: {out}; `fastgen eval irgan --checkpoint {out}` reads the test split once")
    return 0


def _train_web(args: argparse.Namespace, out: Path) -> int:
    from fastgen.recipes.irgan.web import WebSettings, train_web
    settings, _ = _settings(WebSettings, "web", args, out)
    train_web(settings, args.data, out, resume=args.resume)
    print(f"run folder: {out}; `fastgen eval irgan --task web --checkpoint {out}` reads the test queries once")
    return 0


def evaluate(args: argparse.Namespace) -> int:
    from fastgen.recipes.irgan import markdown, test_report
    from fastgen.recipes.irgan.web_report import web_markdown, web_test_report
    set_threads(args)
    target = optional_path(args.out)
    check_out_file(target, "--out", JSON_SUFFIXES, "the evaluation")
    report_of, show = (web_test_report, web_markdown) if args.task == "web" else (test_report, markdown)
    with user_errors():
        report = report_of(args.checkpoint)
    out = target or Path(args.checkpoint) / "eval.json"
    write_text(out, json.dumps(report, indent=1))
    print(show(report))
    print(f"written to {out}")
    return 0


def sample(args: argparse.Namespace) -> int:
    import torch
    from fastgen.data.movielens import load_titles
    from fastgen.recipes.irgan import load_mf
    from fastgen.recipes.irgan.data import DataSpec, load_train_val
    from fastgen.recipes.irgan.folders import require_task
    with user_errors():
        require_task(Path(args.checkpoint), "items", "sample draws from item-recommendation runs only")
        model, config = load_mf(Path(args.checkpoint) / "best")
        if not 1 <= args.user <= model.config.n_users:
            raise CLIError(f"--user {args.user}: users are numbered 1..{model.config.n_users}")
        data = config["data"]
        seen = load_train_val(DataSpec(data["split"], data["path"], data["seed"])).rated_train
        u = args.user - 1
        exclude = seen.indices[seen.indptr[u]:seen.indptr[u + 1]]
        items = model.recommend(torch.tensor([u]), args.k, (torch.tensor([0, len(exclude)]), exclude))[0]
        titles = load_titles(args.items)
    print(f"top {args.k} for user {args.user} (items they rated in training left out):")
    for rank, item in enumerate(items.tolist(), 1):
        print(f"{rank:3d}. {titles[item] or '(no title)'}  [item {item + 1}]")
    return 0


class IRGANFamily(Family):
    name, title = "irgan", "IRGAN"
    verbs = ("train", "eval", "sample", "bench", "demo")
    help = {"train": "IRGAN item recommendation on MovieLens-100k", "eval": "test figures of an IRGAN run",
            "sample": "a user's top-k movies from an IRGAN run", "bench": "score-and-sample item ops",
            "demo": "a short IRGAN run and its metrics beside the baselines"}
    description = {
        "train": "DNS-MF pretraining, the IRGAN rounds (D on train positives against the generator's picks, G "
                 "by REINFORCE with D's reward) and the BPR-MF baseline; each stops at its best validation "
                 "epoch. The test split is not read.",
        "eval": "Score every model of a run at its validation-chosen point on the test split (read once) and "
                "IRGAN against its DNS initialisation per user, with 95% intervals (--task web: the generator "
                "against its pretraining per query, P@k, NDCG@k and MAP).",
        "sample": "Print a user's top-k movies (titles from recbole's item file or --items u.item).",
    }
    sample_files = "text"
    demo_budget = DemoBudget(full=45, quick=15)
    demo_run = True

    def add_arguments(self, verb: str, parser: argparse.ArgumentParser) -> None:
        if verb == "train":
            _add_train_arguments(parser)
        elif verb in ("eval", "sample"):
            parser.add_argument("--checkpoint", required=True, metavar="DIR", help="a `fastgen train irgan` --out")
            if verb == "eval":
                parser.add_argument("--task", choices=("items", "web"), default="items",
                                    help="the run's task (default items; web: a `fastgen train irgan --task web` "
                                         "run, scored on its test queries)")
                parser.add_argument("--out", metavar="FILE", help="JSON to write (default: DIR/eval.json)")
            else:
                parser.add_argument("--user", type=positive_int, required=True, help="user id (1-based)")
                parser.add_argument("--k", type=positive_int, default=10, help="items (default %(default)s)")
                parser.add_argument("--items", metavar="PATH", help="u.item for titles (default: recbole's)")
            add_threads_flag(parser)

    def train(self, args):
        return train(args)

    def evaluate(self, args):
        return evaluate(args)

    def sample(self, args):
        return sample(args)

    def bench(self, args) -> str:
        try:
            from fastgen.benchmarking.irgan_ops import items_bench_markdown
        except ImportError:
            raise CLIError("bench irgan needs the score-and-sample ops (fastgen.benchmarking.irgan_ops), which "
                           "are not in this build yet") from None
        return items_bench_markdown(args.threads, args.quick)

    def demo(self, out: Path, quick: bool, budget: float):
        from fastgen.cli.irgan_demo import demo_part
        return demo_part(out, quick, budget)


FAMILY = IRGANFamily()
