"""The DRAW and AlignDRAW parts of ``fastgen demo``: a short training run of each into OUT/<kind>-run,
then samples, the canvas animation and the training curve."""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from fastgen.cli.args import PROG
from fastgen.cli.demo import clear_demo_run, demo_run_dir
from fastgen.cli.draw import TRAIN_DEFAULTS, recipes, report_training


# The demo's training runs: small configs sized for ~1 minute (DRAW) and ~1.5 minutes (AlignDRAW) on
# 2 cores ("full"), or ~10 s ("quick"). Tests shrink these further.
@dataclass(frozen=True)
class DemoRun:
    model: dict                   # overrides of the paper's config (fastgen.recipes.draw.make_config)
    epochs: int
    batch_size: int
    lr: float
    max_train: Optional[int]
    max_val: int
    samples: int                  # DRAW: images in the grid; AlignDRAW: samples per caption


DEMO_DRAW = {
    "quick": DemoRun(dict(T=10, enc_size=128, dec_size=128, z_size=20, read_N=5, write_N=5),
                     epochs=2, batch_size=32, lr=3e-3, max_train=None, max_val=500, samples=64),
    "full": DemoRun(dict(T=10, enc_size=128, dec_size=128, z_size=20, read_N=5, write_N=5),
                    epochs=20, batch_size=64, lr=3e-3, max_train=None, max_val=1000, samples=64),
}
DEMO_ALIGNDRAW = {
    "quick": DemoRun(dict(T=8, infer_size=64, gen_size=64, z_size=16, read_N=5, write_N=5, embed_size=32,
                          lang_size=32, align_size=64),
                     epochs=4, batch_size=32, lr=3e-3, max_train=1000, max_val=300, samples=6),
    "full": DemoRun(dict(T=12, infer_size=128, gen_size=128, z_size=32, read_N=8, write_N=8, embed_size=32,
                         lang_size=64, align_size=128),
                    epochs=6, batch_size=64, lr=3e-3, max_train=5_000, max_val=500, samples=6),
}


def demo_captions() -> list[str]:
    """Six captions for the AlignDRAW demo: three combinations the training split may contain and
    three held out of it (one side-by-side, one stacked, one corner of each)."""
    from fastgen.data import heldout_combinations
    from fastgen.data.captions import caption_text
    held = heldout_combinations()
    captions = []
    for template, a, b in ((0, 3, 7), (2, 1, 8), (4, 5, -1)):  # seen: nudge the digits until allowed
        while (template, a, b) in held:
            a = (a + 1) % 10
        captions.append(caption_text(template, a, b))
    for template in (1, 3, 6):
        captions.append(caption_text(*min(c for c in held if c[0] == template)))
    return captions


def _curve(result, title: str):
    from fastgen.viz import history_curve
    return history_curve(result.history, result.initial_eval,
                         {"train bound (per step)": "nll_bound", "validation bound": "eval_val_nll_bound"},
                         title=title, ylabel="nats/image")


def _train(kind: str, title: str, spec, settings: DemoRun, out: Path, label: str):
    """Train one demo model into OUT/<kind>-run; returns the TrainResult."""
    from fastgen.train import TrainConfig
    run_dir = demo_run_dir(out, kind)
    clear_demo_run(run_dir)
    config = TrainConfig(batch_size=settings.batch_size, epochs=settings.epochs, lr=settings.lr,
                         grad_clip=TRAIN_DEFAULTS["grad_clip"], seed=0)
    print(f"training {title} ({label}) ...", flush=True)
    result = recipes().train_run(kind, settings.model, spec, config, run_dir, max_val=settings.max_val,
                                 log=lambda line: print("  " + line, flush=True))
    report_training(result)
    return result


def draw_part(out: Path, quick: bool, budget: float) -> list[tuple[str, Path]]:
    from fastgen.data import DataError
    from fastgen.viz.model_samples import write_draw_samples
    rec = recipes()
    settings = DEMO_DRAW["quick" if quick else "full"]
    spec, problems = None, []
    for source in ("mnist-subset", "fashion-mnist"):
        try:
            rec.load_split(rec.DataSpec(source), "val", 1)
        except DataError as e:
            problems.append(str(e))
            continue
        spec = rec.DataSpec(source, max_train=settings.max_train)
        break
    if spec is None:
        print(f"{PROG} demo: skipped DRAW training, no data: " + "; ".join(problems), file=sys.stderr)
        return []
    result = _train("draw", "DRAW", spec, settings, out,
                    f"with attention, {'quick' if quick else 'full'} demo config, on {spec.name}")
    files = [("DRAW run (log.csv, checkpoint/)", result.out_dir)]
    png, gif, curve = out / "draw_samples.png", out / "draw_canvas.gif", out / "draw_curve.png"
    write_draw_samples(result.model.eval(), settings.samples, 0, png, gif)
    _curve(result, f"DRAW on {spec.name}: NLL bound").save(curve)
    return files + [("DRAW samples", png),
                    (f"DRAW canvas over {result.model.config.T} steps, write window in red", gif),
                    ("DRAW training curve", curve)]


def aligndraw_part(out: Path, quick: bool, budget: float) -> list[tuple[str, Path]]:
    from fastgen.data import DataError
    from fastgen.viz.model_samples import write_caption_samples
    settings = DEMO_ALIGNDRAW["quick" if quick else "full"]
    spec = recipes().DataSpec("mnist-captions", max_train=settings.max_train)
    try:
        result = _train("aligndraw", "AlignDRAW", spec, settings, out,
                        f"{'quick' if quick else 'full'} demo config, on MNIST with captions")
    except DataError as e:
        print(f"{PROG} demo: skipped AlignDRAW training, no data: {e}", file=sys.stderr)
        return []
    files = [("AlignDRAW run (log.csv, checkpoint/)", result.out_dir)]
    png, gif, curve = out / "aligndraw_captions.png", out / "aligndraw_canvas.gif", out / "aligndraw_curve.png"
    write_caption_samples(result.model.eval(), result.run, demo_captions(), settings.samples, 0, png, gif)
    _curve(result, "AlignDRAW on MNIST with captions: NLL bound").save(curve)
    return files + [("AlignDRAW caption-to-image grid (incl. held-out captions)", png),
                    (f"AlignDRAW canvas over {result.model.config.T} steps", gif), ("AlignDRAW training curve", curve)]
