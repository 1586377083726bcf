"""Web-search IRGAN on LETOR 4.0 text (``fastgen train irgan --task web --data PATH``).

MQ2008 is not offline here: ``--data`` takes a LETOR file (its queries split 60/20/20 into train /
validation / test, seeded), a LETOR fold folder (train.txt, vali.txt, test.txt), or ``synthetic``
(a synthetic set in LETOR format, :func:`fastgen.data.letor.synthetic_letor`, written into the run
folder). The generator is pretrained pointwise (logistic on label > 0, full-batch steps), then the
IRGAN rounds run on the Trainer exactly as for items (:mod:`.schedule`: D passes over the relevant
documents against generator picks, then G passes over the queries); the generator is kept at its
best validation NDCG@5 round (round 0 = its pretraining). Training never scores the test queries:
:func:`fastgen.recipes.irgan.web_report.web_test_report` does, once.

Data parallel (``torchrun --nproc_per_node K -m fastgen train irgan --task web``): every process takes
its shard of each batch (pretraining's full batch is padded to K equal shards, G's queries lie evenly
over the batch) and weighs it as its part of the global mean (:func:`.schedule.share_of_mean`); the
Trainer all-reduces the gradients, and process 0 alone validates, logs and writes. One process with
``micro_batches = K`` computes the same.

Run folder (resumable at every stage, like the items task's)::

    synthetic_letor.txt     the data, with --data synthetic
    pretrain/               the pointwise pretraining (Trainer: log.csv, checkpoint/)
    log.csv, checkpoint/    the IRGAN rounds (both networks and both optimizers)
    best/                   the generator at its best validation round
    eval.json               the test figures (``fastgen eval irgan --task web``)
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Optional, Union

import torch

from fastgen.data import DataError
from fastgen.data.letor import LetorQueries, read_letor, write_synthetic_letor
from fastgen.eval.ranking import means, query_metrics
from fastgen.models.irgan.letor import (MLPScorer, Pools, WebIRGAN, discriminator_loss, draw_negatives,
                                        generator_loss, pointwise_loss)
from fastgen.recipes.irgan.folders import WEB_KIND, check_irgan_folder, resumed_settings
from fastgen.recipes.irgan.schedule import (layout_refusals, no_gradient, phase_of_batch, rounds_stream,
                                           share_of_mean)
from fastgen.recipes.irgan.selection import SELECT_BY, BestOnValidation, stored_selection
from fastgen.recipes.runs import (RUN_FORMAT, RecipeError, check_resume_flags, check_same_data, data_fingerprint,
                                  differing_flags, has_checkpoint, holds_run_folder, read_checkpoint, resume_trainer)
from fastgen.train import BatchStream, Phase, TrainConfig, Trainer, derive_seed, seed_everything
from fastgen.train.distributed import main_process_first, world_size

METRICS = ("P@3", "P@5", "P@10", "NDCG@3", "NDCG@5", "NDCG@10", "MAP")
SYNTHETIC, SYNTHETIC_FILE = "synthetic", "synthetic_letor.txt"
FOLD_FILES = {"train": "train.txt", "val": "vali.txt", "test": "test.txt"}
PRETRAIN = "pretrain"
COMMAND = "fastgen train irgan --task web"


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
    seed: int = 0               # also the 60/20/20 split of a single LETOR file
    micro_batches: int = 1      # slices per process and step: one process with K computes what K processes do


# --- data --------------------------------------------------------------------------------------------

def data_source(data: str) -> str:
    """What a run description records for ``--data``: "synthetic", or the absolute path."""
    return data if data == SYNTHETIC else str(Path(data).expanduser().resolve())


def read_queries(path: Path) -> LetorQueries:
    """read_letor, every problem a RecipeError naming the file (and the line, when one is corrupt)."""
    try:
        return read_letor(path)
    except DataError as e:
        raise RecipeError(str(e)) from None
    except UnicodeDecodeError as e:
        raise RecipeError(f"{path}:{_first_undecodable_line(path)}: not UTF-8 text ({e.reason}): "
                          "a LETOR file is plain text, one document per line") from None


def _first_undecodable_line(path: Path) -> int:
    for number, line in enumerate(path.read_bytes().split(b"\n"), 1):
        try:
            line.decode("utf-8")
        except UnicodeDecodeError:
            return number
    return 0  # not reached: the whole file failed to decode


def _load(source: str, out: Path, seed: int, parts: tuple[str, ...]) -> dict[str, LetorQueries]:
    path = out / SYNTHETIC_FILE if source == SYNTHETIC else Path(source)
    if path.is_dir():
        return {part: read_queries(path / FOLD_FILES[part]) for part in parts}
    data = read_queries(path)
    order = torch.randperm(data.n_queries, generator=torch.Generator().manual_seed(seed))
    a, b = int(0.6 * len(order)), int(0.8 * len(order))
    split = {"train": order[:a], "val": order[a:b], "test": order[b:]}
    return {part: data.subset(split[part]) for part in parts}


def load_train_val(source: str, out: Path, seed: int) -> dict[str, LetorQueries]:
    """{"train", "val"}: what training and model selection read."""
    return _load(source, out, seed, ("train", "val"))


def load_test(source: str, out: Path, seed: int) -> LetorQueries:
    """The test queries: read by the report only, once, after every choice is made (tests spy on it)."""
    return _load(source, out, seed, ("test",))["test"]


def describe(source: str, out: Path, seed: int) -> str:
    if source == SYNTHETIC:
        return f"synthetic LETOR-format set ({out / SYNTHETIC_FILE}), queries split 60/20/20 (seed {seed})"
    if Path(source).is_dir():
        return f"LETOR fold {source}"
    return f"{source}, queries split 60/20/20 (seed {seed})"


def fingerprint(splits: dict[str, LetorQueries]) -> str:
    return data_fingerprint(*(t for part in ("train", "val") for t in (splits[part].features, splits[part].labels)))


def run_description(settings: WebSettings, source: str, out: Path, splits: dict[str, LetorQueries]) -> dict:
    return {"run_format": RUN_FORMAT, "kind": WEB_KIND,
            "model": {"n_features": splits["train"].features.shape[1], "hidden": settings.hidden},
            "data": {"source": source, "seed": settings.seed, "description": describe(source, out, settings.seed),
                     "fingerprint": fingerprint(splits)},
            "settings": asdict(settings), "threads": torch.get_num_threads()}


def evaluate(scorer: MLPScorer, data: LetorQueries) -> dict[str, torch.Tensor]:
    """Per-query P@k, NDCG@k and average precision of ``scorer``'s ranking of each query's documents."""
    with torch.no_grad():
        return query_metrics(scorer(data.features), data.labels, data.ptr)


def stored_run(out: Path):
    """(Checkpoint, description) of the latest stage of the web run in ``out``."""
    return read_checkpoint(out if has_checkpoint(out) else out / PRETRAIN, (WEB_KIND,), COMMAND)


# --- training ----------------------------------------------------------------------------------------

@holds_run_folder
def train_web(settings: WebSettings, data: Optional[str], out_dir: Union[str, Path], *, resume: bool = False,
              log: Callable[[str], None] = print) -> dict:
    """Pretraining, then the IRGAN rounds with selection on validation, into ``out_dir`` (``resume``:
    continue the run there exactly; ``data`` None: the run's own; only ``settings.rounds`` may differ
    from the run's, and grow). Under torch.distributed every process runs this: each takes its shards
    of every batch, process 0 alone writes, logs and validates. Returns {"seconds", "selected"}; the
    test queries are not read."""
    out = Path(out_dir)
    check_irgan_folder(out, resume, "web")
    stored = stored_run(out) if resume else None
    source = stored[1]["data"]["source"] if data is None and stored else data_source(data) if data else None
    if source is None:
        raise RecipeError("--task web needs --data: a LETOR 4.0 file, a fold folder (train.txt, vali.txt, test.txt) "
                          "or 'synthetic' (MQ2008 is not offline here)")
    if stored:  # a resumed run continues exactly as it was started: same settings (more rounds), same data
        run = stored[1]
        check_resume_flags(out, differing_flags({"data": source}, {"data": run["data"]["source"]}), "--rounds")
        # a description written before a setting existed holds that setting's default
        settings = resumed_settings(WebSettings, asdict(settings), asdict(WebSettings(**run["settings"])), out)
    with main_process_first():  # the others read the synthetic file that process 0 writes
        out.mkdir(parents=True, exist_ok=True)
        if source == SYNTHETIC and not (out / SYNTHETIC_FILE).is_file():
            write_synthetic_letor(out / SYNTHETIC_FILE, seed=settings.seed)
    splits = load_train_val(source, out, settings.seed)
    description = run_description(settings, source, out, splits)
    if stored:
        check_same_data(stored[0], description, source)
    seed_everything(settings.seed)
    model = WebIRGAN(description["model"]["n_features"], settings.hidden)
    times, start = {}, time.perf_counter()
    _pretrain(model.generator, splits["train"], settings, out / PRETRAIN, description)
    times["pretrain"] = time.perf_counter() - start
    log(f"web: {description['data']['description']}; {splits['train'].n_queries} train queries; pretraining "
        f"{times['pretrain']:.1f} s")
    start = time.perf_counter()
    _rounds(model, splits["train"], splits["val"], settings, out, description)
    times["irgan"] = time.perf_counter() - start
    selected = stored_selection(out / "best")
    log(f"web: {settings.rounds} rounds, {times['irgan']:.1f} s; validation {SELECT_BY} "
        f"{selected['val'][SELECT_BY]:.4f} at round {selected['step']}")
    return {"seconds": times, "selected": selected}


def _pretrain(scorer: MLPScorer, train: LetorQueries, settings: WebSettings, folder: Path, description: dict) -> None:
    labelled = torch.nonzero(train.labels >= 0).squeeze(1)
    n = len(labelled)
    # one full batch per step (a LETOR fold is a few thousand labelled documents), padded with -1 to
    # equal shards for the processes and micro-batches
    shards = world_size() * settings.micro_batches
    width = math.ceil(n / shards) * shards
    rows = torch.cat([labelled, torch.full((width - n,), -1)])

    def loss_fn(m, batch, generator):
        real = batch[batch >= 0]
        if len(real) == 0:
            return no_gradient(m)
        return share_of_mean(pointwise_loss(m, train.features[real], train.labels[real]), len(real), len(batch),
                             width, n)

    every = max(1, settings.pre_epochs // 6)
    config = TrainConfig(batch_size=width, epochs=settings.pre_epochs, lr=settings.pre_lr, seed=settings.seed,
                         grad_clip=None, checkpoint_every=every, log_every=every, progress=True,
                         micro_batches=settings.micro_batches)
    trainer = Trainer(scorer, loss_fn, config, out_dir=folder, model_config=description)
    if has_checkpoint(folder):
        resume_trainer(trainer, folder)
    with layout_refusals():
        trainer.fit(BatchStream(lambda epoch, generator: [rows], 1))


def _rounds(model: WebIRGAN, train: LetorQueries, val: LetorQueries, settings: WebSettings, out: Path,
            description: dict) -> Trainer:
    pools = Pools.of(train)
    queries = torch.nonzero(pools.relevant.any(1)).squeeze(1)
    pair_q, pair_slot = pools.positives()
    if len(pair_q) < settings.batch_size:
        raise RecipeError(f"{len(pair_q)} relevant training documents, fewer than one batch ({settings.batch_size})")
    negatives: dict[int, torch.Tensor] = {}

    def d_loss(m, batch, generator):
        k, rows = int(batch[1][0]), batch[2]
        if k not in negatives:  # drawn once per key with G as it is during the whole D block
            negatives.clear()
            negatives[k] = draw_negatives(m.generator, train.features, pools,
                                          torch.Generator().manual_seed(derive_seed(settings.seed, "web", k)))
        return discriminator_loss(m.discriminator, train.features, pools, pair_q[rows], pair_slot[rows],
                                  negatives[k][rows])

    def g_loss(m, batch, generator):
        rows, n = batch[2], int(batch[3][0])
        real = rows[rows >= 0]
        if len(real) == 0:
            return no_gradient(m.generator), {"reward": torch.zeros(())}
        loss, metrics = generator_loss(m.generator, m.discriminator, train.features, pools, real, generator,
                                       settings.reward)
        return share_of_mean(loss, len(real), len(rows), settings.batch_size, n), metrics

    # G's queries spread over the batch: every process's shard gets its share
    stream = rounds_stream(len(pair_q), queries, settings.batch_size, settings.g_queries, settings.d_epochs,
                           settings.d_refresh, settings.g_epochs, spread=True)
    phases = [Phase("D", model.discriminator, d_loss, lr=settings.d_lr),
              Phase("G", model.generator, g_loss, lr=settings.g_lr)]
    every = stream.steps_per_epoch  # one IRGAN round
    config = TrainConfig(batch_size=settings.batch_size, epochs=settings.rounds, seed=settings.seed, grad_clip=None,
                         eval_every=every, checkpoint_every=every, log_every=every, progress=True,
                         micro_batches=settings.micro_batches)
    trainer = Trainer(model, phases=phases, phase_of=phase_of_batch, config=config, out_dir=out,
                      model_config=description)
    trainer.eval_fn = BestOnValidation(out / "best", description, lambda g: means(evaluate(g, val)),
                                       lambda m: m.generator, lambda: trainer.step // every)
    if has_checkpoint(out):
        resume_trainer(trainer, out)
    else:
        trainer.evaluate()  # round 0: the pretrained generator competes too
    with layout_refusals():
        trainer.fit(stream)
    return trainer


__all__ = ["COMMAND", "METRICS", "PRETRAIN", "SYNTHETIC", "WebSettings", "data_source", "evaluate", "fingerprint",
           "load_test", "load_train_val", "read_queries", "run_description", "stored_run", "train_web"]
