"""glimpse_figure: sizes, per-example N, windows outside the image, and input checks."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from fastgen.viz import glimpse_figure


def _params(B):
    p = torch.randn(B, 5) * 0.3
    p[:, 4] = 0  # gamma = 1
    return p


def test_one_panel_per_example_and_layout():
    images = torch.rand(4, 28, 28)
    one_row = glimpse_figure(images, _params(4), 5, columns=4)
    two_rows = glimpse_figure(images, _params(4), 5, columns=2)
    assert isinstance(one_row, Image.Image) and one_row.mode == "RGB"
    assert one_row.width > two_rows.width and one_row.height < two_rows.height
    assert one_row.width >= 4 * 2 * 28 * 6  # each panel holds the image and the patch at scale 6


def test_scale_and_non_square_and_channel_dim():
    small = glimpse_figure(torch.rand(1, 1, 20, 32), _params(1), 3, scale=2)
    large = glimpse_figure(torch.rand(1, 1, 20, 32), _params(1), 3, scale=8)
    assert large.width > small.width and large.height > small.height


def test_per_example_N_and_extreme_windows():
    images = torch.rand(3, 28, 28)
    params = torch.tensor([
        [0.0, 0.0, math.log(1.0), 0.0, 0.0],
        [5.0, -5.0, math.log(0.01), 2.0, 1.0],  # far outside the image, tiny sigma, huge delta
        [0.0, 0.0, math.log(400.0), -6.0, -1.0],  # huge sigma, tiny delta
    ])
    fig = glimpse_figure(images, params, [1, 2, 12], titles=["a", "b", "c"])
    assert fig.getbbox() is not None


def test_overlay_is_drawn():
    # A black image: any coloured pixel in the image area comes from the overlay.
    fig = glimpse_figure(torch.zeros(1, 28, 28), _params(1), 4)
    rgb = np.asarray(fig).astype(int)
    reds = (rgb[..., 0] > 200) & (rgb[..., 1] < 120) & (rgb[..., 2] < 120)
    assert reds.sum() > 4 * 4  # at least the 16 centre dots


@pytest.mark.parametrize("images, params, N, match", [
    (torch.rand(2, 28), torch.zeros(2, 5), 3, "images must be"),
    (torch.rand(2, 28, 28), torch.zeros(3, 5), 3, r"params must be \[2, 5\]"),
    (torch.rand(2, 28, 28), torch.zeros(2, 5), [3], "N must be"),
    (torch.rand(2, 28, 28), torch.zeros(2, 5), 0, "N must be"),
    (torch.rand(1, 28, 28), torch.full((1, 5), float("nan")), 3, "NaN"),
])
def test_bad_input(images, params, N, match):
    with pytest.raises(ValueError, match=match):
        glimpse_figure(images, params, N)
