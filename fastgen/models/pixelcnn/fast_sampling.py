"""The fast sampler of PixelCNN and Gated PixelCNN: sampling.py's cached algorithm in one kernel call
per chunk of pixels for a whole batch (fastgen.ops.pixelcnn_sampler: the C++ kernel on the CPU, the
Triton twin on CUDA or under TRITON_INTERPRET=1), drawing inside the kernel from the caller's
uniforms by draw_levels' rule, so the same uniforms give the same images as sample_naive and
sample_cached.

    cache = SamplerCache(model, n, labels)   # state: per-layer input rings, the levels, the position
    cache.step(uniforms[:, :, :k])           # the next k pixels (uniforms [n, C, k], raster order)
    cache.step(uniforms[:, :, k:])           # ... resumes where the last call stopped
    cache.images()                           # [n, C, H, W] float in [0, 1]

sample_fast(model, n, ...) does the whole image (optionally in chunks, with a progress bar);
fast_logits(model, images) runs the kernel teacher-forced and returns forward()'s logits. Where the
backend rule (fastgen.ops._route) picks the reference (the model is not float32, the extension is
missing, fastgen.set_backend("reference")), sample_fast runs sampling.sample_cached, the twin.
``backend`` (sample_fast, fast_logits, SamplerCache) picks the kernel as fastgen.ops._route rules:
"cpu", "triton", or None / "auto" for the device's own (a cache always runs a kernel).
"""
from __future__ import annotations

from typing import Callable, Optional

import torch
from torch import Tensor

from fastgen.models.pixelcnn import sampling
from fastgen.models.pixelcnn.model import PixelModel, logits_per_subpixel
from fastgen.models.pixelcnn.plan import plan_of, weights_key
from fastgen.ops import _route
from fastgen.ops import pixelcnn_sampler as ops


class SamplerCache:
    """The fast sampler's state for n images of one model, on the model's device (see the module
    docstring). The model's weights are packed when the cache is made; a cache resumes only with that
    model, unchanged."""

    def __init__(self, model: PixelModel, n: int, labels: Optional[Tensor] = None, backend: Optional[str] = None):
        where = f"{type(model).__name__} SamplerCache"
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"{where}: n must be a positive int, got {n!r}")
        model.check_labels(labels, n, where)
        device = next(model.parameters()).device
        self.backend = _route.resolve(ops.KERNELS, device, model.dtype, backend)
        if self.backend == "reference":  # a cache runs a kernel: refuse as the device's own kernel does
            self.backend = _route.resolve(ops.KERNELS, device, model.dtype, "cpu" if device.type == "cpu" else "triton")
        self.plan = plan_of(model)
        self.weights = [w.to(device) for w in self.plan.weights]
        self.key, self.config, self.n = weights_key(model), model.config, n
        cfg = model.config
        self.caches = [torch.zeros(n, *shape, device=device) for shape in self.plan.cache_shapes]
        self.levels = torch.zeros(n, cfg.channels, cfg.height, cfg.width, dtype=torch.long, device=device)
        self.position = torch.zeros(1, dtype=torch.long)
        cond = self.plan.pack_cond(model, labels)
        self.cond = None if cond is None else cond.to(device)
        self._levels = cfg.levels

    @property
    def pixels_done(self) -> int:
        return int(self.position)

    @property
    def pixels_left(self) -> int:
        return self.config.height * self.config.width - self.pixels_done

    def check_model(self, model: PixelModel, where: str) -> None:
        """ValueError unless ``model`` is the one this cache was made for, with the same weights."""
        if model.config != self.config or weights_key(model) != self.key:
            raise ValueError(f"{where}: this cache was made for another model (or before its weights changed); "
                             "make a new SamplerCache for this model")

    def step(self, uniforms: Tensor) -> None:
        """Draws the next uniforms.shape[2] pixels of every image from uniforms [n, C, pixels] in [0, 1)."""
        cfg = self.config
        if not isinstance(uniforms, Tensor) or not uniforms.is_floating_point():
            raise TypeError(f"SamplerCache.step: uniforms must be a float tensor [{self.n}, {cfg.channels}, pixels], "
                            f"got {uniforms.dtype if isinstance(uniforms, Tensor) else type(uniforms).__name__}")
        device = self.levels.device
        if uniforms.device not in (torch.device("cpu"), device):
            raise ValueError(f"SamplerCache.step: uniforms must be on the CPU or the sampler's device ({device}), "
                             f"got {uniforms.device}")
        if uniforms.dim() != 3 or tuple(uniforms.shape[:2]) != (self.n, cfg.channels):
            raise ValueError(f"SamplerCache.step: uniforms must be [{self.n}, {cfg.channels}, pixels], got "
                             f"{list(uniforms.shape)}")
        if uniforms.shape[2] > self.pixels_left:
            raise ValueError(f"SamplerCache.step: {uniforms.shape[2]} pixels asked, {self.pixels_left} left")
        if not ((uniforms >= 0) & (uniforms < 1)).all():
            raise ValueError("SamplerCache.step: uniforms must lie in [0, 1)")
        self._run(uniforms.to(device, torch.float32).contiguous(), uniforms.shape[2])

    def teacher_logits(self, levels: Tensor) -> Tensor:
        """Logits [n, C, H, W(, K)] of every sub-pixel of the given levels [n, C, H, W] (a fresh cache)."""
        if self.pixels_done:
            raise ValueError("SamplerCache.teacher_logits: needs a fresh cache")
        self.levels.copy_(levels)
        cfg = self.config
        out = self._run(None, cfg.height * cfg.width)  # [n, H*W, C, K]
        K = logits_per_subpixel(cfg.levels)
        out = out.view(self.n, cfg.height, cfg.width, cfg.channels, K).permute(0, 3, 1, 2, 4)
        return out[..., 0] if K == 1 else out

    def _run(self, uniforms: Optional[Tensor], pixels: int) -> Tensor:
        return ops.pixelcnn_sample(self.caches, self.levels, self.position, self.weights, self.plan.dims,
                                   self.cond, uniforms, pixels, backend=self.backend)

    def images(self) -> Tensor:
        """The images so far, [n, C, H, W] float32 in [0, 1] (pixels not yet drawn are 0)."""
        return self.levels.float() / (self._levels - 1)


@torch.no_grad()
def sample_fast(model: PixelModel, n: int, uniforms: Optional[Tensor] = None,
                generator: Optional[torch.Generator] = None, labels: Optional[Tensor] = None,
                chunk: Optional[int] = None, progress: bool = False, backend: Optional[str] = None) -> Tensor:
    """n images [n, C, H, W] (float in [0, 1]) by the fast sampler, ``chunk`` pixels per kernel call
    (default: the whole image); the same images as sample_cached for the same uniforms."""
    return drive_sampler(model, n, ops.KERNELS, lambda: SamplerCache(model, n, labels, backend), sampling.sample_cached,
                         uniforms, generator, labels, chunk, progress, backend)


def drive_sampler(model: PixelModel, n: int, kernels, make_cache: Callable[[], SamplerCache], fallback: Callable,
                  uniforms: Optional[Tensor], generator: Optional[torch.Generator], labels: Optional[Tensor],
                  chunk: Optional[int], progress: bool, backend: Optional[str]) -> Tensor:
    """The loop every fast sampler shares: the checks; ``fallback(model, n, ...)`` where the backend
    rule picks the reference for the op declared by ``kernels``; else ``chunk`` pixels per kernel call
    of the cache ``make_cache()`` builds, with a progress bar."""
    where = f"{type(model).__name__} sample_fast"
    device = next(model.parameters()).device
    if _route.resolve(kernels, device, model.dtype, backend) == "reference":
        return fallback(model, n, uniforms=uniforms, generator=generator, labels=labels)
    u = sampling._uniforms(model, n, uniforms, generator, where)
    model.check_labels(labels, n, where)
    cfg = model.config
    total = cfg.height * cfg.width
    if chunk is None:
        chunk = total
    if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
        raise ValueError(f"{where}: chunk must be a positive int (pixels per call), got {chunk!r}")
    cache = make_cache()
    flat = u.flatten(2)
    from tqdm import tqdm
    with tqdm(total=total, unit="px", disable=not progress, desc="sampling") as bar:
        for start in range(0, total, chunk):
            cache.step(flat[:, :, start:start + chunk])
            bar.update(min(chunk, total - start))
    return cache.images().to(model.dtype)


@torch.no_grad()
def fast_logits(model: PixelModel, images: Tensor, labels: Optional[Tensor] = None,
                backend: Optional[str] = None) -> Tensor:
    """The fast sampler's logits for every sub-pixel of real images (teacher forcing), in forward()'s
    layout: equal to model(images, labels) up to rounding."""
    where = f"{type(model).__name__} fast_logits"
    levels = model.levels_of(images, where)
    cache = SamplerCache(model, levels.shape[0], labels, backend)
    return cache.teacher_logits(levels)
