"""What every command shares: the user-facing error, flag parsers, output-path checks (made before
any work, so that a mistake costs no data load, training or sampling), thread settings, and the
turning of the library's user errors into one clear line."""
from __future__ import annotations

import argparse
import contextlib
import math
import os
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

import torch

PROG = "fastgen"

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif")  # Pillow writes these
JSON_SUFFIXES = (".json",)
REPORT_SUFFIXES = (".md", ".markdown", ".txt")
GIF_SUFFIXES = (".gif",)


class CLIError(Exception):
    """A user-facing failure: printed as ``fastgen <command>: <message>``, exit status 2 (as argparse's
    usage errors)."""


# --- flag values ----------------------------------------------------------------------------------

def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if not (math.isfinite(value) and value > 0):  # inf passes "> 0" and fails at the second step
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {value}")
    return value


def non_negative_float(text: str) -> float:
    value = float(text)
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {value}")
    return value


def flag(name: str) -> str:
    """The flag of a settings field: read_N -> --read-N."""
    return "--" + name.replace("_", "-")


def given(args: argparse.Namespace, name: str, default: Any = None) -> Any:
    """The flag's value, or ``default`` when it was left out (training flags default to None so that
    --resume can tell a flag the user gave from one left alone)."""
    value = getattr(args, name, None)
    return default if value is None else value


def optional_path(text: Optional[str]) -> Optional[Path]:
    return None if text is None else Path(text)


# --- output paths ---------------------------------------------------------------------------------

def _check_writable_folder(folder: Path, flag_name: str, path: Path) -> None:
    if not os.access(folder, os.W_OK | os.X_OK):
        raise CLIError(f"{flag_name} {path}: cannot write in {folder} (permission denied)")


def _check_parents(path: Path, flag_name: str) -> None:
    """CLIError unless the nearest existing folder above ``path`` is a folder this process can write
    in (the missing ones are created there)."""
    for parent in path.absolute().parents:
        if parent.exists():
            if not parent.is_dir():
                raise CLIError(f"{flag_name} {path}: {parent} is a file, not a folder")
            _check_writable_folder(parent, flag_name, path)
            return


def check_out_folder(path: Path, flag_name: str = "--out") -> None:
    """A run folder: an existing folder this process can write in, or one it can create."""
    if path.exists() and not path.is_dir():
        raise CLIError(f"{flag_name} {path} is a file; give a folder (it is created when missing)")
    if path.is_dir():
        _check_writable_folder(path, flag_name, path)
    else:
        _check_parents(path, flag_name)


def check_out_file(path: Optional[Path], flag_name: str, suffixes: Sequence[str], what: str) -> None:
    """An output file: not a folder, named with one of ``suffixes``, in a folder that exists or can be
    created. None (the flag left out) passes."""
    if path is None:
        return
    names = " or ".join(suffixes[:3]) + (", ..." if len(suffixes) > 3 else "")
    if path.is_dir():
        raise CLIError(f"{flag_name} {path} is a folder; give a file name ending in {names}")
    if path.suffix.lower() not in suffixes:
        raise CLIError(f"{flag_name} {path}: {what} is written as {names}; give a file name with that extension")
    _check_parents(path, flag_name)


def write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")


# --- threads --------------------------------------------------------------------------------------

def default_threads() -> tuple[int, ...]:
    """1 thread and all threads, as the benchmarks report them."""
    return tuple(sorted({1, torch.get_num_threads()}))


def set_threads(args: argparse.Namespace) -> None:
    if getattr(args, "threads", None):
        torch.set_num_threads(args.threads)


def add_threads_flag(parser: argparse.ArgumentParser, help: str = "torch CPU threads") -> None:
    parser.add_argument("--threads", type=positive_int, metavar="N", help=help)


# --- the eval and sample commands' shared flags ----------------------------------------------------

def add_eval_flags(parser: argparse.ArgumentParser, trained_by: str, *, split_help: str, out_help: str) -> None:
    """What every ``fastgen eval`` of a trained run takes: --checkpoint (a ``trained_by`` --out folder),
    --split (test, the default, or val), --out (the JSON written; ``out_help`` names its default) and
    --threads. The family adds its own flags after these."""
    parser.add_argument("--checkpoint", required=True, metavar="DIR", help=f"a `{trained_by}` --out folder")
    parser.add_argument("--split", choices=("test", "val"), default="test", help=split_help)
    parser.add_argument("--out", metavar="FILE", help=out_help)
    add_threads_flag(parser)


def add_sample_flags(parser: argparse.ArgumentParser, trained_by: str, *, out_help: str, n: int) -> None:
    """What every ``fastgen sample`` of a trained run takes: --checkpoint, --out (the image, required),
    --n samples (default ``n``), --seed and --threads. The family adds its own flags after these."""
    parser.add_argument("--checkpoint", required=True, metavar="DIR", help=f"a `{trained_by}` --out folder")
    parser.add_argument("--out", required=True, metavar="PNG", help=out_help)
    parser.add_argument("--n", type=positive_int, default=n, help="samples (default %(default)s)")
    parser.add_argument("--seed", type=non_negative_int, default=0, help="sampling seed (default %(default)s)")
    add_threads_flag(parser)


# --- errors ---------------------------------------------------------------------------------------

@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn the library's user-facing errors (missing data, bad checkpoint, bad settings, a figure
    too large for memory) into CLIError, so they print as one clear line instead of a traceback."""
    from fastgen.data import DataError
    from fastgen.recipes.runs import RecipeError
    from fastgen.train import CheckpointError
    from fastgen.viz.model_samples import FigureSizeError
    try:
        yield
    except (DataError, RecipeError, CheckpointError, FigureSizeError) as e:
        raise CLIError(str(e)) from None
