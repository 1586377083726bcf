"""Choosing AlignDRAW's caption-fidelity figure without looking at the test captions (GUIDE section 4).

The choices a reported fidelity depends on are made on the VALIDATION captions (MnistCaptions' "val"
split: captions outside the held-out set, drawn on the val pool's digit images, which neither
AlignDRAW nor the digit classifier trains on):

* the scorer variant (:data:`SCORERS`: localisation method and margin): the one whose score on the
  REAL validation canvases (the oracle, what a perfect generator gets) is highest, i.e. the most
  accurate instrument; the first listed wins a tie;
* the checkpoint (stopping step): the one whose samples score highest on the validation captions
  with that scorer; the earliest wins a tie.

Only then is the chosen checkpoint scored on the test and held-out captions, once
(:func:`select_and_test`). Nothing before that step reads a test-pool image or a test caption.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Optional, Sequence, Union

from .caption_fidelity import FidelityError, caption_fidelity, oracle_fidelity
from .digit_classifier import DigitClassifier

VALIDATION = "val"
# (method, margin): every variant the module docstring of fastgen.eval.caption_fidelity describes.
SCORERS: tuple[tuple[str, int], ...] = (
    ("average", 2), ("average", 1), ("average", 3),
    ("confident", 1), ("confident", 2), ("confident", 3),
    ("centre", 0),
)


@dataclass(frozen=True)
class Scorer:
    method: str
    margin: int

    def __str__(self) -> str:
        return f"{self.method}, margin {self.margin}"


def choose_scorer(classifier: DigitClassifier, max_captions: Optional[int] = None,
                  **data) -> tuple[Scorer, dict[str, float]]:
    """(the scorer variant with the best oracle score on the validation canvases, every variant's
    score by str(Scorer)). ``data``: MnistCaptions settings (data_seed, heldout_seed, heldout_fraction)."""
    rates = {}
    for method, margin in SCORERS:
        scorer = Scorer(method, margin)
        rates[scorer] = oracle_fidelity(classifier, VALIDATION, max_captions, margin, method, **data).rate
    best = max(rates, key=rates.get)  # max keeps the first of equal scores
    return best, {str(s): rate for s, rate in rates.items()}


def choose_checkpoint(rows: Sequence[Mapping]) -> Mapping:
    """The best of ``rows`` (validation results in training order, each with "split" and "rate", e.g.
    from :func:`validate`; the earliest wins a tie). FidelityError for no rows or a row of another split."""
    if not rows:
        raise FidelityError("no checkpoints to choose from")
    for row in rows:
        if row["split"] != VALIDATION:
            raise FidelityError(f"checkpoint {row.get('checkpoint', '?')}: scored on the {row['split']!r} captions; "
                                f"selection must read the {VALIDATION!r} (validation) captions only")
    return max(rows, key=lambda row: row["rate"])  # max keeps the first of equal rates


def load_aligndraw(path: Union[str, Path]):
    """(model, run description, step) of a `fastgen train aligndraw` checkpoint."""
    from fastgen.recipes.draw import load_run

    model, run, ckpt = load_run(path, "aligndraw")
    return model, run, ckpt.step


def data_settings(run: dict) -> dict:
    """The MnistCaptions settings of a run's held-out captions (caption_fidelity's keywords)."""
    held = run["data"].get("heldout_captions") or {"seed": 0, "fraction": 0.1}
    return {"heldout_seed": held["seed"], "heldout_fraction": held["fraction"]}


def _score(path, classifier: DigitClassifier, scorer: Scorer, split: str, load: Callable, **kw) -> dict:
    model, run, step = load(path)
    report = caption_fidelity(model, classifier, split, margin=scorer.margin, method=scorer.method,
                              **data_settings(run), **kw)
    return {"checkpoint": str(path), "step": step, **report.to_dict()}


def validate(path: Union[str, Path], classifier: DigitClassifier, scorer: Scorer, load: Callable = load_aligndraw,
             **kw) -> dict:
    """The checkpoint's FidelityReport dict on the validation captions, with "checkpoint" and "step".
    ``kw``: caption_fidelity's samples_per_caption, max_captions, seed."""
    return _score(path, classifier, scorer, VALIDATION, load, **kw)


def final_scores(row: Mapping, classifier: DigitClassifier, scorer: Scorer, load: Callable = load_aligndraw,
              **kw) -> dict:
    """The chosen checkpoint (a :func:`choose_checkpoint` row) on the test and held-out captions."""
    return {split: _score(row["checkpoint"], classifier, scorer, split, load, **kw) for split in ("test", "heldout")}


def validate_all(checkpoints: Sequence[Union[str, Path]], classifier: DigitClassifier, state: dict,
                 load: Callable = load_aligndraw, saved: Callable[[dict], None] = lambda state: None, **kw) -> dict:
    """Fill ``state`` (a JSON-able dict, maybe from an earlier call) with the scorer chosen on the
    validation canvases ("scorer", "scorer_oracle_val") and one validation report per checkpoint
    not yet in it ("validation", in step order), calling ``saved(state)`` after each. ``kw``:
    caption_fidelity's samples_per_caption, max_captions, seed."""
    if not checkpoints:
        raise FidelityError("no checkpoints to choose from")
    if "scorer" not in state:
        data = data_settings(load(checkpoints[0])[1])
        scorer, rates = choose_scorer(classifier, kw.get("max_captions"), **data)
        state.update(scorer={"method": scorer.method, "margin": scorer.margin}, scorer_oracle_val=rates)
    scorer = Scorer(**state["scorer"])
    rows = state.setdefault("validation", [])
    for path in checkpoints:
        if str(path) not in {row["checkpoint"] for row in rows}:
            rows.append(validate(path, classifier, scorer, load, **kw))
            rows.sort(key=lambda row: row["step"])
            saved(state)
    return state


def test_chosen(state: dict, classifier: DigitClassifier, load: Callable = load_aligndraw, **kw) -> dict:
    """Choose the checkpoint on ``state``'s validation rows (:func:`validate_all`), score it on the
    test and held-out captions, and record "chosen", "test" and "heldout" in ``state``. Refuses a
    state that already holds a test reading: the test captions are read once."""
    if "test" in state:
        raise FidelityError("the test captions were already read for this selection; they are read once")
    chosen = choose_checkpoint(state.get("validation", []))
    state["chosen"] = {"checkpoint": chosen["checkpoint"], "step": chosen["step"]}
    state.update(final_scores(chosen, classifier, Scorer(**state["scorer"]), load, **kw))
    return state


__all__ = ["SCORERS", "Scorer", "VALIDATION", "choose_checkpoint", "choose_scorer", "data_settings",
           "final_scores", "load_aligndraw", "test_chosen", "validate", "validate_all"]
