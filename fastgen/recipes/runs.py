"""What every recipe shares about runs: the user-facing error, what a training run returns, the
run-folder lock it holds and the checks of its folder (a new run, or one to resume, and the flags a
resumed run may not change), and finding and reading a run's checkpoint (a ``fastgen train ...
--out`` folder or its checkpoint/ subfolder)."""
from __future__ import annotations

import contextlib
import csv
import functools
import hashlib
import inspect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, TypeVar, Union

import torch
from torch import nn

from fastgen.train import CheckpointError, load_checkpoint
from fastgen.train.distributed import is_main_process
from fastgen.train.runlock import RunLockError, lock_run_folder

RUN_FORMAT = 1


class RecipeError(ValueError):
    """A user-facing problem with a run's settings, data or checkpoint (the CLI prints it as is)."""


@dataclass
class TrainResult:
    """What a recipe's ``train_run`` returns."""

    summary: dict
    initial_eval: dict          # eval_* metrics before the first step ({} when resumed)
    history: list               # log rows written in this session
    out_dir: Path
    run: dict                   # the run description stored in the checkpoint
    model: nn.Module
    data: Any = field(default=None, repr=False)  # the data the run loaded, for evaluating or sampling
    #                                              in the same process (WaveNet: its Splits)


def has_checkpoint(out_dir: Union[str, Path]) -> bool:
    """Whether ``out_dir`` holds a run's checkpoint (or the previous one, kept while a new one is written)."""
    out = Path(out_dir)
    return (out / "checkpoint" / "config.json").is_file() or (out / "checkpoint.old" / "config.json").is_file()


def check_run_folder(out_dir: Union[str, Path], resume: bool) -> None:
    """RecipeError unless ``out_dir`` suits the run: a run to resume needs its checkpoint there (and a
    readable log.csv, which it rewrites); a new run must not overwrite one."""
    out = Path(out_dir)
    if resume and not has_checkpoint(out):
        raise RecipeError(f"cannot resume: {out} holds no checkpoint ({out / 'checkpoint'}/config.json is "
                          "missing); leave out --resume to start a new run there")
    if not resume and has_checkpoint(out):
        raise RecipeError(f"{out} already holds a checkpoint: pass --resume to continue that run, or choose "
                          "another --out folder")
    if resume:
        check_run_log(out)


def resume_trainer(trainer, out_dir: Union[str, Path]) -> None:
    """Load the run's checkpoint into ``trainer`` (a damaged one is a RecipeError naming the file)."""
    try:
        trainer.load(Path(out_dir) / "checkpoint")
    except CheckpointError as e:
        raise RecipeError(str(e)) from None


def differing_flags(given: Mapping[str, Any], stored: Mapping[str, Any]) -> list[str]:
    """``--flag value (the run has stored)`` for every setting given (not None) that differs from the
    resumed run's."""
    return [f"--{name.replace('_', '-')} {value} (the run has {stored.get(name)})"
            for name, value in given.items() if value is not None and value != stored.get(name)]


def check_resume_flags(out_dir: Union[str, Path], problems: list[str], may_change: str) -> None:
    """RecipeError listing ``problems`` (see differing_flags): a resumed run continues exactly as it
    was started; only ``may_change`` (its length) may differ."""
    if problems:
        raise RecipeError("--resume continues the run in {} exactly as it was started, but these flags differ "
                          "from it:\n  {}\nDrop them (only {} may change), or start a new run in another --out "
                          "folder.".format(out_dir, "\n  ".join(problems), may_change))


@contextlib.contextmanager
def run_folder_lock(out_dir: Union[str, Path]) -> Iterator[None]:
    """Hold ``out_dir``'s lock (fastgen.train.runlock) for the block; RecipeError when another run
    holds it. Under torch.distributed only process 0 writes the folder, so only it locks."""
    if not is_main_process():
        yield
        return
    try:
        lock = lock_run_folder(out_dir)
    except RunLockError as e:
        raise RecipeError(str(e)) from None
    with lock:
        yield


F = TypeVar("F", bound=Callable)


def holds_run_folder(train: F) -> F:
    """Decorate a recipe's ``train_run(..., out_dir, ...)`` to hold ``out_dir``'s lock while it runs,
    from its first check of the folder to its last write."""
    signature = inspect.signature(train)

    @functools.wraps(train)
    def locked(*args, **kwargs):
        with run_folder_lock(signature.bind(*args, **kwargs).arguments["out_dir"]):
            return train(*args, **kwargs)
    return locked  # type: ignore[return-value]


def find_checkpoint(path: Union[str, Path], command: str = "fastgen train") -> Path:
    """The checkpoint folder of a run: ``path`` itself when it holds config.json, else
    ``path/checkpoint`` (what ``<command> --out path`` writes)."""
    p = Path(path).expanduser()
    if (p / "config.json").is_file():
        return p
    inner = p / "checkpoint"
    if inner.is_dir() or (p / "checkpoint.old").is_dir():
        return inner
    where = f"pass the --out folder of a `{command}` run (or its checkpoint/ subfolder)"
    if not p.exists():
        raise RecipeError(f"checkpoint {p} does not exist: {where}")
    raise RecipeError(f"{p} holds no checkpoint (neither config.json nor a checkpoint/ folder): {where}")


def read_checkpoint(path: Union[str, Path], kinds: tuple[str, ...], command: str):
    """(Checkpoint, run description) of a run whose description says one of ``kinds``; nothing is built."""
    directory = find_checkpoint(path, command)
    try:
        ckpt = load_checkpoint(directory)
    except CheckpointError as e:
        raise RecipeError(str(e)) from None
    run = ckpt.config if isinstance(ckpt.config, dict) else {}
    if run.get("run_format") != RUN_FORMAT or run.get("kind") not in kinds:
        other = run.get("kind")
        hint = f" (it holds a {other} model: use `fastgen ... {other}`)" if isinstance(other, str) else ""
        raise RecipeError(f"{directory} was not written by `{command}` (no run description of format "
                          f"{RUN_FORMAT} in its config.json){hint}")
    return ckpt, run


def load_weights(model: nn.Module, ckpt) -> nn.Module:
    """The model with the checkpoint's weights, in eval mode; a clear error when they do not fit."""
    try:
        model.load_state_dict(ckpt.model_state)
    except RuntimeError as e:
        raise RecipeError(f"{ckpt.directory}: the weights do not fit the stored model config: {e}") from None
    return model.eval()


def check_run_sections(ckpt, sections: dict[str, tuple[str, ...]]) -> None:
    """RecipeError naming the first section (a JSON object) or key that the run description in the
    checkpoint's config.json lacks: a damaged or hand-edited file fails here, in one line."""
    where = ckpt.directory / "config.json"
    for section, keys in sections.items():
        value = ckpt.config.get(section)
        if not isinstance(value, dict):
            raise RecipeError(f"{where}: the run description has no {section!r} object (a damaged or edited file)")
        missing = [key for key in keys if key not in value]
        if missing:
            raise RecipeError(f"{where}: the run description's {section!r} lacks {', '.join(map(repr, missing))} "
                              "(a damaged or edited file)")


def invalid_run(ckpt, what: str, error: Exception) -> RecipeError:
    return RecipeError(f"{ckpt.directory / 'config.json'}: invalid {what} in the run description: {error}")


def data_fingerprint(*tensors) -> str:
    """sha256 over the dtype, shape and bytes of each tensor (None: skipped): the training data a run
    description records, so that --resume notices data that changed (same sizes, other values)."""
    digest = hashlib.sha256()
    for t in tensors:
        if t is not None:
            digest.update(f"{t.dtype}{tuple(t.shape)}".encode())
            digest.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy())
    return "sha256:" + digest.hexdigest()


def check_same_data(ckpt, run: dict, source: str) -> None:
    """RecipeError unless the training data of ``run`` (a new description of the run being resumed)
    has the fingerprint stored in the checkpoint's (runs written before fingerprints pass)."""
    stored = ckpt.config["data"].get("fingerprint")
    now = run["data"]["fingerprint"]
    if stored is not None and stored != now:
        raise RecipeError(f"cannot resume: the training data in {source} differ from those the run in "
                          f"{ckpt.directory.parent} was trained on (fingerprint {now[7:19]}, the run has "
                          f"{str(stored)[7:19]}); restore them, or start a new run in another --out folder")


def check_run_log(out_dir: Union[str, Path]) -> None:
    """RecipeError when the run's log.csv (which a resumed run rewrites) is not the UTF-8 table the
    Trainer wrote: a step column, and every row as wide as the header."""
    path = Path(out_dir) / "log.csv"
    if not path.is_file():
        return  # the resumed run starts a new one
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
    except (UnicodeDecodeError, csv.Error) as e:
        problem = str(e)
    else:
        width = len(rows[0]) if rows else 0
        bad = next((i for i, row in enumerate(rows[1:], 2) if len(row) != width), None)
        problem = ("no step column in its header" if rows and "step" not in rows[0] else
                   None if bad is None else f"line {bad} has {len(rows[bad - 1])} fields, the header {width}")
    if problem:
        raise RecipeError(f"{path} is damaged ({problem}); the checkpoint does not need it: move it away (the "
                          "resumed run starts a new log) or repair it, then resume")
