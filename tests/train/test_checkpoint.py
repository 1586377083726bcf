"""Checkpoints: exact round trips, no pickle, a clear CheckpointError for every defect, and atomic
replacement that survives a save dying at any step."""
from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import pytest
import torch
from torch import nn

import fastgen
from fastgen.train import Checkpoint, CheckpointError, FORMAT_VERSION, load_checkpoint, save_checkpoint
from fastgen.train import checkpoint as checkpoint_module


def mlp(hidden: int = 8, extra_layer: bool = False) -> nn.Module:
    layers = [nn.Linear(4, hidden), nn.Tanh(), nn.Linear(hidden, 3)]
    if extra_layer:
        layers += [nn.Tanh(), nn.Linear(3, 3)]
    return nn.Sequential(*layers)


def trained(seed: int, steps: int = 3, hidden: int = 8) -> tuple[nn.Module, torch.optim.Adam]:
    """An MLP and an Adam optimizer with real state after a few steps."""
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = mlp(hidden)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2, betas=(0.8, 0.99))
    x, y = torch.randn(16, 4, generator=gen), torch.randn(16, 3, generator=gen)
    for _ in range(steps):
        opt.zero_grad()
        nn.functional.mse_loss(model(x), y).backward()
        opt.step()
    return model, opt


def adam_step(model: nn.Module, opt: torch.optim.Optimizer) -> None:
    x = torch.linspace(-1, 1, 8 * 4).reshape(8, 4)
    opt.zero_grad()
    model(x).square().mean().backward()
    opt.step()


def assert_same_params(a: nn.Module, b: nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


@pytest.fixture
def saved(tmp_path) -> tuple[Path, nn.Module, torch.optim.Adam]:
    model, opt = trained(seed=1)
    path = save_checkpoint(tmp_path / "ckpt", model, {"hidden": 8}, opt, extra={"epoch": 2}, step=7)
    return path, model, opt


# --- round trips ----------------------------------------------------------------------------------

def test_round_trip_model_and_adam(saved):
    path, model, opt = saved
    assert sorted(p.name for p in path.iterdir()) == [
        "config.json", "optimizer.json", "optimizer.safetensors", "trainer.json", "weights.safetensors"]
    fresh, fresh_opt = trained(seed=2)  # different weights and optimizer state
    ckpt = load_checkpoint(path, fresh, fresh_opt)

    assert isinstance(ckpt, Checkpoint)
    assert (ckpt.config, ckpt.step, ckpt.extra) == ({"hidden": 8}, 7, {"epoch": 2})
    assert ckpt.format_version == FORMAT_VERSION and ckpt.fastgen_version == fastgen.__version__
    assert_same_params(model, fresh)
    saved_sd, loaded_sd = opt.state_dict(), fresh_opt.state_dict()
    assert saved_sd["param_groups"] == loaded_sd["param_groups"]  # betas come back as a tuple
    assert isinstance(loaded_sd["param_groups"][0]["betas"], tuple)
    for index, entry in saved_sd["state"].items():
        for key, value in entry.items():
            assert torch.equal(value, loaded_sd["state"][index][key]), (index, key)
    # the restored optimizer continues exactly like the original
    adam_step(model, opt)
    adam_step(fresh, fresh_opt)
    assert_same_params(model, fresh)


def test_load_without_targets_returns_state(saved):
    path, model, _ = saved
    ckpt = load_checkpoint(path)
    for k, v in model.state_dict().items():
        assert torch.equal(ckpt.model_state[k], v)
    assert set(ckpt.optimizer_state) == {"state", "param_groups"}
    assert ckpt.optimizer_state["state"][0]["exp_avg"].shape == model[0].weight.shape


def test_shared_and_non_contiguous_tensors(tmp_path):
    class Tied(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(5, 5)
            self.b = nn.Linear(5, 5)
            self.b.weight = self.a.weight                                 # tied: shared storage
            self.register_buffer("t", torch.randn(5, 3).t())              # a transposed view
            self.register_buffer("s", torch.randn(10)[::2])               # a strided slice

    model = Tied()
    save_checkpoint(tmp_path / "c", model, {})
    fresh = Tied()
    load_checkpoint(tmp_path / "c", fresh)
    assert_same_params(model, fresh)
    assert fresh.a.weight is fresh.b.weight


def test_never_unpickles(saved, monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("a checkpoint must never be unpickled")

    for module, name in ((pickle, "load"), (pickle, "loads"), (torch, "load")):
        monkeypatch.setattr(module, name, forbidden)
    path, _, _ = saved
    fresh, fresh_opt = trained(seed=3)
    load_checkpoint(path, fresh, fresh_opt)


def test_extra_must_be_json(tmp_path):
    model, _ = trained(seed=1, steps=0)
    with pytest.raises(TypeError, match="extra must be JSON-serialisable"):
        save_checkpoint(tmp_path / "c", model, {}, extra={"rng": torch.get_rng_state()})
    assert not (tmp_path / "c").exists()


# --- a clear CheckpointError for every defect -----------------------------------------------------

def test_shape_mismatch_lists_keys(saved):
    path, _, _ = saved
    other = mlp(hidden=9)
    before = {k: v.clone() for k, v in other.state_dict().items()}
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path, other)
    msg = str(info.value)
    print(msg)
    assert "weights.safetensors" in msg and "shape mismatch" in msg
    for key in ("0.weight", "0.bias", "2.weight"):
        assert key in msg
    assert "(8, 4)" in msg and "(9, 4)" in msg
    assert "2.bias" not in msg  # same shape (3,): not reported
    for k, v in other.state_dict().items():  # nothing was loaded
        assert torch.equal(v, before[k])


def test_missing_and_unexpected_keys(saved):
    path, _, _ = saved
    with pytest.raises(CheckpointError, match=r"missing keys.*4\.bias, 4\.weight") as info:
        load_checkpoint(path, mlp(extra_layer=True))
    print(info.value)
    model, _ = trained(seed=1, steps=0)
    save_checkpoint(path.parent / "big", mlp(extra_layer=True), {})
    with pytest.raises(CheckpointError, match=r"unexpected keys.*4\.bias, 4\.weight"):
        load_checkpoint(path.parent / "big", model)


@pytest.mark.parametrize("cut", [1, 100, "half"])
def test_truncated_weights(saved, cut):
    path, _, _ = saved
    weights = path / "weights.safetensors"
    size = weights.stat().st_size
    with open(weights, "r+b") as f:
        f.truncate(size // 2 if cut == "half" else size - cut)
    for verify in (True, False):  # the manifest catches it; so does the safetensors parser
        with pytest.raises(CheckpointError, match="weights.safetensors") as info:
            load_checkpoint(path, mlp(), verify=verify)
        print(info.value)
    with pytest.raises(CheckpointError, match="truncated"):
        load_checkpoint(path)


def test_corrupted_bytes_detected_by_hash(saved):
    path, _, _ = saved
    weights = path / "weights.safetensors"
    data = bytearray(weights.read_bytes())
    data[-3] ^= 0xFF  # inside a tensor: the file still parses
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"weights\.safetensors.*SHA-256"):
        load_checkpoint(path)


def test_garbage_safetensors_without_verification(saved):
    path, _, _ = saved
    (path / "optimizer.safetensors").write_bytes(b"\x00not a safetensors file")
    with pytest.raises(CheckpointError, match=r"optimizer\.safetensors.*not a readable safetensors"):
        load_checkpoint(path, verify=False)


def test_missing_config(saved):
    path, _, _ = saved
    (path / "config.json").unlink()
    with pytest.raises(CheckpointError, match=r"config\.json: file is missing") as info:
        load_checkpoint(path)
    print(info.value)


def test_missing_listed_file(saved):
    path, _, _ = saved
    (path / "trainer.json").unlink()
    with pytest.raises(CheckpointError, match=r"trainer\.json: file is missing"):
        load_checkpoint(path)


def test_missing_folder(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nowhere")


def test_truncated_config_json(saved):
    path, _, _ = saved
    config = path / "config.json"
    config.write_bytes(config.read_bytes()[:-20])
    with pytest.raises(CheckpointError, match=r"config\.json: not valid JSON"):
        load_checkpoint(path)


def test_format_version_mismatch(saved):
    path, _, _ = saved
    config = path / "config.json"
    meta = json.loads(config.read_text())
    meta["format_version"] = FORMAT_VERSION + 1
    config.write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match=rf"format version {FORMAT_VERSION + 1}.*reads version {FORMAT_VERSION}"):
        load_checkpoint(path)


def test_optimizer_mismatch(saved):
    path, _, _ = saved
    model = mlp()
    with pytest.raises(CheckpointError, match=r"optimizer\.json: saved from a Adam optimizer, loading into a SGD"):
        load_checkpoint(path, model, torch.optim.SGD(model.parameters(), lr=0.1))
    fewer = torch.optim.Adam(list(model.parameters())[:2])
    with pytest.raises(CheckpointError, match=r"parameters per group \[4\].*\[2\]"):
        load_checkpoint(path, model, fewer)
    # same count, other shapes (the model check is skipped by not passing the model)
    other = mlp(hidden=9)
    with pytest.raises(CheckpointError, match=r"param 0: checkpoint \(8, 4\), optimizer \(9, 4\)"):
        load_checkpoint(path, None, torch.optim.Adam(other.parameters()))


def test_no_optimizer_saved(tmp_path):
    model, opt = trained(seed=1)
    save_checkpoint(tmp_path / "c", model, {})
    assert load_checkpoint(tmp_path / "c").optimizer_state is None
    with pytest.raises(CheckpointError, match="holds no optimizer state"):
        load_checkpoint(tmp_path / "c", model, opt)


def _two_optimizers(model: nn.Module, seed: int) -> dict[str, torch.optim.Optimizer]:
    """An Adam over the first layer and an SGD with momentum over the last, both with real state."""
    torch.manual_seed(seed)
    opts = {"first": torch.optim.Adam(model[0].parameters(), lr=1e-2),
            "last": torch.optim.SGD(model[2].parameters(), lr=0.1, momentum=0.9)}
    for _ in range(2):
        for opt in opts.values():
            opt.zero_grad()
        model(torch.randn(8, 4)).square().mean().backward()
        for opt in opts.values():
            opt.step()
    return opts


def test_named_optimizers_round_trip(tmp_path):
    model = mlp()
    opts = _two_optimizers(model, seed=1)
    path = save_checkpoint(tmp_path / "c", model, {}, opts, step=2)
    assert sorted(p.name for p in path.iterdir()) == [
        "config.json", "optimizer.first.json", "optimizer.first.safetensors", "optimizer.last.json",
        "optimizer.last.safetensors", "trainer.json", "weights.safetensors"]
    assert json.loads((path / "config.json").read_text())["optimizers"] == ["first", "last"]

    fresh = mlp()
    fresh_opts = _two_optimizers(fresh, seed=2)  # other state in both
    ckpt = load_checkpoint(path, fresh, fresh_opts)
    assert ckpt.optimizer_state is None and set(ckpt.optimizer_states) == {"first", "last"}
    for name, opt in opts.items():
        saved_sd, loaded_sd = opt.state_dict(), fresh_opts[name].state_dict()
        assert saved_sd["param_groups"] == loaded_sd["param_groups"]
        for index, entry in saved_sd["state"].items():
            for key, value in entry.items():
                assert torch.equal(value, loaded_sd["state"][index][key]), (name, index, key)
    assert torch.equal(ckpt.optimizer_states["last"]["state"][0]["momentum_buffer"],
                       opts["last"].state_dict()["state"][0]["momentum_buffer"])


def test_named_optimizers_must_match(tmp_path, saved):
    model = mlp()
    path = save_checkpoint(tmp_path / "c", model, {}, _two_optimizers(model, seed=1))
    fresh = mlp()
    before = {k: v.clone() for k, v in fresh.state_dict().items()}
    swapped = _two_optimizers(mlp(), seed=3)
    with pytest.raises(CheckpointError, match="holds the optimizers of phases first, last, but the optimizers "
                                              "of phases first were given"):
        load_checkpoint(path, fresh, {"first": swapped["first"]})
    with pytest.raises(CheckpointError, match=r"holds the optimizers of phases first, last, but one optimizer"):
        load_checkpoint(path, fresh, torch.optim.Adam(fresh.parameters()))
    # the named optimizers are checked one by one like a single one, before anything is loaded
    wrong = {"first": torch.optim.Adam(fresh[2].parameters()), "last": swapped["last"]}
    with pytest.raises(CheckpointError, match=r"optimizer\.first\.json: .*param 0: checkpoint \(8, 4\)"):
        load_checkpoint(path, fresh, wrong)
    assert_same_params_dict(before, fresh.state_dict())
    # an old single-optimizer checkpoint into named optimizers
    old_path, _, _ = saved
    with pytest.raises(CheckpointError, match=r"holds one optimizer \(a single-loss run\)"):
        load_checkpoint(old_path, fresh, swapped)


def assert_same_params_dict(a: dict, b: dict) -> None:
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("names, error, message", [
    ({"a/b": 0}, ValueError, "must be letters, digits"),
    ({"": 0}, ValueError, "must be letters, digits"),
    ({"ok": "not an optimizer"}, TypeError, "not a torch.optim.Optimizer"),
    ({}, TypeError, "non-empty"),
])
def test_named_optimizer_arguments(tmp_path, names, error, message):
    model = mlp()
    opts = {k: (torch.optim.SGD(model.parameters(), lr=0.1) if v == 0 else v) for k, v in names.items()}
    with pytest.raises(error, match=message):
        save_checkpoint(tmp_path / "c", model, {}, opts)
    assert not (tmp_path / "c").exists()


@pytest.mark.parametrize("listed", ["first", ["../x"], [1]])
def test_malformed_optimizer_list(tmp_path, listed):
    model = mlp()
    path = save_checkpoint(tmp_path / "c", model, {}, _two_optimizers(model, seed=1))
    config = json.loads((path / "config.json").read_text())
    config["optimizers"] = listed
    (path / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="'optimizers' must be a list of optimizer names"):
        load_checkpoint(path)


# --- atomic replacement ---------------------------------------------------------------------------

def _failing_replace(fail_when):
    real = os.replace

    def replace(src, dst):
        if fail_when(Path(src), Path(dst)):
            raise OSError("simulated crash during rename")
        return real(src, dst)
    return replace


@pytest.mark.parametrize("where", ["aside", "into_place", "writing"])
def test_interrupted_save_keeps_previous_checkpoint(saved, monkeypatch, where):
    path, model, opt = saved
    newer, newer_opt = trained(seed=5)
    if where == "aside":        # step 3 fails: DIR -> DIR.old
        monkeypatch.setattr(checkpoint_module.os, "replace", _failing_replace(lambda s, d: s == path))
    elif where == "into_place":  # step 4 fails: tmp -> DIR (DIR already moved to DIR.old)
        monkeypatch.setattr(checkpoint_module.os, "replace", _failing_replace(lambda s, d: d == path))
    else:                        # the weights file cannot be written
        def broken_save(*args, **kwargs):
            raise OSError("disk full")
        monkeypatch.setattr(checkpoint_module, "save_file", broken_save)
    with pytest.raises(OSError):
        save_checkpoint(path, newer, {"hidden": 8}, newer_opt, extra={"epoch": 3}, step=9)
    monkeypatch.undo()

    leftovers = sorted(p.name for p in path.parent.iterdir())
    print(where, leftovers)
    assert not any(".tmp-" in name for name in leftovers)  # the temporary folder is cleaned up
    fresh, fresh_opt = trained(seed=2)
    if where == "into_place":
        assert leftovers == ["ckpt.old"]
        with pytest.warns(RuntimeWarning, match="interrupted"):
            ckpt = load_checkpoint(path, fresh, fresh_opt)
    else:
        assert leftovers == ["ckpt"]
        ckpt = load_checkpoint(path, fresh, fresh_opt)
    assert (ckpt.step, ckpt.extra) == (7, {"epoch": 2})
    assert_same_params(model, fresh)

    # the next save recovers: the new checkpoint is in place and nothing else is left behind
    save_checkpoint(path, newer, {"hidden": 8}, newer_opt, extra={"epoch": 3}, step=9)
    assert sorted(p.name for p in path.parent.iterdir()) == ["ckpt"]
    ckpt = load_checkpoint(path, fresh)
    assert ckpt.step == 9
    assert_same_params(newer, fresh)


def test_crash_leftovers_are_cleaned(saved):
    path, model, opt = saved
    (path.parent / ".ckpt.tmp-dead").mkdir()                # a crash while writing
    (path.parent / ".ckpt.tmp-dead" / "weights.safetensors").write_bytes(b"partial")
    os.rename(path, path.with_name("ckpt.old"))              # a crash between steps 3 and 4
    save_checkpoint(path, model, {"hidden": 8}, opt, step=8)
    assert sorted(p.name for p in path.parent.iterdir()) == ["ckpt"]
    assert load_checkpoint(path).step == 8
