"""The family table drives the command line, the GPU report and the demo: a family registered here (one
extra registry line, no other file touched) shows up under every verb it serves, and the demo runs it
alone, timed against its budget."""
from __future__ import annotations

import re
import sys

import pytest

import fastgen.cli as cli
from fastgen.benchmarking import gpu
from fastgen.recipes import registry
from fastgen.recipes.family import DemoBudget, Family

ALL_PARTS = ("train", "eval", "sample", "bench", "gpu", "demo")


class ToyFamily(Family):
    name = "toy"
    title = "Toy"
    verbs = ALL_PARTS
    help = {part: f"toy {part} help" for part in ALL_PARTS}
    sample_files = "TXT"
    demo_budget = DemoBudget(full=7, quick=3)
    demo_run = True

    def __init__(self):
        self.calls = []

    def add_arguments(self, verb, parser):
        parser.add_argument("--toy-flag", type=int, default=1)

    def train(self, args):
        self.calls.append(("train", args.toy_flag))
        return 0

    def evaluate(self, args):
        self.calls.append(("eval", args.toy_flag))
        return 0

    def sample(self, args):
        self.calls.append(("sample", args.toy_flag))
        raise cli.CLIError("toy sample refused")

    def bench(self, args):
        self.calls.append(("bench", args.threads, args.quick, args.toy_flag))
        return "| toy | 1 |"

    def gpu_bench(self, quick):
        return f"# toy on the GPU (quick={quick})"

    def demo(self, out, quick, budget):
        self.calls.append(("demo", quick, budget))
        path = out / "toy.txt"
        path.write_text("toy")
        return [("toy file", path)]


TOY = ToyFamily()


@pytest.fixture
def toy(monkeypatch) -> ToyFamily:
    """A fresh ToyFamily, registered by one extra line of the table (and help lines wide enough to search)."""
    monkeypatch.setenv("COLUMNS", "400")
    family = ToyFamily()
    monkeypatch.setattr(sys.modules[__name__], "TOY", family)
    monkeypatch.setattr(registry, "FAMILIES", registry.FAMILIES + (f"{__name__}:TOY",))
    return family


def _help(capsys, argv) -> str:
    with pytest.raises(SystemExit) as info:
        cli.main(argv + ["--help"])
    assert info.value.code == 0
    return capsys.readouterr().out


def _today(families) -> list[str]:
    """The names among today's families, in table order (a family added later changes nothing here)."""
    return [f.name for f in families if f.name in ("attention", "draw", "aligndraw", "wavenet")]


def test_the_table():
    assert _today(registry.families()) == ["attention", "draw", "aligndraw", "wavenet"]
    assert _today(registry.families("train")) == ["draw", "aligndraw", "wavenet"]
    assert _today(registry.families("bench")) == ["attention", "draw", "wavenet"]
    assert _today(registry.families("gpu")) == ["attention", "draw", "wavenet"]
    assert _today(registry.families("demo")) == ["attention", "draw", "aligndraw", "wavenet"]
    assert registry.family("wavenet").title == "WaveNet"
    with pytest.raises(ValueError, match="unknown family 'attention' for train; choose one of draw, aligndraw"):
        registry.family("attention", "train")


def test_demo_budgets_leave_room_for_the_coming_families():
    """Issue 12: with all seven paper families in, `fastgen demo` stays under ~10 minutes on 2 cores and
    --quick under 2; the four parts today must leave room for that."""
    budgets = [f.demo_budget for f in registry.families("demo")]
    assert sum(b.full for b in budgets) <= 600 and sum(b.quick for b in budgets) <= 120
    assert all(0 < b.quick < b.full for b in budgets)


def test_a_registered_family_appears_under_every_verb(toy, capsys, tmp_path):
    top = " ".join(_help(capsys, []).split())  # argparse wraps lines as the list grows
    more = r"[\w -]+"  # families registered after today's, before the toy (titles may hyphenate: VAE-GAN)
    assert re.search(rf"train DRAW, AlignDRAW, WaveNet(, {more})*,? or Toy \(log\.csv", top), top
    assert re.search(rf"test NLL of a trained DRAW / AlignDRAW / WaveNet( / {more})* / Toy \(eval\.json\)", top), top
    assert re.search(r"samples from a trained DRAW / AlignDRAW \(PNG, GIF\), WaveNet \(WAV, PNG\),? .*or Toy \(TXT\)",
                     top), top
    assert re.search(rf"short DRAW \+ AlignDRAW \+ WaveNet( \+ {more})* \+ Toy training runs", top), top
    for verb in ("train", "eval", "sample", "bench"):
        assert f"toy {verb} help" in _help(capsys, [verb])
        assert "--toy-flag" in _help(capsys, [verb, "toy"])
    demo_help = " ".join(_help(capsys, ["demo"]).split())
    assert "toy demo help (budget 7 s, --quick 3 s)." in demo_help
    assert re.search(r"wavenet(, [\w-]+)*, toy \(default: all", demo_help), demo_help
    assert "(attention, DRAW, WaveNet, Toy)" in _help(capsys, ["bench"])  # the GPU report's sections

    assert cli.main(["train", "toy", "--toy-flag", "5"]) == 0
    assert cli.main(["eval", "toy"]) == 0
    assert cli.main(["sample", "toy", "--toy-flag", "3"]) == 2  # the family's CLIError: one line, status 2
    assert capsys.readouterr().err == "fastgen sample: toy sample refused\n"
    report = tmp_path / "toy.md"
    assert cli.main(["bench", "toy", "--quick", "--threads", "1", "2", "--out", str(report)]) == 0
    assert report.read_text() == "| toy | 1 |\n"
    assert toy.calls == [("train", 5), ("eval", 1), ("sample", 3), ("bench", (1, 2), True, 1)]
    assert list(gpu.gpu_sections())[-1] == "toy" and gpu.gpu_sections()["toy"](True) == "# toy on the GPU (quick=True)"


def test_the_demo_runs_a_registered_family_alone(toy, capsys, tmp_path):
    out = tmp_path / "demo"
    assert cli.main(["demo", "toy", "--out", str(out), "--quick"]) == 0
    assert toy.calls == [("demo", True, 3)]
    assert sorted(p.name for p in out.iterdir()) == ["toy.txt"]  # no other family's part ran
    printed = capsys.readouterr().out
    assert f"toy file: {out / 'toy.txt'}" in printed
    timing = printed[printed.index("time per part"):].splitlines()[1:]
    assert len(timing) == 1 and timing[0].strip().startswith("Toy:") and "of its 3 s budget" in timing[0]

    # its run folder is guarded like every family's: a user's folder there stops the demo before any work
    (out / "toy-run").mkdir()
    (out / "toy-run" / "notes.txt").write_text("keep")
    assert cli.main(["demo", "toy", "--out", str(out)]) == 2
    assert "toy-run exists and was not created by an earlier demo" in capsys.readouterr().err
    assert toy.calls == [("demo", True, 3)]


def test_without_its_line_the_family_is_unknown(capsys):
    for argv in (["train", "toy"], ["bench", "toy"], ["demo", "toy"]):
        with pytest.raises(SystemExit) as info:
            cli.main(argv)
        assert info.value.code == 2 and "invalid choice: 'toy'" in capsys.readouterr().err


class _Broken(ToyFamily):
    pass


UNKNOWN_PART, NO_BUDGET, NOT_A_FAMILY = _Broken(), _Broken(), object()
UNKNOWN_PART.verbs = ("train", "paint")
NO_BUDGET.demo_budget = None


@pytest.mark.parametrize("entry, problem", [
    ("UNKNOWN_PART", "serves unknown parts ['paint']"),
    ("NO_BUDGET", "has a demo part but no demo_budget"),
    ("NOT_A_FAMILY", "is a object, not a Family"),
    ("TOY", "two registry entries share a name"),
])
def test_bad_registry_entries_are_named(monkeypatch, toy, entry, problem):
    monkeypatch.setattr(registry, "FAMILIES", registry.FAMILIES + (f"{__name__}:{entry}",))
    with pytest.raises(TypeError, match=problem.replace("[", r"\[").replace("]", r"\]")):
        registry.families()


def test_run_folder_checks(tmp_path):
    from fastgen.recipes.runs import RecipeError, check_resume_flags, check_run_folder, differing_flags
    run = tmp_path / "run"
    check_run_folder(run, resume=False)  # a new run in a new folder
    with pytest.raises(RecipeError, match="cannot resume: .* holds no checkpoint .*leave out --resume"):
        check_run_folder(run, resume=True)
    (run / "checkpoint.old").mkdir(parents=True)
    (run / "checkpoint.old" / "config.json").write_text("{}")  # a checkpoint being replaced still counts
    check_run_folder(run, resume=True)
    with pytest.raises(RecipeError, match="already holds a checkpoint: pass --resume"):
        check_run_folder(run, resume=False)
    (run / "log.csv").write_text("loss\n1\n")
    with pytest.raises(RecipeError, match="log.csv is damaged"):
        check_run_folder(run, resume=True)

    problems = differing_flags({"lr": 0.5, "batch_size": None, "seed": 0, "crop": 7}, {"lr": 0.1, "seed": 0})
    assert problems == ["--lr 0.5 (the run has 0.1)", "--crop 7 (the run has None)"]
    check_resume_flags(run, [], "--steps")
    with pytest.raises(RecipeError, match=r"these flags differ from it:\n  --lr 0.5 \(the run has 0.1\)\n.*only "
                                          r"--steps may change"):
        check_resume_flags(run, problems[:1], "--steps")
