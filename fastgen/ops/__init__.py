"""Functional fastgen ops (differentiable, torch.compile-friendly)."""
from fastgen.ops.attention import attention_read, attention_write
from fastgen.ops.draw import draw_generate

__all__ = ["attention_read", "attention_write", "draw_generate"]
