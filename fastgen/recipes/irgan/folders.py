"""IRGAN run folders of both tasks: which task a folder holds (so that an item-recommendation run is
never resumed, evaluated or sampled as a web-search one, nor the reverse), and whether a run was
started there. A run trains in stages, each a Trainer with its own checkpoint (items: dns/, the
rounds, bpr/; web: pretrain/, the rounds), so a run stopped in its first stage is resumable too,
and a new run never silently continues a stage left by another."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Optional, TypeVar

from fastgen.recipes.runs import (RecipeError, check_resume_flags, check_run_log, differing_flags, has_checkpoint,
                                  read_checkpoint)
from fastgen.train.checkpoint import CONFIG

WEB_KIND = "irgan-web"
TASK_OF_KIND = {"irgan": "items", "dns": "items", "bpr": "items", WEB_KIND: "web"}
TASK_NAMES = {"items": "an item-recommendation", "web": "a web-search"}
STAGES = {"items": ("", "dns", "bpr"), "web": ("", "pretrain")}


def stored_task(out: Path) -> Optional[str]:
    """"items" or "web": the task of the run in ``out`` (None: no run, or a description unreadable here,
    which the checkpoint loader then names)."""
    for stage in (*STAGES["items"], *STAGES["web"], "best"):
        for folder in ("checkpoint", "checkpoint.old") if stage != "best" else ("",):
            path = out / stage / folder / CONFIG
            if path.is_file():
                try:
                    return TASK_OF_KIND.get(json.loads(path.read_text(encoding="utf-8"))["config"]["kind"])
                except (ValueError, KeyError, TypeError):
                    return None
    return None


def require_task(out: Path, task: str, command: str) -> None:
    """RecipeError naming both tasks when ``out`` holds a run of the other one; ``command``: what to
    run on it instead (``{task}`` is replaced by the run's)."""
    found = stored_task(out)
    if found is not None and found != task:
        raise RecipeError(f"{out} holds {TASK_NAMES[found]} IRGAN run (--task {found}), not {TASK_NAMES[task]} "
                          f"one: {command.format(task=found)}")


def check_irgan_folder(out: Path, resume: bool, task: str) -> None:
    """RecipeError unless ``out`` suits a run of ``task``: resuming needs a checkpoint of one of its
    stages (and that task's run); a new run must not find one."""
    stages = STAGES[task] if resume else dict.fromkeys(STAGES["items"] + STAGES["web"])  # new: neither task's
    started = [out / stage for stage in stages if has_checkpoint(out / stage)]
    if resume:
        require_task(out, task, "resume it with `fastgen train irgan --task {task} --resume`")
        if not started:
            raise RecipeError(f"cannot resume: {out} holds no checkpoint of an IRGAN run ({out / 'checkpoint'}/"
                              "config.json is missing); leave out --resume to start a new run there")
        for folder in started:
            check_run_log(folder)
    elif started:
        raise RecipeError(f"{out} already holds a checkpoint ({started[0] / 'checkpoint'}): pass --resume to "
                          "continue that run, or choose another --out folder")


def stored_description(out: Path, task: str, command: str) -> dict:
    """The run description of the latest stage of ``task``'s run in ``out`` (it holds the run's settings)."""
    kinds = tuple(kind for kind, of in TASK_OF_KIND.items() if of == task)
    stage = next(stage for stage in STAGES[task] if has_checkpoint(out / stage))
    return read_checkpoint(out / stage, kinds, command)[1]


S = TypeVar("S")


def resumed_settings(make: Callable[..., S], given: dict[str, Any], stored: dict[str, Any], out: Path) -> S:
    """The settings of a resumed run: the ``stored`` ones, which the flags ``given`` (not None) must equal,
    except --rounds, which may grow (later rounds continue the run as a longer one would have run them);
    a RecipeError names every flag that differs."""
    rounds = given.get("rounds")
    problems = differing_flags({k: v for k, v in given.items() if k != "rounds"}, stored)
    if rounds is not None and rounds < stored["rounds"]:
        problems.append(f"--rounds {rounds} (the run has {stored['rounds']}; it may grow, not shrink)")
    check_resume_flags(out, problems, "--rounds, to more")
    return make(**{**stored, **{k: v for k, v in given.items() if v is not None}})


__all__ = ["STAGES", "WEB_KIND", "check_irgan_folder", "require_task", "resumed_settings", "stored_description",
           "stored_task"]
