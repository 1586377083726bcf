"""Triton kernels and their launchers, one module per kernel family (see fastgen/ops for the public ops)."""
