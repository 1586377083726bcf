"""What every recipe shares about runs: the user-facing error, and finding and reading a run's
checkpoint (a ``fastgen train ... --out`` folder or its checkpoint/ subfolder)."""
from __future__ import annotations

from pathlib import Path
from typing import Union

from torch import nn

from fastgen.train import CheckpointError, load_checkpoint

RUN_FORMAT = 1


class RecipeError(ValueError):
    """A user-facing problem with a run's settings, data or checkpoint (the CLI prints it as is)."""


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
    run = ckpt.config
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
