"""Figures for inspecting fastgen's layers and models (Pillow only, no matplotlib)."""
from .attention import glimpse_figure, window_geometry
from .samples import canvas_frames, caption_frames, caption_grid, curve_figure, image_grid, save_gif

__all__ = ["canvas_frames", "caption_frames", "caption_grid", "curve_figure", "glimpse_figure",
           "image_grid", "save_gif", "window_geometry"]
