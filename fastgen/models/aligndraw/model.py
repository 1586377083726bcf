"""AlignDRAW: Generating Images from Captions with Attention (Mansimov, Parisotto, Ba &
Salakhutdinov, ICLR 2016).

Caption encoder (sec. 3.1): word embeddings of y_1..y_N through a bidirectional LSTM. The forward
direction reads y_1..y_N; the backward direction reads the REAL words in reverse, y_N..y_1, where N
is the caption's own length (padding never enters either direction). h^lang_k = [h->_k, h<-_k].

Image model (sec. 3.2), per step t = 1..T with h^gen_0 = 0, c_0 = 0::

    alignment  e_k     = v^T tanh(U h^lang_k + W h^gen_{t-1} + b)
               alpha   = softmax_k(e) over the caption's real words (padding gets exactly 0)
               s_t     = sum_k alpha_k h^lang_k
    prior      p(z_t | z_<t, y) = N(mu_p, sigma_p), mu_p = tanh(W_mu h^gen_{t-1}),
               log sigma_p = tanh(W_sigma h^gen_{t-1}); exactly N(0, I) at t = 1
    inference  x^_t    = x - sigmoid(c_{t-1})
               h^inf_t = LSTM^inf(h^inf_{t-1}, [read(x, x^_t, h^gen_{t-1}), h^gen_{t-1}])
               q(z_t | x, y, z_<t) = N(mu_q, sigma_q) from linear heads on h^inf_t; z_t = mu_q + sigma_q eps
    generator  h^gen_t = LSTM^gen(h^gen_{t-1}, [z_t, s_t]);  c_t = c_{t-1} + write(h^gen_t)

Loss per image in nats: -log D(x | c_T) + sum_t KL(q_t || p_t), KL between diagonal Gaussians in
closed form (fastgen.nn.distributions.kl_normal). Sampling draws z_t from the learned prior.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Union

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from fastgen.backend import get_backend
from fastgen.models.aligndraw.bptt import AlignCoreWeights, aligndraw_core
from fastgen.models.config_utils import check_model_fits, check_positive_ints, lstm_weights, resolve_config
from fastgen.models.draw import (Reader, Writer, backend_context, bound_and_metrics, check_common_config, check_images,
                                 core_applies, image_sizes, reconstruction_nll)
from fastgen.models.pretrained import Pretrained
from fastgen.nn.distributions import kl_normal, noise_per_step, sample_normal
from fastgen.nn.recurrent import lstm_gate_weights, stacked_linears, step_linears, step_lstm

# fastgen.data.captions: ids 0..21 are the authors' 22 words, 22 is <pad>.
_MNIST_CAPTIONS_VOCAB = 23
_MNIST_CAPTIONS_PAD = 22


@dataclass
class AlignDRAWConfig:
    """AlignDRAW's sizes. Defaults: the paper's MNIST-with-captions model (60x60 grey images, 32 steps,
    300-unit inference and generative LSTMs, 150-d z, 8x8 read and write, 128-unit language LSTM per
    direction, 512-d alignment space), over fastgen.data.captions' vocabulary (22 words + <pad>).

    vocab_size counts every token id, pad included; pad_id is the padding id (any id is fine in
    padded positions: they are replaced by pad_id and masked). embed_size is the word-embedding size
    (the authors fed one-hot words to the LSTM, i.e. an embedding folded into its input weights; 128
    here). read_N / write_N None mean no attention (as in DRAW). likelihood / output_std as DRAWConfig.
    """

    height: int = 60
    width: int = 60
    channels: int = 1
    T: int = 32
    infer_size: int = 300
    gen_size: int = 300
    z_size: int = 150
    read_N: Optional[int] = 8
    write_N: Optional[int] = 8
    vocab_size: int = _MNIST_CAPTIONS_VOCAB
    pad_id: int = _MNIST_CAPTIONS_PAD
    embed_size: int = 128
    lang_size: int = 128  # per direction; h^lang has 2 * lang_size
    align_size: int = 512
    likelihood: str = "bernoulli"
    output_std: float = 0.1  # only for likelihood="gaussian_fixed_var"
    attention_backend: str = "auto"

    def __post_init__(self):
        check_common_config(self, "AlignDRAWConfig")
        check_positive_ints(
            self, "AlignDRAWConfig", ("infer_size", "gen_size", "vocab_size", "embed_size", "lang_size", "align_size")
        )
        if not (0 <= self.pad_id < self.vocab_size):
            raise ValueError(f"AlignDRAWConfig: pad_id must be in [0, {self.vocab_size}), got {self.pad_id!r}")
        pixels, read, write = image_sizes(self)
        lang, gen, infer, z, align = 2 * self.lang_size, self.gen_size, self.infer_size, self.z_size, self.align_size
        weights = (self.vocab_size * self.embed_size + 2 * lstm_weights(self.embed_size, self.lang_size)
                   + (lang + gen + 1) * align + lstm_weights(read + gen, infer) + 2 * (infer + gen) * z
                   + lstm_weights(z + lang, gen) + gen * (write + 5))
        # per example and step: canvas, error image and read vector, LSTM states and gates, z, the
        # alignment over a caption (MNIST captions: 12 words) and its context
        per_step = 2 * pixels + read + 6 * (infer + gen) + 5 * z + lang + 12 * (align + 1)
        check_model_fits("AlignDRAWConfig", weights, self.T * per_step)


class AlignDRAW(Pretrained, nn.Module, kind="aligndraw", config_class=AlignDRAWConfig):
    """Caption-conditioned DRAW with a learned prior and soft alignment over the caption's words."""

    def __init__(self, config: Optional[AlignDRAWConfig] = None, **overrides):
        super().__init__()
        self.config = cfg = resolve_config("AlignDRAW", AlignDRAWConfig, config, overrides)
        C, H, W = cfg.channels, cfg.height, cfg.width
        lang_out = 2 * cfg.lang_size
        # caption encoder
        self.embedding = nn.Embedding(cfg.vocab_size, cfg.embed_size)
        self.language = nn.LSTM(cfg.embed_size, cfg.lang_size, batch_first=True, bidirectional=True)
        # alignment: U (with the bias b), W, v
        self.align_lang = nn.Linear(lang_out, cfg.align_size)
        self.align_gen = nn.Linear(cfg.gen_size, cfg.align_size, bias=False)
        self.align_v = nn.Linear(cfg.align_size, 1, bias=False)  # a bias would cancel in the softmax
        # inference network
        self.reader = Reader(cfg.read_N, C, H, W, cfg.gen_size)
        self.inference = nn.LSTMCell(self.reader.out_size + cfg.gen_size, cfg.infer_size)
        self.q_mu = nn.Linear(cfg.infer_size, cfg.z_size)
        self.q_log_sigma = nn.Linear(cfg.infer_size, cfg.z_size)
        # learned prior
        self.p_mu = nn.Linear(cfg.gen_size, cfg.z_size)
        self.p_log_sigma = nn.Linear(cfg.gen_size, cfg.z_size)
        # generative network
        self.generator_lstm = nn.LSTMCell(cfg.z_size + lang_out, cfg.gen_size)
        self.writer = Writer(cfg.write_N, C, H, W, cfg.gen_size)

    # -- caption ------------------------------------------------------------------------------

    def _check_caption(self, tokens: Tensor, lengths: Tensor, batch: Optional[int]) -> Tensor:
        for arg, name in ((tokens, "tokens"), (lengths, "lengths")):
            if not isinstance(arg, Tensor):
                raise TypeError(f"AlignDRAW: {name} must be a torch.Tensor, got {type(arg).__name__}")
            if arg.dtype.is_floating_point or arg.dtype == torch.bool or arg.is_complex():
                raise TypeError(f"AlignDRAW: {name} must be an integer tensor, got {arg.dtype}")
        if tokens.dim() != 2:
            raise ValueError(f"AlignDRAW: tokens must be [B, L], got shape {tuple(tokens.shape)}")
        if lengths.shape != (tokens.shape[0],):
            raise ValueError(f"AlignDRAW: lengths must be [{tokens.shape[0]}], got shape {tuple(lengths.shape)}")
        if batch is not None and tokens.shape[0] != batch:
            raise ValueError(f"AlignDRAW: {tokens.shape[0]} captions for {batch} images")
        L = tokens.shape[1]
        if lengths.numel() and (int(lengths.min()) < 1 or int(lengths.max()) > L):
            raise ValueError(f"AlignDRAW: lengths must lie in 1..{L} (every caption needs a word)")
        mask = torch.arange(L, device=tokens.device) < lengths.to(tokens.device)[:, None]
        real = tokens[mask]
        if real.numel() and (int(real.min()) < 0 or int(real.max()) >= self.config.vocab_size):
            raise ValueError(f"AlignDRAW: token ids must lie in 0..{self.config.vocab_size - 1}")
        return mask

    def encode_caption(self, tokens: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """h^lang [B, L, 2 * lang_size] (forward, backward; zeros at padding) and the mask [B, L]."""
        mask = self._check_caption(tokens, lengths, None)
        return self._encode(tokens, lengths, mask), mask

    def _encode(self, tokens: Tensor, lengths: Tensor, mask: Tensor) -> Tensor:
        L = tokens.shape[1]
        tokens = tokens.masked_fill(~mask, self.config.pad_id)  # what sits in padding never matters
        emb = self.embedding(tokens)
        packed = pack_padded_sequence(emb, lengths.cpu().long(), batch_first=True, enforce_sorted=False)
        out, _ = self.language(packed)
        h_lang, _ = pad_packed_sequence(out, batch_first=True, total_length=L)
        return h_lang

    def align(self, h_lang: Tensor, lang_proj: Tensor, mask: Tensor, gen_proj: Tensor) -> tuple[Tensor, Tensor]:
        """(s_t [B, 2 * lang_size], alpha [B, L]) with lang_proj = align_lang(h_lang) and
        gen_proj = align_gen(h^gen_{t-1})."""
        e = self.align_v(torch.tanh(lang_proj + gen_proj[:, None, :])).squeeze(-1)
        alpha = torch.softmax(e.masked_fill(~mask, float("-inf")), dim=1)
        return torch.bmm(alpha[:, None, :], h_lang).squeeze(1), alpha

    @property
    def gen_heads(self) -> list[nn.Linear]:
        """The linear maps of h^gen_{t-1} that step t uses: alignment, prior mean and log sigma, and
        the read window (with read attention), in the order ``split_gen_heads`` takes them."""
        return [self.align_gen, self.p_mu, self.p_log_sigma, *self.reader.heads]

    @staticmethod
    def split_gen_heads(outputs: list[Tensor], t: int) -> tuple[Tensor, Tensor, Tensor, list[Tensor]]:
        """(align_gen projection, mu_p, log sigma_p, read-head outputs) from the ``gen_heads``
        outputs at step t (0-based). The prior is tanh of its heads, and N(0, I) exactly at t = 0."""
        gen_proj, p_mu, p_log_sigma, *read = outputs
        if t == 0:
            return gen_proj, torch.zeros_like(p_mu), torch.zeros_like(p_log_sigma), read
        return gen_proj, torch.tanh(p_mu), torch.tanh(p_log_sigma), read

    # -- training -----------------------------------------------------------------------------

    def forward(
        self, x: Tensor, tokens: Tensor, lengths: Tensor, generator: Optional[torch.Generator] = None
    ) -> dict[str, Tensor]:
        """Per-image terms for images x [B, C, H, W] with captions (tokens [B, L], lengths [B]):
        "recon" [B], "kl" [B], "kl_steps" [T, B], "logits" (c_T) and "alignments" [T, B, L]."""
        cfg = self.config
        check_images("AlignDRAW", x, cfg)
        mask = self._check_caption(tokens, lengths, x.shape[0])
        x = x.to(self.q_mu.weight.dtype)
        with backend_context(cfg.attention_backend):
            h_lang = self._encode(tokens, lengths, mask)
            lang_proj = self.align_lang(h_lang)
            run = self._run_core if core_applies(x, self.q_mu.weight) else self._run_steps
            canvas, kl_steps, alignments = run(x, h_lang, lang_proj, mask, generator)
        recon = reconstruction_nll(canvas, x, cfg.likelihood, cfg.output_std)
        return {"recon": recon, "kl": kl_steps.sum(0), "kl_steps": kl_steps, "logits": canvas,
                "alignments": alignments}

    def _run_core(self, x: Tensor, h_lang: Tensor, lang_proj: Tensor, mask: Tensor,
                  generator: Optional[torch.Generator]) -> tuple[Tensor, Tensor, Tensor]:
        """(c_T, per-step KL [T, B], alignments [T, B, L]) through fastgen.models.aligndraw.bptt."""
        cfg = self.config
        Z = cfg.z_size
        eps = noise_per_step(x.new_empty(cfg.T, x.shape[0], Z), generator)
        canvas, q, p, alignments = aligndraw_core(x, eps, h_lang, lang_proj, mask, cfg.read_N, cfg.write_N,
                                                  self.core_weights())
        return canvas, kl_normal(q[..., :Z], q[..., Z:], p[..., :Z], p[..., Z:]).sum(2), alignments

    def core_weights(self) -> AlignCoreWeights:
        """The model's linear maps stacked the way fastgen.models.aligndraw.bptt builds its rows."""
        return AlignCoreWeights(
            *stacked_linears(self.gen_heads), *lstm_gate_weights(self.inference),
            *stacked_linears([self.q_mu, self.q_log_sigma]), *lstm_gate_weights(self.generator_lstm),
            *stacked_linears(self.writer.heads), self.align_v.weight.view(-1))

    def _run_steps(self, x: Tensor, h_lang: Tensor, lang_proj: Tensor, mask: Tensor,
                   generator: Optional[torch.Generator]) -> tuple[Tensor, Tensor, Tensor]:
        """(c_T, per-step KL [T, B], alignments [T, B, L]) step by step under autograd: the reference
        backend, CUDA, and images that need a gradient."""
        cfg = self.config
        B = x.shape[0]
        # Off the reference backend the recurrent layers take fastgen.nn.recurrent's fast path
        # (fused gate products, weight gradients once per sequence); same values either way.
        fast = get_backend() != "reference"
        inference = step_lstm(self.inference, cfg.T, fast)
        generator_lstm = step_lstm(self.generator_lstm, cfg.T, fast)
        gen_heads = step_linears(self.gen_heads, cfg.T, fast)
        q_heads = step_linears([self.q_mu, self.q_log_sigma], cfg.T, fast)
        write_heads = step_linears(self.writer.heads, cfg.T, fast)
        canvas = x.new_zeros(x.shape)
        h_inf, c_inf = x.new_zeros(B, cfg.infer_size), x.new_zeros(B, cfg.infer_size)
        h_gen, c_gen = x.new_zeros(B, cfg.gen_size), x.new_zeros(B, cfg.gen_size)
        kl_steps, alignments = [], []
        for t in range(cfg.T):
            gen_proj, mu_p, log_sigma_p, read = self.split_gen_heads(gen_heads(h_gen), t)
            s, alpha = self.align(h_lang, lang_proj, mask, gen_proj)
            x_hat = x - torch.sigmoid(canvas)
            r = self.reader.apply_heads(x, x_hat, read)
            h_inf, c_inf = inference((h_inf, c_inf), r, h_gen)
            mu_q, log_sigma_q = q_heads(h_inf)
            z = sample_normal(mu_q, log_sigma_q, generator)
            kl_steps.append(kl_normal(mu_q, log_sigma_q, mu_p, log_sigma_p).sum(1))
            h_gen, c_gen = generator_lstm((h_gen, c_gen), z, s)
            canvas, _ = self.writer.apply_heads(write_heads(h_gen), canvas)
            alignments.append(alpha)
        return canvas, torch.stack(kl_steps), torch.stack(alignments)

    def loss(
        self, x: Tensor, tokens: Tensor, lengths: Tensor, generator: Optional[torch.Generator] = None
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """(mean negative lower bound over the batch, metrics in nats per image)."""
        return bound_and_metrics(self(x, tokens, lengths, generator))

    # -- generation ---------------------------------------------------------------------------

    @torch.no_grad()
    def sample(
        self,
        tokens: Tensor,
        lengths: Tensor,
        generator: Optional[torch.Generator] = None,
        return_canvases: bool = False,
        return_alignments: bool = False,
        return_windows: bool = False,
    ) -> Union[Tensor, tuple]:
        """One image per caption, z_t drawn from the learned prior p(z_t | z_<t, y).

        Returns images sigmoid(c_T) [n, C, H, W]; then, as asked and in this order, the canvases
        sigmoid(c_t) [T, n, C, H, W], the alignments alpha [T, n, L], and the write windows' raw
        params [T, n, 5] (None without write attention).
        """
        cfg = self.config
        mask = self._check_caption(tokens, lengths, None)
        n = tokens.shape[0]
        ref = self.q_mu.weight
        canvases, alignments, windows = [], [], []
        with backend_context(cfg.attention_backend):
            h_lang = self._encode(tokens, lengths, mask)
            lang_proj = self.align_lang(h_lang)
            canvas = ref.new_zeros(n, cfg.channels, cfg.height, cfg.width)
            h_gen, c_gen = ref.new_zeros(n, cfg.gen_size), ref.new_zeros(n, cfg.gen_size)
            for t in range(cfg.T):
                gen_proj, mu_p, log_sigma_p, _ = self.split_gen_heads([m(h_gen) for m in self.gen_heads], t)
                s, alpha = self.align(h_lang, lang_proj, mask, gen_proj)
                z = sample_normal(mu_p, log_sigma_p, generator)
                h_gen, c_gen = self.generator_lstm(torch.cat([z, s], dim=1), (h_gen, c_gen))
                canvas, params = self.writer(h_gen, canvas)
                if return_canvases:
                    canvases.append(torch.sigmoid(canvas))
                if return_alignments:
                    alignments.append(alpha)
                if return_windows and params is not None:
                    windows.append(params)
        images = torch.sigmoid(canvas)
        if not (return_canvases or return_alignments or return_windows):
            return images
        extras = [images]
        if return_canvases:
            extras.append(torch.stack(canvases))
        if return_alignments:
            extras.append(torch.stack(alignments))
        if return_windows:
            extras.append(torch.stack(windows) if windows else None)
        return tuple(extras)


def loss_fn(model: AlignDRAW, batch, generator: Optional[torch.Generator]) -> tuple[Tensor, dict[str, Tensor]]:
    """fastgen.train contract: batch = (images [B, C, H, W], tokens [B, L], lengths [B]) (extra tuple
    elements are ignored) or a dict with those keys. Returns (mean bound, metrics)."""
    if isinstance(batch, dict):
        images, tokens, lengths = batch["images"], batch["tokens"], batch["lengths"]
    elif isinstance(batch, (tuple, list)) and len(batch) >= 3:
        images, tokens, lengths = batch[0], batch[1], batch[2]
    else:
        raise ValueError("aligndraw loss_fn: batch must be (images, tokens, lengths)")
    return model.loss(images, tokens, lengths, generator)
