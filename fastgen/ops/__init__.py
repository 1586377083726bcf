"""Functional fastgen ops (differentiable, torch.compile-friendly)."""
from fastgen.ops.attention import attention_read, attention_write

__all__ = ["attention_read", "attention_write"]
