"""Figures for inspecting fastgen's layers and models (Pillow only, no matplotlib). The sample files of
trained image models (write_draw_samples, write_caption_samples) are in :mod:`fastgen.viz.model_samples`,
which imports the recipes it needs only when called."""
from .attention import glimpse_figure, window_geometry
from .audio import audio_figure, save_audio_figure
from .curves import history_curve
from .samples import canvas_frames, caption_frames, caption_grid, curve_figure, image_grid, save_gif

__all__ = ["audio_figure", "canvas_frames", "caption_frames", "caption_grid", "curve_figure", "glimpse_figure",
           "history_curve", "image_grid", "save_audio_figure", "save_gif", "window_geometry"]
