"""DRAW's splits: validation carved from training, test never read while training, and the same
images as PixelCNN's on the same binary source (one protocol for the comparison tables)."""
import pytest
import torch

from fastgen.recipes import draw as rec
from fastgen.recipes import pixelcnn as pix
from fastgen.train import TrainConfig


def test_validation_is_carved_from_training_and_disjoint_from_it():
    spec = rec.DataSpec("mnist-subset")
    train, val, test = (rec.load_split(spec, s) for s in ("train", "val", "test"))
    assert (len(train), len(val), len(test)) == (3600, 400, 1000)
    seen = {bytes(img.numpy()) for img in train.images}
    assert not any(bytes(img.numpy()) in seen for img in val.images[:50])  # a carve that overlaps fails
    assert "validation part (10%, permutation seed 0)" in val.description


@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_same_images_as_pixelcnn_on_the_same_source(split):
    ours = rec.load_split(rec.DataSpec("mnist-subset"), split)
    theirs = pix.load_split(pix.DataSpec("mnist-subset", binarize="dynamic"), split)
    if split == "train":  # still grey for dynamic binarisation in both
        assert torch.equal(ours.images, theirs.images)
    else:  # both binarise held-out images once, "fixed" with seed 0
        assert torch.equal(rec.binarize_split(rec.DataSpec("mnist-subset"), ours, held_out=True).images,
                           theirs.images)


def test_training_never_reads_the_test_split(tmp_path, monkeypatch):
    read = []
    real = rec.load_split

    def spy(spec, split, limit=None):
        read.append(split)
        return real(spec, split, limit)

    monkeypatch.setattr(rec, "load_split", spy)
    spec = rec.DataSpec("mnist-subset", max_train=32)
    result = rec.train_run("draw", {"T": 2, "enc_size": 8, "dec_size": 8, "z_size": 2}, spec,
                           TrainConfig(batch_size=16, epochs=1), tmp_path / "run", max_val=16, log=lambda line: None)
    assert sorted(read) == ["train", "val"]
    assert "eval_val_nll_bound" in result.summary["eval"]
    model, run, _ = rec.load_run(tmp_path / "run")
    read.clear()
    rec.evaluate_run(model, run, max_images=8)
    assert read == ["test"]


def test_old_runs_evaluate_on_test_but_not_on_validation(tmp_path):
    spec = rec.DataSpec("mnist-subset", max_train=16)
    rec.train_run("draw", {"T": 2, "enc_size": 8, "dec_size": 8, "z_size": 2}, spec,
                  TrainConfig(batch_size=16, epochs=1), tmp_path / "run", max_val=8, log=lambda line: None)
    model, run, _ = rec.load_run(tmp_path / "run")
    run["eval"]["max_test"] = run["eval"].pop("max_val")  # as written before the validation split
    assert rec.evaluate_run(model, run, max_images=4)["n"] == 4
    with pytest.raises(rec.RecipeError, match="before fastgen held out a validation split"):
        rec.evaluate_run(model, run, split="val")
