"""scikit-image's faces for VAE-GAN (fastgen.data.faces, ``fastgen train vaegan --data lfw-faces``): the
loader's splits and resize, a named error without scikit-image or its data, and train -> eval -> sample on
the faces at tiny sizes."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import fastgen.cli as cli
import fastgen.data.faces as faces
from fastgen.data import DataError, load_lfw_faces


def _has_faces() -> bool:
    try:
        faces.lfw_subset_path()
    except DataError:
        return False
    return True


needs_faces = pytest.mark.skipif(not _has_faces(), reason="scikit-image's lfw_subset.npy is not installed")


@needs_faces
def test_splits_are_seeded_disjoint_and_resized_bilinearly():
    raw = torch.from_numpy(np.load(faces.lfw_subset_path())[:100]).float().unsqueeze(1)
    train, val, every = load_lfw_faces("train"), load_lfw_faces("val"), load_lfw_faces("all", size=25)
    assert train.shape == (90, 1, 28, 28) and val.shape == (10, 1, 28, 28) and train.dtype == torch.float32
    torch.testing.assert_close(every, raw)  # size 25: the faces as stored, the first 100 (the non-faces follow)
    both = torch.cat([train, val])
    resized = F.interpolate(raw, size=(28, 28), mode="bilinear", align_corners=False)
    # every face lands in exactly one split, and the same one on every call (seeded)
    matches = (both.flatten(1)[:, None] - resized.flatten(1)[None]).abs().amax(-1) < 1e-6
    assert matches.sum(1).eq(1).all() and matches.sum(0).eq(1).all()
    torch.testing.assert_close(load_lfw_faces("val"), val)


def test_named_errors_without_scikit_image_or_its_data(monkeypatch, tmp_path):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    with pytest.raises(DataError, match="lfw-faces: scikit-image is not installed.*pip install"):
        load_lfw_faces()
    fake = importlib.machinery.ModuleSpec("skimage", None, is_package=True)
    fake.submodule_search_locations = [str(tmp_path)]
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: fake)
    with pytest.raises(DataError, match="lacks data/lfw_subset.npy"):
        load_lfw_faces()
    (tmp_path / "data").mkdir()
    np.save(tmp_path / "data" / "lfw_subset.npy", np.zeros((100, 24, 25)))
    with pytest.raises(DataError, match=r"shape \(100, 24, 25\)"):
        load_lfw_faces()
    with pytest.raises(ValueError, match="split must be one of"):
        load_lfw_faces("test")


@needs_faces
def test_train_eval_sample_on_faces(tmp_path, restore_threads, capsys):
    run = tmp_path / "faces"
    assert cli.main(["train", "vaegan", "--out", str(run), "--data", "lfw-faces", "--width", "4", "--hidden", "8",
                     "--latent", "2", "--batch-size", "30", "--max-steps", "2", "--threads", "1"]) == 0
    described = json.loads((run / "checkpoint" / "config.json").read_text())["config"]["data"]
    assert described["source"] == "lfw-faces" and described["n_train"] == 90 and described["n_val"] == 10
    assert "bilinear" in described["protocol"]
    header = (run / "log.csv").read_text().splitlines()[0].split(",")
    assert "eval_val_recon_mse" in header and "eval_val_frechet" not in header  # no clothes classifier on faces
    assert cli.main(["eval", "vaegan", "--checkpoint", str(run), "--split", "val"]) == 0
    report = json.loads((run / "eval_val.json").read_text())
    assert report["data"] == "lfw-faces" and report["n"] == 10 and "frechet" not in report
    capsys.readouterr()
    assert cli.main(["eval", "vaegan", "--checkpoint", str(run)]) == 2
    assert "lfw-faces has no test split" in capsys.readouterr().err
    png = tmp_path / "s.png"
    assert cli.main(["sample", "vaegan", "--checkpoint", str(run), "--out", str(png), "--n", "4",
                     "--reconstructions"]) == 0
    assert (tmp_path / "s_recon.png").is_file()
    assert cli.main(["sample", "vaegan", "--checkpoint", str(run), "--out", str(png), "--attribute", "1,2"]) == 2
    assert "needs class labels" in capsys.readouterr().err
    code = cli.main(["train", "vaegan", "--out", str(run), "--resume", "--data", "fashion-mnist", "--threads", "1"])
    assert code == 2 and "--data fashion-mnist (the run has lfw-faces)" in capsys.readouterr().err
