"""PixelRNN as a model of the pixel recipe (fastgen.recipes.pixelcnn): its ModelKind, which the
recipe's training, loading, evaluation and sampling take in place of a built-in kind's name."""
from __future__ import annotations

from fastgen.models.pixelrnn import PixelRNN, PixelRNNConfig
from fastgen.recipes.pixelcnn.model import ModelKind

LAYER_TITLES = {"row": "Row LSTM", "diagonal": "Diagonal BiLSTM"}


def describe(cfg: PixelRNNConfig) -> str:
    """"7 Diagonal BiLSTM layers of 16, 7x7 mask A" (the Row LSTM's k beside it; skips when on)."""
    kernel = f" (k={cfg.row_kernel})" if cfg.layer == "row" else ""
    plural = "s" if cfg.layers != 1 else ""
    skips = ", skip connections" if cfg.skips else ""
    return (f"{cfg.layers} {LAYER_TITLES[cfg.layer]}{kernel} layer{plural} of {cfg.hidden}, "
            f"{cfg.first_kernel}x{cfg.first_kernel} mask A{skips}")


PIXELRNN = ModelKind("pixelrnn", "PixelRNN", PixelRNN, PixelRNNConfig, describe)

__all__ = ["LAYER_TITLES", "PIXELRNN", "describe"]
