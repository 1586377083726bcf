"""``fastgen train|eval|sample|bench irgan``: IRGAN item recommendation on MovieLens-100k over
fastgen.recipes.irgan (DNS pretraining, the IRGAN rounds, baselines, validation-only selection, the
test split read once by eval), and with ``--task web`` LETOR web search (fastgen.recipes.irgan.web).
The demo part is in :mod:`fastgen.cli.irgan_demo`."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from fastgen.cli.args import (CLIError, JSON_SUFFIXES, add_threads_flag, check_out_file, check_out_folder, flag,
                              non_negative_int, optional_path, positive_float, positive_int, set_threads,
                              user_errors, write_text)
from fastgen.recipes.family import DemoBudget, Family

_INT_FLAGS = {"dim": "embedding size", "pre_epochs": "DNS pretraining epochs (and the BPR baseline's)",
              "rounds": "IRGAN rounds", "d_epochs": "discriminator passes per round",
              "d_refresh": "passes between redraws of D's negatives", "g_epochs": "generator passes per round",
              "pre_batch": "pretraining pairs per step", "batch_size": "D pairs per step", "g_users": "users per G step", "candidates": "DNS negatives"}
_FLOAT_FLAGS = {"d_lr": "discriminator Adam lr", "g_lr": "generator lr (Adam, or SGD with --g-optimizer sgd)", "pre_lr": "pretraining Adam lr"}


def _add_train_arguments(m: argparse.ArgumentParser) -> None:
    from fastgen.recipes.irgan import Settings
    from fastgen.recipes.irgan.data import SPLITS
    d = Settings()
    m.add_argument("--out", required=True, metavar="DIR", help="run folder (created)")
    m.add_argument("--task", choices=("items", "web"), default="items",
                   help="items (default): MovieLens-100k recommendation; web: LETOR web search with MLP scorers "
                        "(--data a LETOR file, a fold folder or 'synthetic', needed unless --resume; its own "
                        "schedule, the flags below apply to items only)")
    m.add_argument("--split", choices=SPLITS, default="u1",
                   help="u1 (default): the official split, rebuilt as mku.sh does; random: 20%% of each "
                        "user's ratings as test, seeded")
    m.add_argument("--data", metavar="PATH", help="items: a u.data file or a folder with u.data (and "
                                                  "u1.base/u1.test) (default: the copy in the recbole wheel); "
                                                  "web: a LETOR 4.0 file, a fold folder or 'synthetic' "
                                                  "(MQ2008 is not offline)")
    m.add_argument("--seed", type=non_negative_int, default=0, help="seed (default %(default)s)")
    g = m.add_argument_group("schedule and model (defaults: the authors' schedule)")
    for name, text in _INT_FLAGS.items():
        g.add_argument(flag(name), dest=name, type=positive_int, default=getattr(d, name), metavar="N",
                       help=f"{text} (default {getattr(d, name)})")
    for name, text in _FLOAT_FLAGS.items():
        g.add_argument(flag(name), dest=name, type=positive_float, default=getattr(d, name),
                       help=f"{text} (default {getattr(d, name)})")
    g.add_argument("--reward", choices=("code", "paper"), default=d.reward,
                   help="code (default): 2(sigmoid(f) - 0.5), the authors' code; paper: log(1 + exp(f))")
    g.add_argument("--no-baseline", action="store_true", help="REINFORCE without the per-user mean baseline")
    g.add_argument("--estimator", choices=("sampled", "exact"), default=d.estimator,
                   help="sampled (default): REINFORCE with importance sampling; exact: differentiate the "
                        "expected reward over all items")
    g.add_argument("--g-optimizer", choices=("adam", "sgd"), default=d.g_optimizer,
                   help=f"the generator's optimizer (default {d.g_optimizer})")
    m.add_argument("--no-baselines", action="store_true", help="skip the BPR-MF baseline")
    m.add_argument("--resume", action="store_true", help="continue the run in --out where it stopped")
    add_threads_flag(m)


def _settings(args: argparse.Namespace):
    from fastgen.recipes.irgan import Settings
    values = {name: getattr(args, name) for name in (*_INT_FLAGS, *_FLOAT_FLAGS)}
    try:
        return Settings(**values, reward=args.reward, baseline=not args.no_baseline, estimator=args.estimator,
                        g_optimizer=args.g_optimizer, seed=args.seed)
    except ValueError as e:
        raise CLIError(str(e)) from None


def train(args: argparse.Namespace) -> int:
    from fastgen.recipes.irgan import DataSpec, train_run
    set_threads(args)
    out = Path(args.out)
    check_out_folder(out)
    if args.task == "web":
        return _train_web(args, out)
    with user_errors():
        times = train_run(_settings(args), DataSpec(args.split, args.data, args.seed), out, resume=args.resume,
                          baselines=not args.no_baselines)
    print(" ".join(f"{name} {seconds:.1f} s" for name, seconds in times.items()))
    print(f"run folder: {out}; `fastgen eval irgan --checkpoint {out}` reads the test split once")
    return 0


def _train_web(args: argparse.Namespace, out: Path) -> int:
    from fastgen.recipes.irgan.web import WebSettings, train_web
    with user_errors():
        train_web(WebSettings(seed=args.seed), args.data, out, resume=args.resume)
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
