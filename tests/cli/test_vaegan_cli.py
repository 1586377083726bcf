"""fastgen train -> eval -> sample -> resume for VAE-GAN (and --model gan) and the VAE on tiny configs
and real Fashion-MNIST images; balancing's skipped updates; one-line user errors."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import fastgen.cli as cli
import fastgen.eval.fashion_classifier as fc
from fastgen.data import FASHION_MNIST_ROOT

pytestmark = pytest.mark.skipif(not Path(FASHION_MNIST_ROOT).is_dir(),
                                reason="Fashion-MNIST (Debian dataset-fashion-mnist) is not installed")

TINY = ["--width", "4", "--hidden", "8", "--latent", "2", "--max-train", "32", "--batch-size", "16",
        "--max-val", "8", "--threads", "1"]


def train(family: str, out: Path, *extra: str) -> int:
    return cli.main(["train", family, "--out", str(out), *TINY, *extra])


@pytest.fixture(autouse=True)
def untrained_classifier(monkeypatch, restore_threads):
    """The Fréchet features of an untrained classifier: the CLI's plumbing is under test here, and the
    real classifier trains for minutes (fastgen.eval.fashion_classifier caches it)."""
    torch.manual_seed(0)
    net = fc.FashionClassifier(4).eval()
    monkeypatch.setattr(fc, "load_or_train_fashion_classifier", lambda *a, **k: (net, {}))


def test_train_eval_sample(tmp_path, capsys):
    assert train("vaegan", tmp_path / "vg", "--epochs", "1") == 0
    described = json.loads((tmp_path / "vg" / "checkpoint" / "config.json").read_text())["config"]
    assert described["kind"] == "vaegan" and described["model"]["variant"] == "vaegan"
    assert described["data"]["n_train"] == 32
    header = (tmp_path / "vg" / "log.csv").read_text().splitlines()[0].split(",")
    assert {"loss/encoder", "loss/decoder", "loss/discriminator", "eval_val_frechet", "eval_val_recon_mse"} <= set(header)
    names = {p.name for p in (tmp_path / "vg" / "checkpoint").iterdir()}
    assert {f"optimizer.{n}.safetensors" for n in ("encoder", "decoder", "discriminator")} <= names

    assert cli.main(["eval", "vaegan", "--checkpoint", str(tmp_path / "vg"), "--max-images", "20",
                     "--split", "val"]) == 0
    report = json.loads((tmp_path / "vg" / "eval_val.json").read_text())
    assert report["n"] == 20 and report["split"] == "val" and "not Inception FID" in report["note"]
    assert {"frechet", "recon_mse", "sharpness_samples", "sharpness_recon", "sharpness_data"} <= set(report)
    png = tmp_path / "s.png"
    assert cli.main(["sample", "vaegan", "--checkpoint", str(tmp_path / "vg"), "--out", str(png), "--n", "4",
                     "--reconstructions"]) == 0
    assert png.is_file() and (tmp_path / "s_recon.png").is_file()


@pytest.mark.parametrize("family, extra, networks", [("vae", [], {"encoder", "decoder"}),
                                                      ("vaegan", ["--model", "gan"], {"decoder", "discriminator"})])
def test_baselines_train_their_own_networks(tmp_path, family, extra, networks):
    assert train(family, tmp_path / "run", "--max-steps", "1", *extra) == 0
    names = {p.name.split(".")[1] for p in (tmp_path / "run" / "checkpoint").glob("optimizer.*.safetensors")}
    assert names == networks


def test_resume_is_bit_exact(tmp_path):
    assert train("vaegan", tmp_path / "whole", "--epochs", "2") == 0
    assert train("vaegan", tmp_path / "part", "--epochs", "1") == 0
    assert cli.main(["train", "vaegan", "--out", str(tmp_path / "part"), "--resume", "--epochs", "2",
                     "--threads", "1"]) == 0
    whole = load_file(str(tmp_path / "whole" / "checkpoint" / "weights.safetensors"))
    part = load_file(str(tmp_path / "part" / "checkpoint" / "weights.safetensors"))
    for name in whole:
        assert torch.equal(whole[name], part[name]), name
    for net in ("encoder", "decoder", "discriminator"):  # every optimizer's state too
        a = load_file(str(tmp_path / "whole" / "checkpoint" / f"optimizer.{net}.safetensors"))
        b = load_file(str(tmp_path / "part" / "checkpoint" / f"optimizer.{net}.safetensors"))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), net


def test_balancing_skips_the_optimizer_step(tmp_path):
    from fastgen.models.vaegan import VAEGAN, VAEGANConfig
    from fastgen.recipes.vaegan import make_phases
    from fastgen.train import TrainConfig, Trainer
    torch.manual_seed(0)
    # equilibrium far above any cost: the discriminator counts as far ahead on every step
    model = VAEGAN(VAEGANConfig(width=4, hidden=8, latent=2, balance=True, equilibrium=50.0, margin=1.0))
    before = {k: v.clone() for k, v in model.discriminator.state_dict().items()}
    dec_before = [p.clone() for p in model.decoder.parameters()]
    trainer = Trainer(model, phases=make_phases(model, 1e-3), config=TrainConfig(batch_size=8, max_steps=2,
                                                                                 progress=False))
    trainer.fit(torch.rand(16, 1, 28, 28))
    assert all(torch.equal(before[k], v) for k, v in model.discriminator.state_dict().items()
               if "running" not in k and "num_batches" not in k)
    assert trainer.optimizers["discriminator"].state == {}  # no Adam moment was ever updated
    assert any(not torch.equal(a, b) for a, b in zip(dec_before, model.decoder.parameters()))
    assert trainer.history[-1]["encoder+decoder+discriminator/dis_updated"] == 0.0


def test_user_errors(tmp_path, capsys):
    assert train("vaegan", tmp_path / "vg", "--max-steps", "1") == 0
    capsys.readouterr()
    code = cli.main(["train", "vaegan", "--out", str(tmp_path / "vg"), "--resume", "--width", "8"])
    err = capsys.readouterr().err
    assert code == 2 and "--width 8 (the run has 4)" in err and "Traceback" not in err
    assert cli.main(["eval", "vae", "--checkpoint", str(tmp_path / "vg")]) == 2
    assert "holds a vaegan model, not a vae" in capsys.readouterr().err
    assert train("vaegan", tmp_path / "bad", "--fakes", "noise") == 2
    assert "fakes must be a non-empty subset" in capsys.readouterr().err
