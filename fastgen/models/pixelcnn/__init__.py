"""PixelCNN (van den Oord, Kalchbrenner & Kavukcuoglu 2016) and Gated PixelCNN (van den Oord et al.
2016, "Conditional Image Generation with PixelCNN Decoders") over fastgen.nn.MaskedConv2d.

model.py     PixelCNN, PixelCNNConfig, what both models share (PixelModel: images, loss, sample), loss_fn
gated.py     GatedPixelCNN, GatedPixelCNNConfig
sampling.py  sample_naive (one forward per sub-pixel), sample_cached (its cached twin), cached_logits
"""
from fastgen.models.pixelcnn import sampling
from fastgen.models.pixelcnn.gated import GatedPixelCNN, GatedPixelCNNConfig
from fastgen.models.pixelcnn.model import LEVELS, PixelCNN, PixelCNNConfig, PixelModel, loss_fn
from fastgen.models.pixelcnn.sampling import cached_logits, draw_levels, sample_cached, sample_naive

__all__ = ["GatedPixelCNN", "GatedPixelCNNConfig", "LEVELS", "PixelCNN", "PixelCNNConfig", "PixelModel",
           "cached_logits", "draw_levels", "loss_fn", "sample_cached", "sample_naive", "sampling"]
