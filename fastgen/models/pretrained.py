"""``model.save_pretrained(path)`` and ``Model.from_pretrained(path)`` for every fastgen model.

A saved model is a fastgen.train checkpoint folder (weights.safetensors, config.json with the
manifest of every file's size and SHA-256, written atomically; no pickle anywhere), so the three
folders a user has load the same way: the ``--out`` folder of ``fastgen train``, its checkpoint/
subfolder, and a save_pretrained folder. config.json's "config" object describes the model as the
recipes' run descriptions do::

    {"kind": "draw", "model": {<the config dataclass's fields>}}

(a training run adds its data, evaluation and run-format entries beside them; loading reads only
these two). A model class opts in with ``class DRAW(Pretrained, nn.Module, kind="draw",
config_class=DRAWConfig)``: it must keep its config dataclass in ``self.config`` and be built by
``cls(config)``.
"""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import ClassVar, Optional, TypeVar

from fastgen.train.checkpoint import CONFIG, WEIGHTS, CheckpointError, PathArg, load_checkpoint, save_checkpoint

M = TypeVar("M", bound="Pretrained")


class Pretrained:
    """Mixin for nn.Modules: save_pretrained / from_pretrained in fastgen's checkpoint format."""

    kind: ClassVar[str]
    config_class: ClassVar[type]
    _class_names: ClassVar[dict[str, str]] = {}  # kind -> model class name, for "holds a WaveNet, not a DRAW"

    def __init_subclass__(cls, kind: Optional[str] = None, config_class: Optional[type] = None, **kwargs):
        super().__init_subclass__(**kwargs)
        if kind is None:  # a subclass of a model inherits its kind
            return
        if config_class is None:
            raise TypeError(f"{cls.__name__}: Pretrained needs config_class= beside kind=")
        cls.kind, cls.config_class = kind, config_class
        Pretrained._class_names[kind] = cls.__name__

    def save_pretrained(self, path: PathArg) -> Path:
        """Write the weights and config to the folder ``path`` (replacing a model saved there before,
        atomically); returns the folder."""
        return save_checkpoint(path, self, {"kind": self.kind, "model": asdict(self.config)})

    @classmethod
    def from_pretrained(cls: type[M], path: PathArg) -> M:
        """The model saved at ``path`` (a save_pretrained folder, a ``fastgen train --out`` folder or
        its checkpoint/ subfolder), on the CPU in eval mode, its weights in the dtype they were saved in.

        Raises CheckpointError naming the file for a missing, truncated or corrupt file, a folder that
        holds another kind of model, or a config or weights that do not build this model."""
        ckpt = load_checkpoint(_checkpoint_folder(Path(path).expanduser()))
        where = ckpt.directory / CONFIG
        description = ckpt.config
        kind = description.get("kind")
        if not isinstance(kind, str) or not isinstance(description.get("model"), dict):
            raise CheckpointError(f"{where}: holds no model description (a 'kind' name and a 'model' object)")
        if kind != cls.kind:
            held = Pretrained._class_names.get(kind, f"{kind!r} model")
            raise CheckpointError(f"{ckpt.directory}: this folder holds {_article(held)}, not {_article(cls.__name__)}")
        try:
            config = cls.config_class(**description["model"])
        except (TypeError, ValueError) as e:
            raise CheckpointError(f"{where}: invalid {cls.config_class.__name__}: {e}") from None
        model = cls(config)
        dtypes = {t.dtype for t in ckpt.model_state.values() if t.is_floating_point()}
        if len(dtypes) == 1:
            model.to(dtypes.pop())
        try:
            model.load_state_dict(ckpt.model_state)
        except RuntimeError as e:
            raise CheckpointError(f"{ckpt.directory / WEIGHTS}: does not fit the {cls.__name__} "
                                  f"its {CONFIG} describes: {e}") from None
        return model.eval()


def _article(name: str) -> str:
    return ("an " if name[0] in "AEIOU" else "a ") + name


def _checkpoint_folder(path: Path) -> Path:
    """``path`` when it holds config.json (or is not a run folder: loading then names what is
    missing), else the checkpoint/ subfolder a training run writes."""
    if not (path / CONFIG).is_file() and any((path / name).is_dir() for name in ("checkpoint", "checkpoint.old")):
        return path / "checkpoint"
    return path


__all__ = ["Pretrained"]
