"""What every family's ``fastgen train`` shares: data-parallel training under torchrun, the warning
when a resumed run changes its thread count, and the command's flow (checks, interruption, the
report at the end)."""
from __future__ import annotations

import argparse
import contextlib
import os
import sys
from pathlib import Path
from typing import Callable, Iterator

import torch

from fastgen.cli.args import (PROG, CLIError, add_threads_flag, check_out_folder, non_negative_int, positive_float,
                              positive_int, set_threads, user_errors)

MICRO_BATCHES_HELP = ("split each process's share of a batch into M slices, their gradients accumulated (less "
                      "memory; one process with M = K computes what `torchrun --nproc_per_node K` does; default 1)")


def add_image_training_flags(m: argparse.ArgumentParser, d: dict, *, eval_what: str, binarize_help: str) -> None:
    """The training flags the image families share (after --out and --data): schedule, binarisation,
    seeds, the periodic evaluation of ``eval_what`` on validation images (--max-val), checkpoints,
    micro-batches, resume and threads. ``d`` holds the defaults."""
    m.add_argument("--epochs", type=positive_int, help=f"epochs in total (default {d['epochs']}; "
                                                        "with --resume: the run's, or more)")
    m.add_argument("--batch-size", type=positive_int, metavar="B", help=f"default {d['batch_size']}")
    m.add_argument("--lr", type=positive_float, help=f"Adam learning rate (default {d['lr']})")
    m.add_argument("--grad-clip", type=positive_float, metavar="NORM",
                   help=f"clip the gradient's global norm (default {d['grad_clip']})")
    m.add_argument("--binarize", choices=("dynamic", "fixed", "threshold"), help=binarize_help)
    m.add_argument("--binarize-seed", type=non_negative_int, metavar="S",
                   help=f"seed of the fixed binarisation (default {d['binarize_seed']})")
    m.add_argument("--seed", type=non_negative_int, help=f"training seed (default {d['seed']})")
    m.add_argument("--max-train", type=positive_int, metavar="N", help="use the first N training images")
    m.add_argument("--max-val", type=positive_int, metavar="N",
                   help=f"validation images for the periodic {eval_what} (default {d['max_val']})")
    m.add_argument("--eval-every", type=positive_int, metavar="STEPS",
                   help="steps between validation evaluations (default: one epoch; also at the end)")
    m.add_argument("--checkpoint-every", type=positive_int, metavar="STEPS",
                   help="steps between checkpoints (default: one epoch; also at the end)")
    m.add_argument("--micro-batches", type=positive_int, metavar="M", help=MICRO_BATCHES_HELP)
    m.add_argument("--resume", action="store_true",
                   help="continue the run in --out exactly where its checkpoint stopped")
    add_threads_flag(m)


def resumed_train_config(args: argparse.Namespace, kind: str, read_run: Callable, conflicts: Callable):
    """The run in --out as it was started, for ``--resume`` (only --epochs may change): checks the
    folder and the flags (``conflicts(args, kind, run, stored_train) -> problems``), warns on a thread
    change, and returns (run description, TrainConfig)."""
    from fastgen.recipes.runs import check_resume_flags, check_run_folder
    from fastgen.train import TrainConfig
    out = Path(args.out)
    check_run_folder(out, resume=True)
    ckpt, run = read_run(out, kind)
    stored_train = dict(ckpt.extra.get("config") or {})
    check_resume_flags(out, conflicts(args, kind, run, stored_train), "--epochs")
    warn_on_thread_change(run)
    if args.epochs is not None:
        stored_train["epochs"] = args.epochs
    known = set(TrainConfig.__dataclass_fields__)
    try:
        return run, TrainConfig(**{k: v for k, v in stored_train.items() if k in known})
    except (TypeError, ValueError) as e:
        raise CLIError(f"{ckpt.directory / 'trainer.json'}: the stored training settings are not valid: {e}") from None


@contextlib.contextmanager
def training_processes() -> Iterator[None]:
    """Under torchrun: join the process group (gloo: the recipes train on the CPU, and NCCL cannot
    reduce CPU tensors), let only process 0 print to stdout, and leave the group at the end. The
    Trainer then shards every batch, all-reduces the gradients and writes from process 0 only.
    A plain run: nothing happens."""
    from fastgen.train import distributed
    try:
        joined = distributed.init_from_env(backend="gloo")
    except (RuntimeError, ValueError) as e:
        raise CLIError(f"cannot join the torchrun process group: {e}") from None
    if not joined:
        yield
        return
    try:
        if distributed.is_main_process():
            yield
        else:
            with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
                yield
    finally:
        distributed.shutdown()


def warn_on_thread_change(run: dict) -> None:
    """One line on stderr when a resumed run uses another CPU thread count than it was trained with:
    parallel float reductions may then round differently, so the continuation is not bit-exact."""
    from fastgen.train.distributed import is_main_process
    trained, now = run.get("threads"), torch.get_num_threads()
    if trained is not None and trained != now and is_main_process():
        print(f"{PROG} train: warning: the run was trained with {trained} CPU thread(s), this session "
              f"uses {now}; results may differ in the last bits from an uninterrupted run "
              f"(pass --threads {trained} to continue it exactly)", file=sys.stderr)


def train_command(args: argparse.Namespace, name: str, train: Callable[[Path], object], *,
                  checkpoint_default: str, position: Callable[[dict], str], length_flag: str,
                  report: Callable[[object], object], done: str) -> int:
    """``fastgen train <name>``: check --out, run ``train(out)`` (data-parallel under torchrun; the
    recipe's user errors become CLIError), and print what happened. ``position(summary)`` says where
    a finished run stands, ``length_flag`` is the flag that lengthens it, ``report(result)`` prints
    a session's training, ``done`` follows the run folder's line."""
    with training_processes():
        set_threads(args)
        out = Path(args.out)
        check_out_folder(out)
        with user_errors():
            try:
                result = train(out)
            except KeyboardInterrupt:
                print(f"\n{PROG} train: interrupted; `fastgen train {name} --out {out} --resume` continues from "
                      f"the last checkpoint (written every --checkpoint-every steps, default {checkpoint_default})",
                      file=sys.stderr)
                return 130
        summary = result.summary
        if summary["steps_this_session"] == 0:
            print(f"nothing to train: the run is already at step {position(summary)}; pass a larger "
                  f"{length_flag} to continue it")
        else:
            report(result)
        print(f"run folder: {out} (log.csv, summary.json, checkpoint/){done}")
        return 0
