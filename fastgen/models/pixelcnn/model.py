"""PixelCNN (van den Oord, Kalchbrenner & Kavukcuoglu 2016, "Pixel Recurrent Neural Networks",
sec. 3.4-3.5 and Table 4), and what it shares with the Gated PixelCNN (gated.py): image checks, the
output head, the likelihood and the loss.

The network, over images x [B, C, H, W] (C = 1 or 3) in raster order, sub-pixels R -> G -> B::

    y_0 = conv7x7_A(x)                                          -> 2h channels
    y_l = y_{l-1} + 1x1_B(relu(conv3x3_B(relu(1x1_B(relu(y_{l-1}))))))   residual block, 2h -> h -> h -> 2h
    logits = 1x1_B(relu(1x1_B(relu(y_L))))                      -> C * K channels

Every layer is a fastgen.nn.MaskedConv2d; with C = 3 all of them (the 1x1 ones too) keep the R, G, B
channel thirds (colour groups), so output group g, the logits of colour g, sees the current pixel's
colours < g only. K = 1 Bernoulli logit per sub-pixel for binary images (levels=2), K = 256 softmax
logits otherwise (levels=256; logits channel c * K + k is colour c's level k).

Inputs: binary images are fed as they are (0 / 1); 256-level pixels k are fed as 2k / 255 - 1 in
[-1, 1]. Images given to forward / loss are float in [0, 1] (256 levels: multiples of 1/255, the
level is round(255 x)) or integer levels (0 / 1, or 0..255). Samples come back as float in [0, 1].

Loss: the exact negative log-likelihood in nats per image (a sum over sub-pixels of Bernoulli or
categorical NLLs, fastgen.nn.distributions), and bits per sub-pixel ("bits_per_dim").
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch
from torch import Tensor, nn

from fastgen.models.config_utils import check_model_fits, check_positive_ints, resolve_config
from fastgen.models.pretrained import Pretrained
from fastgen.nn.distributions import bernoulli_nll, categorical_nll
from fastgen.nn.masked_conv import MaskedConv2d

LEVELS = (2, 256)


def check_image_config(cfg, name: str, widths: tuple[str, ...]) -> None:
    """ValueError unless the image fields of a PixelCNN-family config are valid and, for colour images,
    every width in ``widths`` splits into R, G, B thirds."""
    check_positive_ints(cfg, name, ("height", "width", "layers", *widths))
    if cfg.channels not in (1, 3) or isinstance(cfg.channels, bool):
        raise ValueError(f"{name}: channels must be 1 (grey) or 3 (R, G, B), got {cfg.channels!r}")
    if cfg.levels not in LEVELS or isinstance(cfg.levels, bool):
        raise ValueError(f"{name}: levels must be 2 (binary, one Bernoulli logit) or 256 (softmax), "
                         f"got {cfg.levels!r}")
    if cfg.channels == 3:
        for field in widths:
            if getattr(cfg, field) % 3:
                raise ValueError(f"{name}: with 3 channels {field} must be divisible by 3 (one third per "
                                 f"colour), got {getattr(cfg, field)}")


def logits_per_subpixel(levels: int) -> int:
    return 1 if levels == 2 else levels


class OutputHead(nn.Module):
    """The two ReLU + 1x1 mask-B layers: width -> hidden -> channels * K logits, colour groups kept."""

    def __init__(self, width: int, hidden: int, outputs: int, color_groups: int):
        super().__init__()
        self.hidden = MaskedConv2d(width, hidden, 1, "B", color_groups)
        self.out = MaskedConv2d(hidden, outputs, 1, "B", color_groups)

    def forward(self, y: Tensor) -> Tensor:
        return self.out(torch.relu(self.hidden(torch.relu(y))))


class PixelModel(Pretrained, nn.Module):
    """What PixelCNN and GatedPixelCNN share: image checks and scaling, the logits layout, the loss and
    sampling. A subclass sets ``self.config`` and defines ``network(inputs, labels) -> [B, C*K, H, W]``."""

    config: object

    @property
    def color_groups(self) -> int:
        return 3 if self.config.channels == 3 else 1

    @property
    def num_classes(self) -> int:
        """Label classes for conditioning (0: unconditional)."""
        return getattr(self.config, "classes", 0)

    def levels_of(self, images: Tensor, where: str) -> Tensor:
        """Integer levels [B, C, H, W] (long) of images given as the module docstring says."""
        cfg = self.config
        if not isinstance(images, Tensor):
            raise TypeError(f"{where}: images must be a torch.Tensor, got {type(images).__name__}")
        expected = (cfg.channels, cfg.height, cfg.width)
        if images.dim() != 4 or tuple(images.shape[1:]) != expected:
            raise ValueError(f"{where}: images must be [B, {expected[0]}, {expected[1]}, {expected[2]}], "
                             f"got {tuple(images.shape)}")
        top = cfg.levels - 1
        if images.is_floating_point():
            if not torch.isfinite(images).all() or images.min() < 0 or images.max() > 1:
                raise ValueError(f"{where}: float images must lie in [0, 1]")
            levels = torch.round(images * top)
            if cfg.levels == 2 and not torch.equal(levels, images):
                raise ValueError(f"{where}: binary images must be 0 or 1 (binarise them first)")
            return levels.long()
        if images.is_complex():
            raise TypeError(f"{where}: images must be real, got {images.dtype}")
        if images.numel() and (int(images.min()) < 0 or int(images.max()) > top):
            raise ValueError(f"{where}: integer images must hold levels 0..{top}, got "
                             f"{int(images.min())}..{int(images.max())}")
        return images.long()

    def network_input(self, levels: Tensor) -> Tensor:
        """Levels (any dtype) -> the first layer's input in the weights' dtype (see module doc)."""
        x = levels.to(self.dtype)
        return x if self.config.levels == 2 else x * (2 / 255) - 1

    @property
    def dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    def check_labels(self, labels: Optional[Tensor], batch: int, where: str) -> None:
        classes = self.num_classes
        if not classes:
            if labels is not None:
                raise ValueError(f"{where}: this model is unconditional (classes=0) but labels were given")
            return
        if labels is None:
            raise ValueError(f"{where}: this model is class-conditional: pass labels [B] in [0, {classes})")
        if not isinstance(labels, Tensor) or labels.dtype not in (torch.int32, torch.int64):
            raise TypeError(f"{where}: labels must be an int32/int64 tensor [B], got "
                            f"{labels.dtype if isinstance(labels, Tensor) else type(labels).__name__}")
        if labels.shape != (batch,):
            raise ValueError(f"{where}: labels must have shape [{batch}], got {list(labels.shape)}")
        if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= classes):
            raise ValueError(f"{where}: labels must lie in [0, {classes}), got "
                             f"{int(labels.min())}..{int(labels.max())}")

    def split_logits(self, out: Tensor) -> Tensor:
        """[B, C*K, H, W] -> [B, C, H, W] (binary) or [B, C, H, W, K] (K levels)."""
        B, _, H, W = out.shape
        C, K = self.config.channels, logits_per_subpixel(self.config.levels)
        return out if K == 1 else out.view(B, C, K, H, W).movedim(2, -1)

    def forward(self, images: Tensor, labels: Optional[Tensor] = None) -> Tensor:
        """Logits of every sub-pixel given the sub-pixels before it: [B, C, H, W] (binary) or
        [B, C, H, W, 256]."""
        return self._logits(self.levels_of(images, type(self).__name__), labels, type(self).__name__)

    def _logits(self, levels: Tensor, labels: Optional[Tensor], where: str) -> Tensor:
        self.check_labels(labels, levels.shape[0], where)
        return self.split_logits(self.network(self.network_input(levels), labels))

    def nll(self, images: Tensor, labels: Optional[Tensor] = None) -> Tensor:
        """-log p(x) in nats per image [B]."""
        where = f"{type(self).__name__}.nll"
        levels = self.levels_of(images, where)
        logits = self._logits(levels, labels, where)
        if self.config.levels == 2:
            terms = bernoulli_nll(logits, levels.to(logits.dtype))
        else:
            terms = categorical_nll(logits, levels)
        return terms.flatten(1).sum(1)

    def loss(self, images: Tensor, labels: Optional[Tensor] = None) -> tuple[Tensor, dict[str, Tensor]]:
        """(mean nats per image, metrics: "nll" nats per image, "bits_per_dim" bits per sub-pixel)."""
        nll = self.nll(images, labels)
        mean = nll.mean()
        cfg = self.config
        dims = cfg.channels * cfg.height * cfg.width
        return mean, {"nll": mean.detach(), "bits_per_dim": mean.detach() / (dims * math.log(2))}

    @torch.no_grad()
    def sample(self, n: int, generator: Optional[torch.Generator] = None, uniforms: Optional[Tensor] = None,
               labels: Optional[Tensor] = None, method: str = "fastgen", progress: bool = False) -> Tensor:
        """n images [n, C, H, W] float in [0, 1] by fastgen.models.pixelcnn.sampling.sample: "fastgen"
        (the C++ cached sampler), "cached" (its plain-PyTorch twin) or "naive" (one full forward per
        sub-pixel); same uniforms, same images."""
        from fastgen.models.pixelcnn import sampling  # here: sampling imports this module
        return sampling.sample(self, n, uniforms=uniforms, generator=generator, labels=labels, method=method,
                               progress=progress)


@dataclass
class PixelCNNConfig:
    """PixelCNN's sizes. Defaults: the paper's colour model (32x32x3, 256-way softmax, 15 residual
    blocks) with h = 126: the paper's h = 128 rounded down to a multiple of 3 so that every layer splits
    into R, G, B thirds. ``PixelCNNConfig.mnist()`` is fastgen's small binary-MNIST configuration.

    layers: residual blocks after the 7x7 mask-A layer; hidden: h (the blocks carry 2h channels);
    output_hidden: width of the first 1x1 output layer (None = 2h); first_kernel / kernel: the mask-A
    layer's and the blocks' kernel sizes (odd).
    """

    height: int = 32
    width: int = 32
    channels: int = 3
    levels: int = 256
    layers: int = 15
    hidden: int = 126
    output_hidden: Optional[int] = None
    first_kernel: int = 7
    kernel: int = 3

    def __post_init__(self):
        if self.output_hidden is None:
            self.output_hidden = 2 * self.hidden
        check_image_config(self, "PixelCNNConfig", ("hidden", "output_hidden"))
        for field in ("first_kernel", "kernel"):
            k = getattr(self, field)
            if isinstance(k, bool) or not isinstance(k, int) or k < 1 or k % 2 == 0:
                raise ValueError(f"PixelCNNConfig: {field} must be an odd positive int, got {k!r}")
        h, C, oh = self.hidden, self.channels, self.output_hidden
        outputs = C * logits_per_subpixel(self.levels)
        weights = (C * 2 * h * self.first_kernel ** 2 + self.layers * h * h * (4 + self.kernel ** 2)
                   + 2 * h * oh + oh * outputs)
        # per example, the activations a training step keeps: 5h per block, the head, the logits
        check_model_fits("PixelCNNConfig", weights, self.height * self.width * (5 * h * self.layers + oh + 2 * outputs))

    @classmethod
    def mnist(cls, **overrides) -> "PixelCNNConfig":
        """fastgen's binary-MNIST PixelCNN: 28x28x1, one Bernoulli logit per pixel, 7 residual blocks,
        h = 32 (our size for a CPU budget; the paper's MNIST table reports PixelRNNs, not this model)."""
        return cls(**{**dict(height=28, width=28, channels=1, levels=2, layers=7, hidden=32), **overrides})


class ResidualBlock(nn.Module):
    """The paper's Figure 5 block: relu -> 1x1 (2h -> h) -> relu -> kxk mask B -> relu -> 1x1 (h -> 2h),
    added to the input."""

    def __init__(self, hidden: int, kernel: int, color_groups: int):
        super().__init__()
        self.reduce = MaskedConv2d(2 * hidden, hidden, 1, "B", color_groups)
        self.conv = MaskedConv2d(hidden, hidden, kernel, "B", color_groups)
        self.expand = MaskedConv2d(hidden, 2 * hidden, 1, "B", color_groups)

    def forward(self, y: Tensor) -> Tensor:
        return y + self.expand(torch.relu(self.conv(torch.relu(self.reduce(torch.relu(y))))))


class PixelCNN(PixelModel, kind="pixelcnn", config_class=PixelCNNConfig):
    """PixelCNN (see the module docstring)."""

    def __init__(self, config: Optional[PixelCNNConfig] = None, **overrides):
        super().__init__()
        self.config = cfg = resolve_config("PixelCNN", PixelCNNConfig, config, overrides)
        G, h = self.color_groups, cfg.hidden
        self.input_conv = MaskedConv2d(cfg.channels, 2 * h, cfg.first_kernel, "A", G)
        self.blocks = nn.ModuleList(ResidualBlock(h, cfg.kernel, G) for _ in range(cfg.layers))
        self.head = OutputHead(2 * h, cfg.output_hidden, cfg.channels * logits_per_subpixel(cfg.levels), G)

    def network(self, inputs: Tensor, labels: Optional[Tensor] = None) -> Tensor:
        y = self.input_conv(inputs)
        for block in self.blocks:
            y = block(y)
        return self.head(y)


def images_and_labels(batch) -> tuple[Tensor, Optional[Tensor]]:
    """A training batch as (images, labels or None): images, (images, labels, ...) or
    {"images": ..., "labels": ...}."""
    if isinstance(batch, dict):
        return batch["images"], batch.get("labels")
    if isinstance(batch, (tuple, list)):
        if not batch:
            raise ValueError("pixelcnn loss_fn: empty batch tuple")
        return batch[0], (batch[1] if len(batch) > 1 else None)
    return batch, None


def loss_fn(model: PixelModel, batch, generator: Optional[torch.Generator] = None) -> tuple[Tensor, dict[str, Tensor]]:
    """fastgen.train contract for PixelCNN and GatedPixelCNN: (mean nats per image, metrics). The loss
    is exact (no noise), so the generator goes unused; labels are passed only to a class-conditional
    model (an unconditional one ignores a dataset's labels)."""
    images, labels = images_and_labels(batch)
    return model.loss(images, labels if model.num_classes else None)
