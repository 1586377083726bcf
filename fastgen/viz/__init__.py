"""Figures for inspecting fastgen's layers and models (Pillow only, no matplotlib)."""
from .attention import glimpse_figure

__all__ = ["glimpse_figure"]
