"""Figures for inspecting fastgen's layers and models (Pillow only, no matplotlib)."""
from .attention import glimpse_figure, window_geometry
from .audio import audio_figure, save_audio_figure
from .samples import canvas_frames, caption_frames, caption_grid, curve_figure, image_grid, save_gif

__all__ = ["audio_figure", "canvas_frames", "caption_frames", "caption_grid", "curve_figure", "glimpse_figure",
           "image_grid", "save_audio_figure", "save_gif", "window_geometry"]
