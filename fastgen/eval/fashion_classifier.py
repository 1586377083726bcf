"""A small Fashion-MNIST classifier trained in the project: its penultimate features give the
Fréchet distance of fastgen.eval.frechet (a Fréchet distance in THIS network's feature space, not
Inception FID).

Trained on Fashion-MNIST's training split less its validation part (fastgen.data.splits: the same
carve every image family uses, so generative models selected on validation images never saw them
either); its accuracy is measured once on the 10,000 test images. Architecture: conv 3x3 (1 -> w) +
ReLU + 2x2 max-pool, conv 3x3 (w -> 2w) + ReLU + 2x2 max-pool, linear -> 128 + ReLU (the features),
linear 128 -> 10. Adam (lr 2e-3, batch 128, cosine decay), one CPU thread, fixed seed; cached as a
fastgen checkpoint under the data cache (``fashion_classifier/<settings hash>``), so evaluations
never retrain it. Mirrors fastgen.eval.digit_classifier.
"""
from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Optional, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fastgen.eval.digit_classifier import classifier_cache_dir
from fastgen.train.checkpoint import CheckpointError, load_checkpoint, save_checkpoint

FORMAT = 1
KIND = "fastgen.eval.FashionClassifier"
FEATURES = 128


@dataclass
class FashionSettings:
    epochs: int = 3
    batch_size: int = 128
    lr: float = 2e-3
    seed: int = 0
    width: int = 16
    max_train: Optional[int] = None  # the first N training images (tests)

    def key(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:16]


class FashionClassifier(nn.Module):
    def __init__(self, width: int = 16):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(1, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                  nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                  nn.Flatten(), nn.Linear(2 * width * 49, FEATURES), nn.ReLU())
        self.out = nn.Linear(FEATURES, 10)

    def forward(self, x: Tensor) -> Tensor:
        return self.out(self.body(x))

    @torch.no_grad()
    def features(self, x: Tensor, batch_size: int = 1000) -> Tensor:
        """Penultimate features [N, 128] of images [N, 1, 28, 28] in [0, 1]."""
        if x.dim() != 4 or tuple(x.shape[1:]) != (1, 28, 28):
            raise ValueError(f"FashionClassifier.features: images must be [N, 1, 28, 28], got {list(x.shape)}")
        return torch.cat([self.body(x[i:i + batch_size].float()) for i in range(0, len(x), batch_size)])

    @torch.no_grad()
    def predict(self, x: Tensor, batch_size: int = 1000) -> Tensor:
        return torch.cat([self(x[i:i + batch_size].float()).argmax(1) for i in range(0, len(x), batch_size)])


def fashion_split(split: str) -> tuple[Tensor, Tensor]:
    """(images float [N, 1, 28, 28] in [0, 1], labels) of "train" (less validation), "val" or "test"."""
    from fastgen.data import load_fashion_mnist
    from fastgen.data.splits import carve_validation
    images, labels = load_fashion_mnist("test" if split == "test" else "train")
    if split != "test":
        rows = carve_validation(len(images), split)
        images, labels = images[rows], labels[rows]
    return images.unsqueeze(1).float() / 255, labels


def train_fashion_classifier(settings: Optional[FashionSettings] = None,
                             log: Optional[Callable[[str], None]] = None) -> tuple[FashionClassifier, dict]:
    settings = settings or FashionSettings()
    x, y = fashion_split("train")
    if settings.max_train is not None:
        x, y = x[:settings.max_train], y[:settings.max_train]
    generator = torch.Generator().manual_seed(settings.seed)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the weights do not depend on the machine's core count
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(settings.seed)
            model = FashionClassifier(settings.width)
            opt = torch.optim.Adam(model.parameters(), lr=settings.lr)
            n = len(x)
            total = settings.epochs * -(-n // settings.batch_size)
            schedule = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, total) / total)))
            start = time.perf_counter()
            for epoch in range(settings.epochs):
                order = torch.randperm(n, generator=generator)
                for i in range(0, n, settings.batch_size):
                    rows = order[i:i + settings.batch_size]
                    loss = F.cross_entropy(model(x[rows]), y[rows])
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    schedule.step()
                if log is not None:
                    log(f"fashion classifier epoch {epoch + 1}/{settings.epochs}: last batch loss {float(loss.detach()):.3f}")
            seconds = time.perf_counter() - start
    finally:
        torch.set_num_threads(threads)
    model.eval()
    x_test, y_test = fashion_split("test")
    accuracy = float((model.predict(x_test) == y_test).double().mean())
    info = {"kind": KIND, "format": FORMAT, "settings": asdict(settings), "n_train": int(n),
            "test_accuracy": accuracy, "n_test": len(y_test), "train_seconds": seconds, "threads": 1}
    if log is not None:
        log(f"fashion classifier: {100 * accuracy:.2f}% on the {len(y_test):,} test images ({seconds:.0f} s)")
    return model, info


def load_fashion_classifier(directory: Union[str, Path]) -> tuple[FashionClassifier, dict]:
    ckpt = load_checkpoint(directory)
    info = ckpt.config
    if info.get("kind") != KIND or info.get("format") != FORMAT:
        raise CheckpointError(f"{ckpt.directory}: not a Fashion-MNIST classifier (format {FORMAT})")
    model = FashionClassifier(info["settings"]["width"])
    try:
        model.load_state_dict(ckpt.model_state)
    except RuntimeError as e:
        raise CheckpointError(f"{ckpt.directory}: weights do not fit the FashionClassifier: {e}") from None
    return model.eval(), info


def load_or_train_fashion_classifier(settings: Optional[FashionSettings] = None,
                                     cache_dir: Union[str, Path, None] = None,
                                     log: Optional[Callable[[str], None]] = None) -> tuple[FashionClassifier, dict]:
    """The cached classifier for ``settings``, trained and saved (atomically) on first use."""
    settings = settings or FashionSettings()
    root = Path(cache_dir) if cache_dir is not None else classifier_cache_dir().parent
    folder = root / "fashion_classifier" / settings.key()
    if (folder / "config.json").is_file():
        try:
            model, info = load_fashion_classifier(folder)
            if info.get("settings") == asdict(settings):
                return model, info
        except CheckpointError as e:
            if log is not None:
                log(f"retraining the fashion classifier: the cached one is unusable ({e})")
    model, info = train_fashion_classifier(settings, log)
    save_checkpoint(folder, model, info)
    return model, info


__all__ = ["FEATURES", "FashionClassifier", "FashionSettings", "fashion_split", "load_fashion_classifier",
           "load_or_train_fashion_classifier", "train_fashion_classifier"]
