"""Checkpoints as a folder of safetensors + JSON files: no pickle on the way in or out.

A checkpoint folder holds::

    weights.safetensors    model.state_dict()
    optimizer.safetensors  every tensor of optimizer.state_dict(), named state.<param index>.<key>
    optimizer.json         the rest of optimizer.state_dict() (scalars, param_groups) with a
                           {"__tensor__": name} marker where a tensor was, plus the optimizer class
                           and the shapes of the parameters it was built over
    trainer.json           ``extra``: whatever the caller needs to resume (epoch, RNG states, ...)
    config.json            written last: format version, fastgen version, step, the model config,
                           the names of the named optimizers (below), and the size and SHA-256 of
                           every other file (the manifest)

(the optimizer files only when an optimizer was given). Several optimizers, one per phase of a
multi-network Trainer, are given as ``{name: optimizer}`` and saved as ``optimizer.<name>.safetensors``
+ ``optimizer.<name>.json`` each, their names listed in config.json's ``optimizers``; a checkpoint
holds either one unnamed optimizer or named ones, and loading checks that the names match. :func:`load_checkpoint` checks the manifest
before it parses anything, so a truncated or corrupted file is reported by name.

Saving is atomic with respect to crashes. :func:`save_checkpoint` of ``DIR``:

1. writes every file into a fresh temporary folder ``.DIR.tmp-<random suffix>`` beside ``DIR`` (same file
   system), fsyncs each file and then the folder;
2. if ``DIR.old`` exists it is a leftover: when ``DIR`` also exists it is deleted, otherwise (an
   earlier save died between steps 3 and 4) it is renamed back to ``DIR`` first;
3. renames ``DIR`` -> ``DIR.old`` (when ``DIR`` exists);
4. renames that folder -> ``DIR`` and fsyncs the parent folder;
5. deletes ``DIR.old``.

A crash before step 3 leaves ``DIR`` untouched; between 3 and 4, ``DIR`` is missing and
``DIR.old`` holds the previous checkpoint, which :func:`load_checkpoint` then reads (with a
warning) and the next save restores; after 4 the new checkpoint is in place. Temporary folders
left by a crash are deleted by the next save to the same ``DIR``.

Every problem found while loading raises :class:`CheckpointError` (a ValueError) naming the file and
what was wrong with it.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional, Union

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor

FORMAT_VERSION = 1

WEIGHTS = "weights.safetensors"
CONFIG = "config.json"
OPTIMIZER_TENSORS = "optimizer.safetensors"
OPTIMIZER_JSON = "optimizer.json"
TRAINER = "trainer.json"

PathArg = Union[str, "os.PathLike[str]"]
OptimizerArg = Union[torch.optim.Optimizer, Mapping[str, torch.optim.Optimizer], None]

_OPTIMIZER_NAME = re.compile(r"[A-Za-z0-9_-]+")

_TENSOR = "__tensor__"  # JSON marker: {"__tensor__": name in optimizer.safetensors}
_TUPLE = "__tuple__"    # JSON marker: {"__tuple__": [...]}, so Adam's betas come back as a tuple


class CheckpointError(ValueError):
    """A checkpoint is missing, truncated, corrupt, of another format, or does not fit the model
    or optimizer it is loaded into. The message names the file and the problem."""


@dataclass
class Checkpoint:
    """What :func:`load_checkpoint` read. State dicts hold tensors on ``map_location``."""

    directory: Path
    config: dict                      # the model config given to save_checkpoint
    step: int
    extra: dict                       # trainer.json
    model_state: dict[str, Tensor]
    optimizer_state: Optional[dict] = None  # in torch's optimizer.state_dict() layout, or None
    optimizer_states: dict[str, dict] = field(default_factory=dict)  # the named optimizers' states
    fastgen_version: str = ""
    format_version: int = FORMAT_VERSION
    files: dict = field(default_factory=dict)  # the manifest: name -> {"bytes", "sha256"}


# --- saving ---------------------------------------------------------------------------------------

def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    """Make renames and new entries in ``path`` durable (a no-op where folders cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_json(path: Path, obj: Any) -> None:
    text = json.dumps(obj, indent=1, allow_nan=True) + "\n"
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def _write_safetensors(path: Path, tensors: dict[str, Tensor]) -> None:
    save_file(tensors, str(path), metadata={"format": "pt"})
    _fsync_file(path)


def _standalone(t: Tensor) -> Tensor:
    """A contiguous CPU copy that shares storage with nothing (safetensors rejects shared or
    strided tensors, e.g. tied weights or a transposed view)."""
    return t.detach().to("cpu", memory_format=torch.contiguous_format, copy=True)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _json_tree(obj: Any, where: str, tensors: dict[str, Tensor]) -> Any:
    """``obj`` as JSON-able data; tensors move into ``tensors`` under their dotted path."""
    if isinstance(obj, Tensor):
        if where in tensors:
            raise ValueError(f"optimizer state: two tensors map to the name {where!r}")
        tensors[where] = _standalone(obj)
        return {_TENSOR: where}
    if isinstance(obj, dict):
        out = {}
        for key, value in obj.items():
            if not isinstance(key, (str, int)) or isinstance(key, bool):
                raise TypeError(f"optimizer state: key {key!r} at {where} is not a str or int")
            out[str(key)] = _json_tree(value, f"{where}.{key}", tensors)
        return out
    if isinstance(obj, tuple):
        return {_TUPLE: [_json_tree(v, f"{where}.{i}", tensors) for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [_json_tree(v, f"{where}.{i}", tensors) for i, v in enumerate(obj)]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"optimizer state: {where} holds a {type(obj).__name__}, which a checkpoint "
                    "cannot store without pickle (only tensors, numbers, strings, lists, dicts)")


def optimizer_file_names(name: Optional[str] = None) -> tuple[str, str]:
    """(tensors file, JSON file) of the unnamed optimizer (``name`` None) or of a named one."""
    if name is None:
        return OPTIMIZER_TENSORS, OPTIMIZER_JSON
    return f"optimizer.{name}.safetensors", f"optimizer.{name}.json"


def _named(optimizer: OptimizerArg) -> dict[Optional[str], torch.optim.Optimizer]:
    """``optimizer`` as {file name key: optimizer}: {None: it} for one, {name: ...} for a mapping."""
    if optimizer is None:
        return {}
    if isinstance(optimizer, torch.optim.Optimizer):
        return {None: optimizer}
    if not isinstance(optimizer, Mapping) or not optimizer:
        raise TypeError("optimizer must be a torch.optim.Optimizer or a non-empty {name: optimizer} mapping")
    for name, value in optimizer.items():
        if not isinstance(name, str) or not _OPTIMIZER_NAME.fullmatch(name):
            raise ValueError(f"optimizer name {name!r} must be letters, digits, '_' or '-' (it names files)")
        if not isinstance(value, torch.optim.Optimizer):
            raise TypeError(f"optimizer {name!r} is a {type(value).__name__}, not a torch.optim.Optimizer")
    return dict(optimizer)


def _optimizer_files(optimizer: torch.optim.Optimizer) -> tuple[dict[str, Tensor], dict]:
    state_dict = optimizer.state_dict()
    tensors: dict[str, Tensor] = {}
    state = {str(index): _json_tree(entry, f"state.{index}", tensors)
             for index, entry in state_dict["state"].items()}
    groups = [_json_tree(group, f"param_groups.{i}", tensors)
              for i, group in enumerate(state_dict["param_groups"])]
    shapes = [list(p.shape) for group in optimizer.param_groups for p in group["params"]]
    meta = {"format_version": FORMAT_VERSION, "class": type(optimizer).__name__,
            "param_shapes": shapes, "state": state, "param_groups": groups}
    return tensors, meta


def _check_json(obj: Any, what: str) -> None:
    try:
        json.dumps(obj, allow_nan=True)
    except (TypeError, ValueError) as e:
        raise TypeError(f"{what} must be JSON-serialisable (no pickle in checkpoints): {e}") from None


def _clear_leftovers(target: Path, old: Path) -> None:
    """Step 2 of the save sequence, plus deleting temporary folders a crash left behind."""
    for stale in target.parent.glob(f".{target.name}.tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)
    if old.exists():
        if target.exists():
            shutil.rmtree(old)
        else:  # an earlier save died after moving the checkpoint aside: put it back
            os.replace(old, target)


def save_checkpoint(directory: PathArg, model: torch.nn.Module, config: dict,
                    optimizer: OptimizerArg = None,
                    extra: Optional[dict] = None, step: int = 0) -> Path:
    """Atomically write ``model`` (+ ``optimizer``, + ``extra``) as a checkpoint folder.

    ``optimizer`` is one optimizer or ``{name: optimizer}`` (one per phase of a Trainer).

    ``config`` is the model's configuration (JSON-serialisable; enough to rebuild the model) and
    ``extra`` anything else needed to resume (JSON-serialisable; tensors as lists or base64).
    Replaces an existing checkpoint at ``directory`` without ever leaving no loadable checkpoint
    behind; see the module docstring for the exact sequence. Returns the folder's path.
    """
    import fastgen

    target = Path(directory).absolute()
    old = target.with_name(target.name + ".old")
    extra = {} if extra is None else extra
    _check_json(config, "config")
    _check_json(extra, "extra")
    step = int(step)
    optimizers = _named(optimizer)

    target.parent.mkdir(parents=True, exist_ok=True)
    _clear_leftovers(target, old)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        _write_safetensors(tmp / WEIGHTS, {k: _standalone(v) for k, v in model.state_dict().items()})
        for name, opt in optimizers.items():
            tensors_file, json_file = optimizer_file_names(name)
            tensors, meta = _optimizer_files(opt)
            _write_safetensors(tmp / tensors_file, tensors)
            _write_json(tmp / json_file, meta)
        _write_json(tmp / TRAINER, extra)
        manifest = {p.name: {"bytes": p.stat().st_size, "sha256": _sha256(p)}
                    for p in sorted(tmp.iterdir())}
        named = [name for name in optimizers if name is not None]
        _write_json(tmp / CONFIG, {
            "format_version": FORMAT_VERSION,
            "fastgen_version": fastgen.__version__,
            "step": step,
            "config": config,
            **({"optimizers": named} if named else {}),
            "files": manifest,
        })
        _fsync_dir(tmp)
        if target.exists():
            os.replace(target, old)  # step 3
        os.replace(tmp, target)      # step 4
        _fsync_dir(target.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(old, ignore_errors=True)  # step 5
    return target


# --- loading --------------------------------------------------------------------------------------

def _read_json(path: Path) -> dict:
    if not path.is_file():
        raise CheckpointError(f"{path}: file is missing")
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}: not valid JSON (corrupt or truncated?): {e}") from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: expected a JSON object, found {type(obj).__name__}")
    return obj


def _read_safetensors(path: Path, device: str) -> dict[str, Tensor]:
    if not path.is_file():
        raise CheckpointError(f"{path}: file is missing")
    try:
        return load_file(str(path), device=device)
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{path}: not a readable safetensors file (corrupt or truncated?): "
                              f"{e}") from None


def _member(directory: Path, name: Any) -> Path:
    """``directory / name`` for a plain file name that stays inside the checkpoint folder (also
    through symlinks), so a crafted manifest cannot make us stat, hash or read files elsewhere."""
    if not isinstance(name, str) or name in ("", ".", "..") or "\0" in name or Path(name).name != name:
        raise CheckpointError(f"{directory / CONFIG}: {name!r} is not a plain file name (a checkpoint "
                              "lists only files inside its own folder)")
    path = directory / name
    resolved, root = path.resolve(), directory.resolve()
    if root not in resolved.parents:
        raise CheckpointError(f"{path}: a symbolic link to {resolved}, outside the checkpoint folder")
    return path


def _verify_files(directory: Path, manifest: dict) -> None:
    if not isinstance(manifest, dict):
        raise CheckpointError(f"{directory / CONFIG}: 'files' must be an object, found "
                              f"{type(manifest).__name__}")
    for name, expected in manifest.items():
        path = _member(directory, name)
        if not isinstance(expected, dict):
            raise CheckpointError(f"{directory / CONFIG}: manifest entry for {name!r} is malformed")
        if not path.is_file():
            raise CheckpointError(f"{path}: file is missing (listed in {CONFIG})")
        size = path.stat().st_size
        if size != expected.get("bytes"):
            raise CheckpointError(f"{path}: {size} bytes, but {CONFIG} recorded {expected.get('bytes')}"
                                  " (truncated or overwritten)")
        if _sha256(path) != expected.get("sha256"):
            raise CheckpointError(f"{path}: SHA-256 does not match the one recorded in {CONFIG} "
                                  "(the file is corrupt)")


def _from_json_tree(obj: Any, tensors: dict[str, Tensor], path: Path, tensors_file: str) -> Any:
    if isinstance(obj, dict):
        if set(obj) == {_TENSOR}:
            name = obj[_TENSOR]
            if name not in tensors:
                raise CheckpointError(f"{path}: refers to tensor {name!r}, which "
                                      f"{tensors_file} does not hold")
            return tensors[name]
        if set(obj) == {_TUPLE}:
            return tuple(_from_json_tree(v, tensors, path, tensors_file) for v in obj[_TUPLE])
        return {k: _from_json_tree(v, tensors, path, tensors_file) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_from_json_tree(v, tensors, path, tensors_file) for v in obj]
    return obj


def _read_optimizer(directory: Path, device: str, name: Optional[str] = None) -> tuple[dict, dict]:
    """(torch optimizer state dict, its JSON file) read back from an optimizer's two files."""
    tensors_file, json_file = optimizer_file_names(name)
    meta_path = _member(directory, json_file)
    meta = _read_json(meta_path)
    tensors = _read_safetensors(_member(directory, tensors_file), device)
    missing = [k for k in ("class", "param_shapes", "state", "param_groups") if k not in meta]
    if missing or not isinstance(meta["state"], dict) or not isinstance(meta["param_groups"], list):
        raise CheckpointError(f"{meta_path}: malformed optimizer state (missing or mistyped: "
                              f"{', '.join(missing) or 'state / param_groups'})")
    if not all(index.isdigit() for index in meta["state"]):
        raise CheckpointError(f"{meta_path}: 'state' keys must be parameter indices")
    state = {int(index): _from_json_tree(entry, tensors, meta_path, tensors_file)
             for index, entry in meta["state"].items()}
    groups = _from_json_tree(meta["param_groups"], tensors, meta_path, tensors_file)
    return {"state": state, "param_groups": groups}, meta


def _check_model(model: torch.nn.Module, state: dict[str, Tensor], path: Path) -> None:
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    shapes = [f"{k}: checkpoint {tuple(state[k].shape)}, model {tuple(expected[k].shape)}"
              for k in expected if k in state and state[k].shape != expected[k].shape]
    problems = []
    if missing:
        problems.append("missing keys (in the model, not the checkpoint): " + ", ".join(missing))
    if unexpected:
        problems.append("unexpected keys (in the checkpoint, not the model): " + ", ".join(unexpected))
    if shapes:
        problems.append("shape mismatch: " + "; ".join(shapes))
    if problems:
        raise CheckpointError(f"{path} does not fit {type(model).__name__}:\n  " + "\n  ".join(problems))


def _check_optimizer(optimizer: torch.optim.Optimizer, state: dict, meta: dict, path: Path) -> None:
    if meta["class"] != type(optimizer).__name__:
        raise CheckpointError(f"{path}: saved from a {meta['class']} optimizer, loading into a "
                              f"{type(optimizer).__name__}")
    saved_groups = [len(g["params"]) for g in state["param_groups"]]
    groups = [len(g["params"]) for g in optimizer.param_groups]
    if saved_groups != groups:
        raise CheckpointError(f"{path}: parameters per group {saved_groups} in the checkpoint, "
                              f"{groups} in the optimizer")
    shapes = [list(p.shape) for g in optimizer.param_groups for p in g["params"]]
    wrong = [f"param {i}: checkpoint {tuple(a)}, optimizer {tuple(b)}"
             for i, (a, b) in enumerate(zip(meta["param_shapes"], shapes)) if list(a) != b]
    if wrong or len(meta["param_shapes"]) != len(shapes):
        raise CheckpointError(f"{path}: the optimizer's parameters differ from the checkpoint's: "
                              + ("; ".join(wrong) or f"{len(meta['param_shapes'])} vs {len(shapes)}"))


def _read_optimizers(directory: Path, meta: dict, device: str) -> dict[Optional[str], tuple[dict, dict]]:
    """Every optimizer the checkpoint holds: {None: ...} for the unnamed one, {name: ...} for named."""
    names = meta.get("optimizers", [])
    if not isinstance(names, list) or not all(isinstance(n, str) and _OPTIMIZER_NAME.fullmatch(n) for n in names):
        raise CheckpointError(f"{directory / CONFIG}: 'optimizers' must be a list of optimizer names, "
                              f"found {names!r}")
    stored = {}
    if any((directory / f).exists() for f in optimizer_file_names(None)):
        stored[None] = _read_optimizer(directory, device)
    for name in names:
        stored[name] = _read_optimizer(directory, device, name)
    return stored


def _describe(keys) -> str:
    named = [k for k in keys if k is not None]
    if named:
        return "the optimizers of phases " + ", ".join(sorted(named))
    return "one optimizer (a single-loss run)" if None in keys else "no optimizer"


def _match_optimizers(directory: Path, stored: dict, given: dict) -> None:
    if not given or set(given) == set(stored):
        return
    if not stored:
        raise CheckpointError(f"{directory}: holds no optimizer state ({OPTIMIZER_TENSORS} and "
                              f"{OPTIMIZER_JSON} are absent), but an optimizer was given")
    raise CheckpointError(f"{directory}: holds {_describe(stored)}, but {_describe(given)} "
                          f"{'was' if None in given else 'were'} given to load it into (a checkpoint "
                          "resumes only a Trainer with the same phases)")


def load_checkpoint(directory: PathArg, model: Optional[torch.nn.Module] = None,
                    optimizer: OptimizerArg = None,
                    map_location: Union[str, torch.device] = "cpu",
                    verify: bool = True) -> Checkpoint:
    """Read a checkpoint folder (safetensors + JSON only, nothing is unpickled).

    With ``model`` / ``optimizer`` given, their state is checked against the checkpoint (keys and
    shapes; optimizer class, group sizes and parameter shapes) and then loaded into them.
    ``optimizer`` is one optimizer or ``{name: optimizer}``, which must name exactly the
    checkpoint's optimizers. With ``verify`` (the default) every file's size and SHA-256 are
    checked against config.json's manifest first; without it, a damaged file is still reported
    when it fails to parse. When ``directory`` is missing but ``directory.old`` exists (a save
    died mid-swap), that one is read, with a warning. Raises :class:`CheckpointError` for every
    problem.
    """
    given = _named(optimizer)
    directory = Path(directory)
    if not directory.is_dir():
        old = directory.with_name(directory.name + ".old")
        if (old / CONFIG).is_file():
            warnings.warn(f"checkpoint {directory} is missing; reading {old}, left by a save that "
                          "was interrupted", RuntimeWarning, stacklevel=2)
            directory = old
        else:
            raise CheckpointError(f"checkpoint folder {directory} does not exist")
    device = str(map_location)

    config_path = _member(directory, CONFIG)
    if not config_path.is_file():
        raise CheckpointError(f"{config_path}: file is missing; {directory} is not a complete "
                              "fastgen checkpoint (config.json is written last, so the save that "
                              "made it may have been interrupted)")
    meta = _read_json(config_path)
    version = meta.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(f"{config_path}: checkpoint format version {version!r}, but this "
                              f"fastgen reads version {FORMAT_VERSION}")
    for key, kind in (("step", int), ("config", dict), ("files", dict)):
        if not isinstance(meta.get(key), kind):
            raise CheckpointError(f"{config_path}: '{key}' is missing or not a {kind.__name__}")
    if verify:
        _verify_files(directory, meta["files"])

    model_state = _read_safetensors(_member(directory, WEIGHTS), device)
    extra = _read_json(_member(directory, TRAINER))
    stored = _read_optimizers(directory, meta, device)

    # check everything before changing anything, so a bad checkpoint leaves model and optimizers as they were
    if model is not None:
        _check_model(model, model_state, directory / WEIGHTS)
    _match_optimizers(directory, stored, given)
    for key, opt in given.items():
        _check_optimizer(opt, *stored[key], directory / optimizer_file_names(key)[1])
    if model is not None:
        model.load_state_dict(model_state)
    for key, opt in given.items():
        try:
            opt.load_state_dict(stored[key][0])
        except (ValueError, KeyError, RuntimeError) as e:
            raise CheckpointError(f"{directory / optimizer_file_names(key)[1]}: does not fit "
                                  f"{type(opt).__name__}: {e}") from None

    return Checkpoint(directory=directory, config=meta["config"], step=meta["step"], extra=extra,
                      model_state=model_state, optimizer_state=stored[None][0] if None in stored else None,
                      optimizer_states={k: state for k, (state, _) in stored.items() if k is not None},
                      fastgen_version=str(meta.get("fastgen_version", "")),
                      format_version=version, files=meta["files"])


__all__ = ["Checkpoint", "CheckpointError", "FORMAT_VERSION", "load_checkpoint", "optimizer_file_names",
           "save_checkpoint"]
