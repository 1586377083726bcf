"""Functional fastgen ops (differentiable, torch.compile-friendly); fastgen.ops._route is the one rule
that picks each call's backend."""
from fastgen.ops.attention import attention_read, attention_write
from fastgen.ops.draw import draw_generate
from fastgen.ops.items import sample_items, topk_items
from fastgen.ops.lstm import lstm_cell_pointwise
from fastgen.ops.masked_conv import masked_conv2d
from fastgen.ops.pixel_lstm import diagonal_bilstm, diagonal_lstm, row_lstm
from fastgen.ops.pixelcnn_sampler import pixelcnn_sample  # noqa: F401  (state-level op; users call fast_sampling)
from fastgen.ops.pixelrnn_sampler import pixelrnn_sample  # noqa: F401  (state-level op; users call fast_sampling)
from fastgen.ops.wavenet import wavenet_generate

__all__ = ["attention_read", "attention_write", "diagonal_bilstm", "diagonal_lstm", "draw_generate", "lstm_cell_pointwise",
           "masked_conv2d", "row_lstm", "sample_items", "topk_items", "wavenet_generate"]
