"""Web-search IRGAN on LETOR 4.0 text (``fastgen train irgan --task web --data PATH``).

MQ2008 is not offline here: ``--data`` takes a LETOR file (its queries split 60/20/20 into train /
validation / test, seeded), a LETOR fold folder (train.txt, vali.txt, test.txt), or ``synthetic``
(a synthetic set in LETOR format, :func:`fastgen.data.letor.synthetic_letor`, written into the run
folder). The generator is pretrained pointwise (logistic on label > 0), then the IRGAN rounds run
on the Trainer exactly as for items (:mod:`.schedule`: D passes over the relevant documents against
generator picks, then G passes over the queries); the generator is kept at its best validation
NDCG@5 round (round 0 = its pretraining), and the test queries are scored once, at the end.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Union

import torch

from fastgen.data import DataError
from fastgen.data.letor import LetorQueries, read_letor, write_synthetic_letor
from fastgen.eval.ranking import means, paired_difference, query_metrics
from fastgen.models.irgan.letor import Pools, WebIRGAN, discriminator_loss, draw_negatives, generator_loss, pointwise_loss
from fastgen.recipes.irgan.schedule import phase_of_batch, rounds_stream
from fastgen.recipes.runs import RecipeError, check_run_folder, holds_run_folder
from fastgen.train import Phase, TrainConfig, Trainer, derive_seed, seed_everything
from fastgen._atomic import write_json_atomic

SELECT_BY = "NDCG@5"
METRICS = ("P@3", "P@5", "P@10", "NDCG@3", "NDCG@5", "NDCG@10", "MAP")


@dataclass(frozen=True)
class WebSettings:
    hidden: int = 46            # the authors' MLP: one tanh layer as wide as the features
    pre_epochs: int = 300       # full-batch steps
    pre_lr: float = 1e-2
    rounds: int = 5
    d_epochs: int = 10
    d_refresh: int = 5
    g_epochs: int = 10
    batch_size: int = 64        # D pairs per step
    g_queries: int = 16         # queries per G step
    d_lr: float = 1e-3
    g_lr: float = 1e-4
    reward: str = "paper"
    seed: int = 0


def load_splits(data: str, out: Path, seed: int) -> tuple[dict[str, LetorQueries], str]:
    """({"train", "val", "test"} -> queries, description)."""
    if data == "synthetic":
        path = write_synthetic_letor(out / "synthetic_letor.txt", seed=seed)
        return _split(read_letor(path), seed), f"synthetic LETOR-format set ({path}), queries split 60/20/20"
    path = Path(data)
    if path.is_dir():
        names = {"train": "train.txt", "val": "vali.txt", "test": "test.txt"}
        return {k: read_letor(path / v) for k, v in names.items()}, f"LETOR fold {path}"
    return _split(read_letor(path), seed), f"{path}, queries split 60/20/20 (seed {seed})"


def _split(data: LetorQueries, seed: int) -> dict[str, LetorQueries]:
    order = torch.randperm(data.n_queries, generator=torch.Generator().manual_seed(seed))
    a, b = int(0.6 * len(order)), int(0.8 * len(order))
    return {"train": data.subset(order[:a]), "val": data.subset(order[a:b]), "test": data.subset(order[b:])}


def evaluate(scorer, data: LetorQueries) -> dict[str, torch.Tensor]:
    with torch.no_grad():
        return query_metrics(scorer(data.features), data.labels, data.ptr)


@holds_run_folder
def train_web(settings: WebSettings, data: str, out_dir: Union[str, Path],
              log: Callable[[str], None] = print) -> dict:
    """Pretraining, IRGAN rounds, selection on validation, then the test queries once; returns the
    report also written to ``out_dir/eval.json``."""
    out = Path(out_dir)
    check_run_folder(out, False)
    out.mkdir(parents=True, exist_ok=True)
    try:
        splits, description = load_splits(data, out, settings.seed)
    except DataError as e:
        raise RecipeError(str(e)) from None
    train, val = splits["train"], splits["val"]
    pools = Pools.of(train)
    queries = torch.nonzero(pools.relevant.any(1)).squeeze(1)
    pair_q, pair_slot = pools.positives()
    if len(pair_q) < settings.batch_size:
        raise RecipeError(f"{len(pair_q)} relevant training documents, fewer than one batch ({settings.batch_size})")
    seed_everything(settings.seed)
    model = WebIRGAN(train.features.shape[1], settings.hidden)
    start = time.perf_counter()
    _pretrain(model.generator, train, settings)
    initial = {k: v.clone() for k, v in model.generator.state_dict().items()}
    log(f"web: {description}; {train.n_queries} train queries; pretraining {time.perf_counter() - start:.1f} s")

    best = {"round": 0, "val": means(evaluate(model.generator, val)), "state": initial}
    negatives: dict[int, torch.Tensor] = {}

    def d_loss(m, batch, generator):
        k, rows = int(batch[1][0]), batch[2]
        if k not in negatives:
            negatives.clear()
            negatives[k] = draw_negatives(m.generator, train.features, pools,
                                          torch.Generator().manual_seed(derive_seed(settings.seed, "web", k)))
        return discriminator_loss(m.discriminator, train.features, pools, pair_q[rows], pair_slot[rows],
                                  negatives[k][rows])

    def g_loss(m, batch, generator):
        rows = batch[2][batch[2] >= 0]
        return generator_loss(m.generator, m.discriminator, train.features, pools, rows, generator, settings.reward)

    def keep_best(m) -> dict:
        metrics = means(evaluate(m.generator, val))
        if metrics[SELECT_BY] > best["val"][SELECT_BY]:
            best.update(round=trainer.step // stream.steps_per_epoch, val=metrics,
                        state={k: v.clone() for k, v in m.generator.state_dict().items()})
        return {f"val_{k}": v for k, v in metrics.items()}

    stream = rounds_stream(len(pair_q), queries, settings.batch_size, settings.g_queries, settings.d_epochs,
                           settings.d_refresh, settings.g_epochs)
    phases = [Phase("D", model.discriminator, d_loss, lr=settings.d_lr),
              Phase("G", model.generator, g_loss, lr=settings.g_lr)]
    config = TrainConfig(batch_size=settings.batch_size, epochs=settings.rounds, seed=settings.seed, grad_clip=None,
                         eval_every=stream.steps_per_epoch, log_every=stream.steps_per_epoch, progress=True)
    trainer = Trainer(model, phases=phases, phase_of=phase_of_batch, config=config, out_dir=out, eval_fn=keep_best)
    trainer.fit(stream)
    log(f"web: {settings.rounds} rounds, {time.perf_counter() - start:.1f} s in all; validation {SELECT_BY} "
        f"{best['val'][SELECT_BY]:.4f} at round {best['round']}")

    # the test queries, read once: the selected generator against its own pretraining
    test = splits["test"]
    model.generator.load_state_dict(best["state"])
    irgan = evaluate(model.generator, test)
    model.generator.load_state_dict(initial)
    pretrained = evaluate(model.generator, test)
    report = {"task": "web", "data": description, "settings": asdict(settings), "selected_round": best["round"],
              "val": best["val"], "test_queries": len(irgan["MAP"]),
              "models": {"IRGAN generator": means(irgan), "pointwise MLP (its initialisation)": means(pretrained)},
              "paired": {m: vars(paired_difference(irgan[m], pretrained[m])) for m in METRICS}
              if len(irgan["MAP"]) >= 2 else {}}
    write_json_atomic(out / "eval.json", report)
    return report


def _pretrain(scorer, train: LetorQueries, settings: WebSettings) -> None:
    optimizer = torch.optim.Adam(scorer.parameters(), lr=settings.pre_lr)
    for _ in range(settings.pre_epochs):  # full batch: a LETOR fold is a few thousand labelled documents
        optimizer.zero_grad()
        pointwise_loss(scorer, train.features, train.labels).backward()
        optimizer.step()


def markdown(report: dict) -> str:
    lines = [f"Web search ({report['data']}), {report['test_queries']} test queries; generator chosen at round "
             f"{report['selected_round']} by validation {SELECT_BY}:", "",
             "| model | " + " | ".join(METRICS) + " |", "|---|" + "---:|" * len(METRICS)]
    for name, values in report["models"].items():
        lines.append(f"| {name} | " + " | ".join(f"{values[m]:.4f}" for m in METRICS) + " |")
    return "\n".join(lines)


__all__ = ["METRICS", "WebSettings", "load_splits", "markdown", "train_web"]
