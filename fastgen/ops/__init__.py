"""Functional fastgen ops (differentiable, torch.compile-friendly)."""
from fastgen.ops.attention import attention_read, attention_write
from fastgen.ops.draw import draw_generate
from fastgen.ops.lstm import lstm_cell_pointwise

__all__ = ["attention_read", "attention_write", "draw_generate", "lstm_cell_pointwise"]
