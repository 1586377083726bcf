"""fastgen.viz.samples: grids, windows, GIF frames, caption grids, curves, and input checks."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from fastgen.viz import (canvas_frames, caption_frames, caption_grid, curve_figure, image_grid, save_gif,
                         window_geometry)


def _red(img: Image.Image) -> np.ndarray:
    a = np.asarray(img.convert("RGB")).astype(int)
    return (a[..., 0] > 200) & (a[..., 1] < 120) & (a[..., 2] < 100)


def test_grid_layout_and_pixels():
    images = torch.rand(10, 1, 28, 28)
    grid = image_grid(images, columns=5, scale=3, pad=2)
    assert grid.size == (5 * (28 * 3 + 4), 2 * (28 * 3 + 4)) and grid.mode == "RGB"
    a = np.asarray(grid)
    # the first image's top-left pixel, scaled to a 3x3 block at (pad, pad)
    v = round(float(images[0, 0, 0, 0]) * 255)
    assert (a[2:5, 2:5] == v).all()
    assert image_grid(torch.rand(5, 28, 28)).size == image_grid(torch.rand(5, 1, 28, 28)).size
    assert image_grid(torch.rand(2, 3, 8, 12), scale=1, pad=0).size == (2 * 12, 8)


def test_window_box_follows_the_reference_geometry():
    """A window centred on the image with delta~ = 0.5: the box spans first..last filter centre."""
    params = torch.tensor([[0.0, 0.0, 0.0, math.log(0.5), 0.0]])
    g = window_geometry(params[0], 5, 28, 28)
    grid = image_grid(torch.zeros(1, 1, 28, 28), windows=params, N=5, scale=4, pad=0)
    ys, xs = np.nonzero(_red(grid))
    assert xs.min() == pytest.approx((g["x_first"] - 0.5) * 4, abs=2.5)
    assert xs.max() == pytest.approx((g["x_last"] - 0.5) * 4, abs=2.5)
    assert ys.min() == pytest.approx((g["y_first"] - 0.5) * 4, abs=2.5)


def test_windows_outside_or_huge_stay_visible():
    params = torch.tensor([[0.0, 0.0, math.log(100.0), 3.0, 0.0],    # far larger than the image
                           [8.0, -8.0, 0.0, -4.0, 0.0]])              # tiny, far outside
    grid = image_grid(torch.rand(2, 1, 28, 28) * 0.2, windows=params, N=5, columns=2)
    cell = 28 * 2 + 4
    red = _red(grid)
    assert red[:, :cell].sum() > 0 and red[:, cell:].sum() > 0


def test_canvas_frames_one_per_step_and_gif(tmp_path):
    T, n = 4, 3
    canvases = torch.rand(T, n, 1, 12, 12)
    windows = torch.randn(T, n, 5) * 0.3
    frames = canvas_frames(canvases, windows, N=3)
    assert len(frames) == T and len({f.size for f in frames}) == 1
    path = save_gif(frames, tmp_path / "a" / "c.gif")
    with Image.open(path) as im:
        assert im.n_frames == T and im.info.get("loop") == 0
    # identical canvases still give T frames: the step label differs
    path = save_gif(canvas_frames(torch.zeros(T, n, 1, 12, 12)), tmp_path / "same.gif")
    with Image.open(path) as im:
        assert im.n_frames == T


def test_caption_grid_and_frames():
    images = torch.rand(2, 3, 1, 20, 20)
    captions = ["the digit 3 is on the left of the digit 7 .", "the digit 0 is at the top left of the image ."]
    fig = caption_grid(images, captions, notes=["seen", "held-out"])
    assert fig.width >= 3 * 20 * 2 and fig.height > 2 * 20 * 2
    weights = torch.rand(2, 12)
    assert caption_grid(images, captions, word_weights=weights).size[0] == fig.size[0]
    with pytest.raises(ValueError, match="word weights"):
        caption_grid(images, captions, word_weights=torch.rand(2, 5))
    with pytest.raises(ValueError, match="captions"):
        caption_grid(images, captions[:1])
    T = 3
    frames = caption_frames(torch.rand(T, 2, 3, 1, 20, 20), captions, windows=torch.randn(T, 2, 3, 5) * 0.3,
                            N=4, alignments=torch.softmax(torch.randn(T, 2, 12), -1), legend="shading")
    assert len(frames) == T


def test_curve_figure():
    fig = curve_figure({"train": (range(100), np.linspace(500, 100, 100)), "test": ([0, 50, 99], [520, 200, 110])},
                       title="bound", ylabel="nats")
    assert fig.size == (640, 360)
    assert len(np.unique(np.asarray(fig).reshape(-1, 3), axis=0)) > 10
    curve_figure({"empty": ([], [])})  # no data: an empty frame, no error


@pytest.mark.parametrize("call, match", [
    (lambda: image_grid(torch.rand(2, 2, 8, 8)), "images must be"),
    (lambda: image_grid(torch.rand(0, 1, 8, 8)), "no images"),
    (lambda: image_grid(torch.rand(2, 8, 8), windows=torch.zeros(3, 5), N=2), r"windows must be \[2, 5\]"),
    (lambda: image_grid(torch.rand(2, 8, 8), windows=torch.zeros(2, 5)), "N"),
    (lambda: save_gif([], "x.gif"), "no frames"),
    (lambda: canvas_frames(torch.rand(2, 1, 1, 8, 8), torch.zeros(3, 1, 5), N=2), "window steps"),
])
def test_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()
