"""AlignDRAW caption fidelity: does each generated image show the digits its caption names, where the
caption puts them?

Protocol (issue #3): take the captions of a MnistCaptions split ("val" and "test": combinations seen
in training, on digit images of their own pools; "heldout": (template, digit) combinations never seen
in training, on test-pool digits), draw ``samples_per_caption`` images per caption from the model's
learned prior (the Bernoulli means sigmoid(c_T), as ``fastgen sample`` shows them), and for every
digit the caption names, classify the 28x28 box where the caption's template puts it with
:class:`~fastgen.eval.DigitClassifier`. A digit is correct when the classifier's label equals the
named digit. The fidelity is the fraction of named digits that are correct (1 digit per corner
caption, 2 per side-by-side / stacked caption); the fraction of images with every named digit
correct is reported as well. Whatever a reported figure depends on (the checkpoint, the
localisation variant below) is chosen on "val" (:mod:`fastgen.eval.selection`); "test" and
"heldout" are read once, for the chosen model.

Localisation: the data generator places each digit's 28x28 box with its top-left corner uniform in
the template's ranges (:data:`fastgen.data.captions.PLACEMENT`, e.g. rows 16..18 and columns 0..4
for the left digit of "A is on the left of B"). A generated digit is rarely placed exactly, so the
scorer crops a 28x28 box at every corner of those ranges widened by ``margin`` pixels on each side
(default 2; the canvas is zero-padded so boxes may reach past its edge) and classifies every crop:

* "average" (the default): the label with the largest softmax probability averaged over all the
  crops -- an ensemble over positions, which neither a slightly misplaced digit nor one odd crop
  (a box cutting into the neighbouring digit) can sway much;
* "confident": the label of the single crop the classifier is most sure of (largest gap between its
  two largest logits); it is swayed more by crops that cut a digit so that it looks like another;
* "centre": the single box at the centre of the range (cheapest; least forgiving of a misplaced
  digit, but the best on real canvases, whose digits are always inside the range).

"average" with margin 2 is the default (tolerant of digits drawn a couple of pixels outside the
range); :func:`fastgen.eval.selection.choose_scorer` picks the variant whose oracle score on the real
validation canvases is highest.

For a two-digit caption each slot is searched in its own range, so "A left of B" is only right when
A is found on the left AND B on the right: a picture with the two digits swapped scores ~0 unless
A == B.

Sanity check (:func:`oracle_fidelity`): the same scorer on the REAL canvases of a split must score
close to the classifier's own accuracy (>= 95% on the test split); it proves the localisation and the
classifier, so that a low score of a model is the model's.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from fastgen.data.captions import (
    CANVAS_SIZE,
    DEFAULT_SIZES,
    DIGIT_SIZE,
    NUM_TEMPLATES,
    PAD_ID,
    PLACEMENT,
    SPLITS,
    TEMPLATE_NAMES,
    VOCABULARY,
    MnistCaptions,
)

from .digit_classifier import DigitClassifier

METHODS = ("average", "confident", "centre")
DEFAULT_MARGIN = 2


class FidelityError(ValueError):
    """A user-facing problem with a fidelity evaluation's model, classifier or settings."""


# --- localisation and scoring ---------------------------------------------------------------------

def search_boxes(template: int, slot: int, margin: int = DEFAULT_MARGIN, method: str = "average") -> list:
    """Top-left corners (row, column) of the 28x28 boxes tried for digit ``slot`` (0: A, 1: B) of
    ``template``: every corner of the placement range widened by ``margin`` ("average",
    "confident"), or the range's centre ("centre")."""
    if method not in METHODS:
        raise FidelityError(f"localisation method must be one of {', '.join(METHODS)}, got {method!r}")
    if not 0 <= template < NUM_TEMPLATES:
        raise FidelityError(f"template must be in 0..{NUM_TEMPLATES - 1}, got {template}")
    place = PLACEMENT[template][slot] if slot in (0, 1) else None
    if place is None:
        raise FidelityError(f"template {template} ({TEMPLATE_NAMES[template]}) has no digit in slot {slot}")
    (r0, r1), (c0, c1) = place
    if method == "centre":
        return [((r0 + r1) // 2, (c0 + c1) // 2)]
    m = int(margin)
    return [(r, c) for r in range(r0 - m, r1 + m + 1) for c in range(c0 - m, c1 + m + 1)]


def _check_classifier(classifier) -> None:
    if not isinstance(classifier, DigitClassifier):
        raise FidelityError(f"expected a fastgen.eval.DigitClassifier, got {type(classifier).__name__}")
    if not classifier.is_trained:
        raise FidelityError("the digit classifier was never trained: use fastgen.eval.load_or_train_classifier "
                            "(or train_classifier) to get one")


def _decide(classifier: DigitClassifier, crops: Tensor, b: int, c: int, method: str):
    """(label [b], confidence [b], index of the representative crop [b]) from b x c crops."""
    was = classifier.training
    classifier.eval()
    try:
        logits = classifier(crops).float().view(b, c, 10)
    finally:
        classifier.train(was)
    if method == "average":
        probs = logits.softmax(-1)
        mean = probs.mean(1)
        conf, labels = mean.max(1)
        best = probs[torch.arange(b), :, labels].argmax(1)  # the crop that shows that label best
        return labels, conf, best
    top2 = logits.topk(2, dim=-1).values
    gap = top2[..., 0] - top2[..., 1]  # [b, c]
    best = gap.argmax(1)
    take = torch.arange(b)
    return logits[take, best].argmax(-1), gap[take, best], best


@torch.no_grad()
def score_canvases(classifier: DigitClassifier, images: Tensor, templates: Tensor, digits: Tensor,
                   margin: int = DEFAULT_MARGIN, method: str = "average", chunk: int = 64) -> dict:
    """Locate and classify every named digit of every image.

    images [n, 1, 60, 60] (values in [0, 1]), templates [n], digits [n, 2] (A, B; B = -1 for the
    corner templates). Returns a dict of tensors over the m named digits, in (image, slot) order:
    "image", "slot", "template", "named", "predicted", "correct" (bool), "corner" [m, 2] (top-left
    corner of the crop that shows the predicted label best) and "confidence" (the averaged
    probability of that label for "average", the logit gap of the chosen crop otherwise).
    """
    _check_classifier(classifier)
    if method not in METHODS:
        raise FidelityError(f"localisation method must be one of {', '.join(METHODS)}, got {method!r}")
    if margin < 0 or margin > 8:
        raise FidelityError(f"margin must be in 0..8 pixels, got {margin}")
    images = torch.as_tensor(images)
    if images.dim() != 4 or tuple(images.shape[1:]) != (1, CANVAS_SIZE, CANVAS_SIZE):
        raise FidelityError(f"images must be [n, 1, {CANVAS_SIZE}, {CANVAS_SIZE}] canvases, "
                            f"got {tuple(images.shape)}")
    n = images.shape[0]
    templates, digits = torch.as_tensor(templates).long().cpu(), torch.as_tensor(digits).long().cpu()
    if templates.shape != (n,) or digits.shape != (n, 2):
        raise FidelityError(f"templates must be [{n}] and digits [{n}, 2], got {tuple(templates.shape)} "
                            f"and {tuple(digits.shape)}")
    images = images.detach().float().cpu()
    pad = max(int(margin), 0)
    padded = F.pad(images, (pad, pad, pad, pad))
    ar = torch.arange(DIGIT_SIZE)
    parts = []
    for k in range(NUM_TEMPLATES):
        for slot in (0, 1):
            if PLACEMENT[k][slot] is None:
                continue
            rows = torch.nonzero(templates == k).flatten()
            if len(rows) == 0:
                continue
            corners = torch.tensor(search_boxes(k, slot, margin, method))  # [c, 2]
            c = len(corners)
            r_idx = (corners[:, 0:1] + pad + ar)[:, :, None]  # [c, 28, 1]
            c_idx = (corners[:, 1:2] + pad + ar)[:, None, :]  # [c, 1, 28]
            for start in range(0, len(rows), chunk):
                sel = rows[start:start + chunk]
                crops = padded[sel, 0][:, r_idx, c_idx]  # [b, c, 28, 28]
                crops = crops.reshape(-1, 1, DIGIT_SIZE, DIGIT_SIZE)
                labels, conf, best = _decide(classifier, crops, len(sel), c, method)
                parts.append({
                    "image": sel, "slot": torch.full_like(sel, slot), "template": torch.full_like(sel, k),
                    "named": digits[sel, slot], "predicted": labels,
                    "corner": corners[best], "confidence": conf,
                })
    if not parts:
        empty = torch.zeros(0, dtype=torch.int64)
        return {"image": empty, "slot": empty, "template": empty, "named": empty, "predicted": empty,
                "correct": torch.zeros(0, dtype=torch.bool), "corner": torch.zeros(0, 2, dtype=torch.int64),
                "confidence": torch.zeros(0)}
    out = {key: torch.cat([p[key] for p in parts]) for key in parts[0]}
    order = torch.argsort(out["image"] * 2 + out["slot"])
    out = {key: value[order] for key, value in out.items()}
    if (out["named"] < 0).any() or (out["named"] > 9).any():
        raise FidelityError("digits must name 0..9 for every slot the template uses")
    out["correct"] = out["predicted"] == out["named"]
    return out


# --- reports --------------------------------------------------------------------------------------

@dataclass
class FidelityReport:
    """Caption fidelity of one split. ``rate``: fraction of named digits classified as named;
    ``image_rate``: fraction of images with every named digit right; ``per_template``: template name
    -> {"rate", "correct", "n_digits"}; ``confusion[named][predicted]`` counts."""

    split: str
    source: str                     # "model samples" or "real canvases (oracle)"
    n_captions: int
    samples_per_caption: int
    n_images: int
    n_digits: int
    correct: int
    rate: float
    image_rate: float
    per_template: dict
    per_digit: dict                 # named digit -> rate
    confusion: list                 # 10 x 10
    top_confusions: list            # [(named, predicted, count)], most frequent first
    localisation: dict = field(default_factory=dict)
    settings: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    def lines(self) -> list[str]:
        """Human-readable summary, one line per item."""
        out = [f"{self.split} captions ({self.source}): {100 * self.rate:.1f}% of {self.n_digits:,} named digits "
               f"correct; {100 * self.image_rate:.1f}% of {self.n_images:,} images fully correct "
               f"({self.n_captions:,} captions x {self.samples_per_caption} sample"
               f"{'s' if self.samples_per_caption != 1 else ''})"]
        per = ", ".join(f"{name} {100 * v['rate']:.0f}% ({v['n_digits']})" for name, v in self.per_template.items())
        out.append(f"  per template: {per}")
        if self.top_confusions:
            conf = ", ".join(f"{a}->{b} x{n}" for a, b, n in self.top_confusions[:6])
            out.append(f"  most frequent confusions (named->seen): {conf}")
        return out


def summarize(scores: dict, split: str, source: str, n_captions: int, samples_per_caption: int,
              settings: Optional[dict] = None) -> FidelityReport:
    """A :class:`FidelityReport` from :func:`score_canvases`' output."""
    correct = scores["correct"]
    n_images = int(scores["image"].max()) + 1 if len(correct) else 0
    per_template = {}
    for k in range(NUM_TEMPLATES):
        sel = scores["template"] == k
        if sel.any():
            per_template[TEMPLATE_NAMES[k]] = {"rate": float(correct[sel].float().mean()),
                                               "correct": int(correct[sel].sum()), "n_digits": int(sel.sum())}
    per_digit = {d: float(correct[scores["named"] == d].float().mean())
                 for d in range(10) if (scores["named"] == d).any()}
    confusion = torch.zeros(10, 10, dtype=torch.int64)
    confusion.index_put_((scores["named"], scores["predicted"]), torch.ones_like(scores["named"]),
                         accumulate=True)
    off = [(a, b, int(confusion[a, b])) for a in range(10) for b in range(10) if a != b and confusion[a, b] > 0]
    off.sort(key=lambda t: -t[2])
    if len(correct):
        wrong_images = torch.zeros(n_images, dtype=torch.bool)
        wrong_images[scores["image"][~correct]] = True
        image_rate = float((~wrong_images).float().mean())
    else:
        image_rate = float("nan")
    located = scores["corner"].float()
    localisation = {"mean_corner_by_template_slot": {}}
    for k in range(NUM_TEMPLATES):
        for slot in (0, 1):
            sel = (scores["template"] == k) & (scores["slot"] == slot)
            if sel.any():
                r, c = located[sel].mean(0).tolist()
                localisation["mean_corner_by_template_slot"][f"{TEMPLATE_NAMES[k]}/{'AB'[slot]}"] = [
                    round(r, 2), round(c, 2)]
    return FidelityReport(
        split=split, source=source, n_captions=int(n_captions), samples_per_caption=int(samples_per_caption),
        n_images=n_images, n_digits=int(len(correct)), correct=int(correct.sum()),
        rate=float(correct.float().mean()) if len(correct) else float("nan"), image_rate=image_rate,
        per_template=per_template, per_digit=per_digit, confusion=confusion.tolist(), top_confusions=off,
        localisation=localisation, settings=dict(settings or {}))


# --- generation -----------------------------------------------------------------------------------

def check_model(model) -> None:
    """FidelityError unless ``model`` is an AlignDRAW for 60x60 grey MNIST-with-captions canvases over
    fastgen.data.captions' vocabulary."""
    from fastgen.models.aligndraw import AlignDRAW

    if not isinstance(model, AlignDRAW):
        raise FidelityError(f"caption fidelity needs an AlignDRAW model, got {type(model).__name__}")
    cfg = model.config
    if (cfg.channels, cfg.height, cfg.width) != (1, CANVAS_SIZE, CANVAS_SIZE):
        raise FidelityError(f"the AlignDRAW model draws {cfg.channels}x{cfg.height}x{cfg.width} images; caption "
                            f"fidelity needs one trained on MNIST with captions (1x{CANVAS_SIZE}x{CANVAS_SIZE})")
    if cfg.vocab_size != len(VOCABULARY) or cfg.pad_id != PAD_ID:
        raise FidelityError(f"the AlignDRAW model's vocabulary ({cfg.vocab_size} ids, pad {cfg.pad_id}) is not "
                            f"MNIST with captions' ({len(VOCABULARY)} ids, pad {PAD_ID})")


@torch.no_grad()
def generate_for_captions(model, tokens: Tensor, lengths: Tensor, samples_per_caption: int = 1, seed: int = 0,
                          batch_size: int = 250, progress: bool = False) -> Tensor:
    """``samples_per_caption`` images per caption, image ``i * K + j`` for caption ``i``: the
    Bernoulli means sigmoid(c_T) [n * K, 1, 60, 60] with z drawn from the learned prior (one
    generator seeded ``seed``, batches in order)."""
    check_model(model)
    if samples_per_caption < 1:
        raise FidelityError(f"samples_per_caption must be >= 1, got {samples_per_caption}")
    device = next(model.parameters()).device
    tokens = tokens.repeat_interleave(samples_per_caption, 0)
    lengths = lengths.repeat_interleave(samples_per_caption, 0)
    generator = torch.Generator(device=device).manual_seed(int(seed))
    was = model.training
    model.eval()
    out = []
    try:
        steps = range(0, len(tokens), batch_size)
        if progress:
            from tqdm import tqdm
            steps = tqdm(steps, desc="sampling", unit="batch", leave=False)
        for start in steps:
            rows = slice(start, start + batch_size)
            out.append(model.sample(tokens[rows].to(device), lengths[rows].to(device), generator).float().cpu())
    finally:
        model.train(was)
    return torch.cat(out) if out else torch.zeros(0, 1, CANVAS_SIZE, CANVAS_SIZE)


def load_captions(split: str, max_captions: Optional[int] = None, seed: int = 0, heldout_seed: int = 0,
                  heldout_fraction: float = 0.1) -> MnistCaptions:
    """The split's MnistCaptions (its default size, seed 0 as the recipes use; the first
    ``max_captions`` are scored)."""
    if split not in SPLITS:
        raise FidelityError(f"unknown caption split {split!r}; choose one of {', '.join(SPLITS)}")
    if max_captions is not None and (isinstance(max_captions, bool) or int(max_captions) < 1):
        raise FidelityError(f"max_captions must be >= 1, got {max_captions!r}")
    return MnistCaptions(split=split, size=DEFAULT_SIZES[split], seed=seed, heldout_seed=heldout_seed,
                         heldout_fraction=heldout_fraction)


def caption_fidelity(model, classifier: DigitClassifier, split: str = "test", samples_per_caption: int = 1,
                     max_captions: Optional[int] = None, seed: int = 0, margin: int = DEFAULT_MARGIN,
                     method: str = "average", data_seed: int = 0, heldout_seed: int = 0,
                     heldout_fraction: float = 0.1, batch_size: int = 250,
                     progress: bool = False) -> FidelityReport:
    """Caption fidelity of ``model`` (a trained AlignDRAW) on ``split``'s captions: see the module
    docstring. ``data_seed`` / ``heldout_*`` select the MnistCaptions split (defaults: what
    ``fastgen train aligndraw`` uses)."""
    check_model(model)
    _check_classifier(classifier)
    if method not in METHODS:
        raise FidelityError(f"localisation method must be one of {', '.join(METHODS)}, got {method!r}")
    data = load_captions(split, max_captions, data_seed, heldout_seed, heldout_fraction)
    n = len(data) if max_captions is None else min(int(max_captions), len(data))
    K = int(samples_per_caption)
    images = generate_for_captions(model, data.tokens[:n], data.lengths[:n], K, seed, batch_size, progress)
    scores = score_canvases(classifier, images, data.templates[:n].repeat_interleave(K, 0),
                            data.digits[:n].repeat_interleave(K, 0), margin, method)
    settings = {"seed": seed, "margin": margin, "method": method, "data_seed": data_seed,
                "heldout_seed": heldout_seed, "heldout_fraction": heldout_fraction,
                "images": "Bernoulli means sigmoid(c_T), z from the learned prior"}
    return summarize(scores, split, "model samples", n, K, settings)


def oracle_fidelity(classifier: DigitClassifier, split: str = "test", max_captions: Optional[int] = None,
                    margin: int = DEFAULT_MARGIN, method: str = "average", data_seed: int = 0,
                    heldout_seed: int = 0, heldout_fraction: float = 0.1) -> FidelityReport:
    """The scorer on the REAL canvases of ``split`` (what a perfect generator would score)."""
    _check_classifier(classifier)
    data = load_captions(split, max_captions, data_seed, heldout_seed, heldout_fraction)
    n = len(data) if max_captions is None else min(int(max_captions), len(data))
    scores = score_canvases(classifier, data.images[:n], data.templates[:n], data.digits[:n], margin, method)
    settings = {"margin": margin, "method": method, "data_seed": data_seed, "heldout_seed": heldout_seed,
                "heldout_fraction": heldout_fraction}
    return summarize(scores, split, "real canvases (oracle)", n, 1, settings)


__all__ = ["DEFAULT_MARGIN", "FidelityError", "FidelityReport", "METHODS", "caption_fidelity", "check_model",
           "generate_for_captions", "load_captions", "oracle_fidelity", "score_canvases", "search_boxes",
           "summarize"]
