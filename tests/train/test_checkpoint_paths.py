"""Issue 11 item 4: a checkpoint reads only files inside its own folder. A crafted config.json
manifest (names with separators, '..', absolute paths) or a symlink to a file elsewhere is refused
before anything outside is stat'ed, hashed or read."""
from __future__ import annotations

import hashlib
import json
import os
import shutil

import pytest
import torch
from torch import nn

from fastgen.train import CheckpointError, load_checkpoint, save_checkpoint
from fastgen.train import checkpoint as checkpoint_module


@pytest.fixture
def ckpt(tmp_path):
    torch.manual_seed(0)
    model = nn.Linear(3, 2)
    opt = torch.optim.Adam(model.parameters())
    return save_checkpoint(tmp_path / "run" / "checkpoint", model, {"hidden": 2}, opt, step=1)


@pytest.fixture
def hashed(monkeypatch):
    """Every path the loader hashes."""
    seen = []
    real = checkpoint_module._sha256

    def spy(path):
        seen.append(os.path.realpath(path))
        return real(path)

    monkeypatch.setattr(checkpoint_module, "_sha256", spy)
    return seen


def _list_in_manifest(directory, name: str, source) -> None:
    """Add ``name`` to config.json's manifest with the true size and hash of ``source``, so only
    the name itself can make the load fail."""
    config = json.loads((directory / "config.json").read_text())
    config["files"][name] = {"bytes": source.stat().st_size, "sha256": hashlib.sha256(source.read_bytes()).hexdigest()}
    (directory / "config.json").write_text(json.dumps(config))


@pytest.mark.parametrize("form", ["parent", "grandparent", "absolute", "subfolder", "dotdot", "dot", "empty",
                                  "nul"])
def test_manifest_names_must_be_plain_files_in_the_folder(ckpt, tmp_path, hashed, form):
    outside = tmp_path / "outside.bin"
    outside.write_bytes(b"secret bytes elsewhere")
    (ckpt / "sub").mkdir()
    shutil.copy(outside, ckpt / "sub" / "inner.bin")
    name = {"parent": "../../outside.bin", "grandparent": "../../../" + str(tmp_path.name) + "/outside.bin",
            "absolute": str(outside), "subfolder": "sub/inner.bin", "dotdot": "..", "dot": ".", "empty": "",
            "nul": "weights.safetensors\0"}[form]
    _list_in_manifest(ckpt, name, outside)
    with pytest.raises(CheckpointError, match="not a plain file name"):
        load_checkpoint(ckpt)
    assert str(outside.resolve()) not in hashed


def test_symlink_out_of_the_folder_is_refused(ckpt, tmp_path, hashed):
    """A listed file that is a link to an identical copy elsewhere: same bytes, same hash, still refused."""
    outside = tmp_path / "weights-elsewhere.safetensors"
    shutil.move(ckpt / "weights.safetensors", outside)
    (ckpt / "weights.safetensors").symlink_to(outside)
    with pytest.raises(CheckpointError, match="outside the checkpoint folder"):
        load_checkpoint(ckpt)
    assert str(outside.resolve()) not in hashed
    with pytest.raises(CheckpointError, match="outside the checkpoint folder"):  # the unverified path too
        load_checkpoint(ckpt, verify=False)


def test_symlinked_config_out_of_the_folder_is_refused(ckpt, tmp_path):
    outside = tmp_path / "config-elsewhere.json"
    shutil.move(ckpt / "config.json", outside)
    (ckpt / "config.json").symlink_to(outside)
    with pytest.raises(CheckpointError, match="outside the checkpoint folder"):
        load_checkpoint(ckpt)


def test_symlink_within_the_folder_and_a_symlinked_folder_still_load(ckpt, tmp_path):
    (ckpt / "weights.safetensors").rename(ckpt / "weights.real")
    (ckpt / "weights.safetensors").symlink_to("weights.real")
    alias = tmp_path / "alias"
    alias.symlink_to(ckpt, target_is_directory=True)
    loaded = load_checkpoint(alias)
    assert loaded.step == 1 and set(loaded.model_state) == {"weight", "bias"}
