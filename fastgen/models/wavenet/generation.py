"""WaveNet's generation driver: the cache, the weight packing, stream / generate / step.

Paths (``backend``; None or "auto" follows fastgen.set_backend / use_backend, then
fastgen.ops._route's rule for the tensors' device):
    "naive"      fastgen.reference.wavenet.generate_naive (full recomputation per sample; definition)
    "reference"  fastgen.reference.wavenet.generate_queues (Paine et al.'s queues in plain PyTorch)
    "cpu"        the C++ kernel (csrc/cpu/wavenet_kernels_impl.h), CPU tensors
    "triton"     the Triton kernel (fastgen.triton.wavenet), CUDA tensors or TRITON_INTERPRET=1
    "cuda"       the persistent CUDA kernel (csrc/cuda/wavenet.cu), when built with CUDA
    "auto"       the process-wide backend; if that is "auto" too: cpu on CPU (the reference queues
                 if fastgen._C is missing); cuda if built, else triton, on a GPU
The kernels (fastgen.ops.wavenet.wavenet_generate) run over a WaveNetCache, advanced in place, so
generation can stop and resume exactly (streaming). The naive and reference paths start from a fresh
state (no cache); they exist to be compared with.
"""
from __future__ import annotations

import contextlib
import math
import threading
import weakref
from typing import Iterator, Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from fastgen.ops import _route
from fastgen.ops import wavenet as ops
from fastgen.reference import wavenet as reference

# A model-level path beside the backends: it has no kernel, only the definition.
MODEL_PATHS = ("naive",)
WEIGHT_DTYPES = (torch.float32, torch.bfloat16)
DEFAULT_CHUNK = 4096


def pad8(n: int) -> int:
    return (n + 7) // 8 * 8


def silence_token(classes: int) -> int:
    """The mu-law code of 0.0 (generation's first input)."""
    return classes // 2


def _pad_last(t: Tensor, width: int) -> Tensor:
    return F.pad(t, (0, width - t.shape[-1]))


def _pad_gate_columns(t: Tensor, R: int) -> Tensor:
    """[..., 2R] (tanh half, sigmoid half) -> [..., 2*pad8(R)], each half zero-padded."""
    return _pad_last(t.unflatten(-1, (2, R)), pad8(R)).flatten(-2)


@torch.no_grad()
def pack_weights(model, weight_dtype: torch.dtype = torch.float32) -> list[Tensor]:
    """The model's weights in the kernels' layout (csrc/cpu/wavenet_kernels.h): input-major
    matrices with output widths padded to multiples of 8, skip biases summed over layers; bfloat16
    matrices with their row pairs interleaved per column."""
    if weight_dtype not in WEIGHT_DTYPES:
        raise ValueError(f"wavenet: weight_dtype must be torch.float32 or torch.bfloat16, got {weight_dtype}")
    cfg = model.config
    R, S, H, C, L, k = (cfg.residual_channels, cfg.skip_channels, cfg.head_channels, cfg.classes, cfg.layers,
                        cfg.kernel_size)
    if weight_dtype == torch.bfloat16 and (R % 2 or S % 2 or H % 2):
        raise ValueError(f"wavenet: bfloat16 weights need even residual, skip and head widths, got {R}, {S}, {H}")
    Rp = pad8(R)
    f32 = dict(dtype=torch.float32)

    def to_kernel(w: Tensor) -> Tensor:
        """[..., K, P] float -> the kernel's dtype; bfloat16 interleaves row pairs (k, k+1) per column."""
        if weight_dtype == torch.float32:
            return w.contiguous()
        K, P = w.shape[-2:]
        return w.unflatten(-2, (K // 2, 2)).transpose(-1, -2).reshape(w.shape).to(weight_dtype).contiguous()

    def matrix(w: Tensor, width: int) -> Tensor:  # [out, in] -> [in, pad8(out)]
        return to_kernel(_pad_last(w.t().to(**f32), width))

    # gate weight [2R, R, k] -> rows j*R + i (tap j, input channel i), padded gate columns.
    gate_w = to_kernel(torch.stack([_pad_gate_columns(g.weight.permute(2, 1, 0).reshape(k * R, 2 * R).to(**f32), R)
                                    for g in model.gates]))
    gate_b = torch.stack([_pad_gate_columns(g.bias.to(**f32), R) for g in model.gates]).contiguous()
    ref = model.embed.weight
    if L > 1:
        res_w = torch.stack([matrix(r.weight[:, :, 0], Rp) for r in model.residuals])
        res_b = torch.stack([_pad_last(r.bias.to(**f32), Rp) for r in model.residuals])
    else:
        res_w = ref.new_zeros(0, R, Rp, dtype=weight_dtype)
        res_b = ref.new_zeros(0, Rp, **f32)
    return [
        _pad_last(model.embed.weight.to(**f32), Rp).contiguous(),
        gate_w,
        gate_b,
        res_w.contiguous(),
        res_b.contiguous(),
        torch.stack([matrix(s.weight[:, :, 0], pad8(S)) for s in model.skips]).contiguous(),
        _pad_last(sum(s.bias for s in model.skips).to(**f32), pad8(S)).contiguous(),
        matrix(model.head1.weight[:, :, 0], pad8(H)),
        _pad_last(model.head1.bias.to(**f32), pad8(H)).contiguous(),
        matrix(model.head2.weight[:, :, 0], pad8(C)),
        _pad_last(model.head2.bias.to(**f32), pad8(C)).contiguous(),
    ]


def pack_conditioning(cond: Optional[Tensor], R: int) -> Optional[Tensor]:
    """[B, T, L*2R] -> [B, T, L*2*pad8(R)] float32 contiguous (each layer's halves padded)."""
    if cond is None:
        return None
    B, T, width = cond.shape
    per_layer = cond.reshape(B, T, width // (2 * R), 2 * R)
    return _pad_gate_columns(per_layer.float(), R).reshape(B, T, -1).contiguous()


def make_generator(seed: Optional[int]) -> torch.Generator:
    generator = torch.Generator()
    if seed is None:
        generator.seed()
    else:
        generator.manual_seed(seed)
    return generator


def draw_uniforms(generator: torch.Generator, batch: int, n: int) -> Tensor:
    """The next n uniforms per row [B, n], drawn time-major so that chunking does not change them."""
    return torch.rand(n, batch, generator=generator).t().contiguous()


def _weights_stamp(params: list[Tensor]) -> list[tuple[int, int]]:
    """What changes when a parameter is written: its version counter (every in-place update, e.g. an
    optimizer step or load_state_dict) and its storage (a rebinding of ``.data``)."""
    return [(p._version, p.data_ptr()) for p in params]


class WaveNetCache:
    """Generation state of ``batch`` independent rows: per-layer ring-buffer queues [B, Q, pad8(R)]
    (zeros = the causal padding), each row's position and next input token (the silence token at
    first), the packed weights (a copy taken at allocation) and the generator the uniforms are drawn
    from, so that a stream stopped and resumed gives the same samples as one that was not.

    A cache serves the model that allocated it, as its weights were then: generation refuses it for
    another model, and after that model's parameters were written in place (training, load_state_dict),
    because the packed weights and the queued layer inputs would be stale. It serves one stream at a
    time: a second one, from another thread or an unfinished stream of the same thread, is refused.
    """

    def __init__(self, model, batch: int = 1, weight_dtype: torch.dtype = torch.float32, seed: Optional[int] = None):
        if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
            raise ValueError(f"WaveNetCache: batch must be a positive int, got {batch!r}")
        cfg = model.config
        device = model.embed.weight.device
        self.config = cfg
        self.batch = batch
        self.weight_dtype = weight_dtype
        self.weights = pack_weights(model, weight_dtype)
        self.dilations = list(cfg.dilations)
        Q = (cfg.kernel_size - 1) * sum(self.dilations)
        self.queues = torch.zeros(batch, Q, pad8(cfg.residual_channels), device=device)
        self.positions = torch.zeros(batch, dtype=torch.int64, device=device)
        self.last_tokens = torch.full((batch,), silence_token(cfg.classes), dtype=torch.int64, device=device)
        self.generator = make_generator(seed)
        self._model = weakref.ref(model)
        # The parameter list is taken once: model.parameters() per call would cost a step's time.
        self._params = list(model.parameters())
        self._stamp = _weights_stamp(self._params)
        self._busy = threading.Lock()

    @property
    def model(self):
        """The model that allocated this cache (None once it is gone)."""
        return self._model()

    def check_model(self, model) -> None:
        """Raise ValueError unless ``model`` allocated this cache and its weights are unchanged since."""
        if self.config != model.config:
            raise ValueError("wavenet: the cache was allocated for a model with another config")
        if self._model() is not model:
            raise ValueError("wavenet: the cache was allocated by another model (it holds that model's packed "
                             "weights); allocate one with this model's allocate_cache()")
        if _weights_stamp(self._params) != self._stamp:
            raise ValueError("wavenet: the model's weights changed since this cache was allocated (its packed "
                             "weights and queued layer inputs are stale); allocate a new cache")

    @contextlib.contextmanager
    def in_use(self):
        """Hold the cache for one stream; refuse (RuntimeError) if another stream holds it."""
        if not self._busy.acquire(blocking=False):
            raise RuntimeError("wavenet: the cache is in use by another stream (another thread's, or an "
                               "unfinished one: exhaust or close() it first); a cache serves one stream at a time")
        try:
            yield self
        finally:
            self._busy.release()

    def draw_uniforms(self, n: int) -> Tensor:
        return draw_uniforms(self.generator, self.batch, n).to(self.queues.device)


def resolve_path(backend: Optional[str], device: torch.device) -> str:
    """The path a generation on ``device`` runs: "naive", or fastgen.ops._route's backend for the
    kernels ("reference" is the plain-PyTorch queue algorithm)."""
    if backend is not None and _route.check_name("wavenet", backend, MODEL_PATHS) in MODEL_PATHS:
        return backend
    return _route.resolve(ops.KERNELS, device, ops.STATE_DTYPE, backend)


def _check_count(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"wavenet: {name} must be a positive int, got {value!r}")
    return value


def _check_temperature(temperature) -> float:
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not (
            math.isfinite(temperature) and temperature >= 0):
        raise ValueError(f"wavenet: temperature must be a finite number >= 0 (0 = argmax), got {temperature!r}")
    return float(temperature)


def _check_frame_offset(frame_offset, features: Optional[Tensor]) -> int:
    if isinstance(frame_offset, bool) or not isinstance(frame_offset, int) or frame_offset < 0:
        raise ValueError(f"wavenet: frame_offset must be an int >= 0, got {frame_offset!r}")
    if frame_offset and features is None:
        raise ValueError("wavenet: frame_offset applies to features (local conditioning), but none were given")
    return frame_offset


def _upsampled_window(model, features: Tensor, frame_offset: int, starts: Tensor,
                      lengths: Tensor) -> tuple[Optional[Tensor], int]:
    """The upsampled features of the frames that rows generating samples [starts[b], starts[b] +
    lengths[b]) condition on, and the utterance sample of its first column; (None, 0) when no row
    generates. Raises ValueError naming a row whose samples the features do not cover."""
    hop = model.config.hop_length
    have = (frame_offset * hop, (frame_offset + features.shape[2]) * hop)
    active = lengths > 0
    if not active.any():
        return None, 0
    ends = starts + lengths
    missing = (active & ((starts < have[0]) | (ends > have[1]))).nonzero()
    if len(missing):
        b = int(missing[0])
        raise ValueError(f"WaveNet.generate: row {b} generates samples [{int(starts[b])}, {int(ends[b])}), but the "
                         f"features (frame_offset {frame_offset}, {features.shape[2]} frames at hop {hop}) cover "
                         f"samples [{have[0]}, {have[1]})")
    first = int(starts[active].min()) // hop
    last = -(-int(ends[active].max()) // hop)
    # kernel = stride = hop: each frame upsamples on its own, so a window of frames is exact.
    return model.upsample_features(features[:, :, first - frame_offset:last - frame_offset]), first * hop


def _conditioning_steps(model, speaker: Optional[Tensor], features: Optional[Tensor], frame_offset: int,
                        starts: Tensor, lengths: Tensor) -> reference.CondSteps:
    """cond_steps(start, stop) for one call: row b's conditioning at its own utterance samples
    starts[b] + [start, stop) (rows resumed by a cache stand at different samples)."""
    upsampled, first = (None, 0) if features is None else _upsampled_window(model, features, frame_offset, starts,
                                                                          lengths)

    def cond_steps(start: int, stop: int) -> Optional[Tensor]:
        window = None
        if upsampled is not None:
            # Finished rows may point past the window; they read nothing, so clamp them into it.
            columns = (starts[:, None] + torch.arange(start, stop) - first).clamp_(0, upsampled.shape[2] - 1)
            columns = columns.to(upsampled.device)[:, None, :].expand(-1, upsampled.shape[1], -1)
            window = upsampled.gather(2, columns)
        return model.conditioning_steps(speaker, window)

    return cond_steps


def stream(model, n_samples: int, batch: int = 1, *, speaker: Optional[Tensor] = None,
           features: Optional[Tensor] = None, frame_offset: int = 0, temperature: float = 1.0,
           seed: Optional[int] = None, uniforms: Optional[Tensor] = None, lengths: Optional[Tensor] = None,
           backend: Optional[str] = "auto", cache: Optional[WaveNetCache] = None, weight_dtype: torch.dtype = torch.float32,
           chunk: int = DEFAULT_CHUNK, progress: bool = False) -> Iterator[Tensor]:
    """Yield mu-law tokens [B, <= chunk] until n_samples per row are out.

    speaker [B]: global conditioning. features [B, C, frames]: the utterance's conditioning frames
    from frame ``frame_offset`` on (0: the whole utterance), the same tensor on every call: a cache
    knows the sample each row stands at (rows stopped early by lengths stand at different ones), and
    each row reads its own frames, so a stream stopped and resumed at any sample gives the samples of
    an uninterrupted one. The features must cover every sample the call generates.
    uniforms [B, n_samples] fix the draws (row b's column i is its i-th sample of this call);
    otherwise they come from the cache's generator (seeded by ``seed`` when this call allocates the
    cache). lengths [B] (<= n_samples) stops rows early: finished rows cost nothing and read -1.
    """
    n_samples = _check_count("n_samples", n_samples)
    chunk = _check_count("chunk", chunk)
    temperature = _check_temperature(temperature)
    frame_offset = _check_frame_offset(frame_offset, features)
    device = model.embed.weight.device
    backend = resolve_path(backend, device)
    if cache is None:
        batch = _check_count("batch", batch)
    else:
        if backend in ("naive", "reference"):
            raise ValueError(f"wavenet: the {backend!r} path starts from scratch; it takes no cache")
        if seed is not None:
            raise ValueError("wavenet: seed applies to a new cache; a given cache continues its own generator")
        cache.check_model(model)
        batch = cache.batch
    model.check_conditioning(batch, None, speaker, features, "WaveNet.generate")
    if uniforms is not None:
        if not isinstance(uniforms, Tensor) or uniforms.shape != (batch, n_samples) or not uniforms.is_floating_point():
            raise ValueError(f"wavenet: uniforms must be a float tensor [{batch}, {n_samples}], got "
                             f"{getattr(uniforms, 'shape', type(uniforms).__name__)}")
        if uniforms.numel() and not (uniforms.min() >= 0 and uniforms.max() < 1):
            raise ValueError("wavenet: uniforms must lie in [0, 1)")
    if lengths is None:
        lengths = torch.full((batch,), n_samples, dtype=torch.int64)
    elif (not isinstance(lengths, Tensor) or lengths.shape != (batch,) or lengths.dtype != torch.int64
          or (lengths.numel() and (lengths.min() < 0 or lengths.max() > n_samples))):
        raise ValueError(f"wavenet: lengths must be an int64 tensor [{batch}] with values in [0, {n_samples}]")

    with torch.no_grad(), (cache.in_use() if cache is not None else contextlib.nullcontext()):
        # Read under the guard (nothing else advances the cache while this stream runs), and copied:
        # the kernel advances cache.positions in place.
        starts = (cache.positions.to("cpu", copy=True) if cache is not None
                  else torch.zeros(batch, dtype=torch.int64))
        cond_steps = _conditioning_steps(model, speaker, features, frame_offset, starts, lengths.cpu())
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=batch * n_samples, unit="sample", unit_scale=True, desc=f"wavenet {backend}")
        try:
            if backend in ("naive", "reference"):
                if uniforms is None:
                    uniforms = draw_uniforms(make_generator(seed), batch, n_samples)
                run = reference.generate_naive if backend == "naive" else reference.generate_queues
                first = torch.full((batch,), silence_token(model.config.classes), dtype=torch.int64, device=device)
                tokens = run(model, first, n_samples, cond_steps, uniforms.to(device), temperature)
                tokens = torch.where(torch.arange(n_samples, device=device)[None] < lengths.to(device)[:, None],
                                     tokens, -1)
                for start in range(0, n_samples, chunk):
                    if bar is not None:
                        bar.update(batch * min(chunk, n_samples - start))
                    yield tokens[:, start:start + chunk]
                return
            if cache is None:  # private to this call: no other stream can reach it
                cache = WaveNetCache(model, batch, weight_dtype, seed)
            lengths = lengths.to(device)
            for start in range(0, n_samples, chunk):
                stop = min(n_samples, start + chunk)
                u = cache.draw_uniforms(stop - start) if uniforms is None else uniforms[:, start:stop].to(device).float()
                cond = pack_conditioning(cond_steps(start, stop), model.config.residual_channels)
                chunk_lengths = (lengths - start).clamp(0, stop - start)
                yield ops.wavenet_generate(cache.queues, cache.positions, cache.last_tokens, cache.weights,
                                           cache.dilations, cond, u.contiguous(), chunk_lengths, temperature,
                                           backend)
                if bar is not None:
                    bar.update(batch * (stop - start))
        finally:
            if bar is not None:
                bar.close()


def generate(model, n_samples: int, batch: int = 1, *, output: str = "tokens", **kwargs) -> Tensor:
    """All of stream()'s samples at once: mu-law tokens [B, n] (int64), or with output="waveform" the
    decoded float waveform [B, n] in [-1, 1] (rows stopped early by lengths are zero-padded)."""
    if output not in ("tokens", "waveform"):
        raise ValueError(f"wavenet: output must be 'tokens' or 'waveform', got {output!r}")
    tokens = torch.cat(list(stream(model, n_samples, batch, **kwargs)), dim=1)
    if output == "tokens":
        return tokens
    from fastgen.data.audio import mu_law_decode

    return torch.where(tokens >= 0, mu_law_decode(tokens.clamp(min=0), model.config.classes), 0.0)


def step(model, cache: WaveNetCache, uniforms: Optional[Tensor] = None, **kwargs) -> Tensor:
    """One sample per row [B] from the cache (kwargs as stream(): speaker, features and frame_offset,
    temperature, backend)."""
    if uniforms is not None:
        uniforms = uniforms.reshape(cache.batch, 1)
    # Run the stream to its end (not next()): that releases the cache at once, not when collected.
    [tokens] = stream(model, 1, cache=cache, uniforms=uniforms, **kwargs)
    return tokens[:, 0]
