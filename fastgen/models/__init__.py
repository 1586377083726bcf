"""Complete model definitions, one package per paper (its model, generation driver and training core).

Each exposes its model, a config dataclass, and ``loss_fn(model, batch, generator)`` for
fastgen.train. Every model saves and loads with ``save_pretrained`` / ``from_pretrained``
(fastgen.models.pretrained).
"""
from . import aligndraw, draw, pixelcnn, wavenet
from .aligndraw import AlignDRAW, AlignDRAWConfig
from .draw import DRAW, DRAWConfig
from .pixelcnn import GatedPixelCNN, GatedPixelCNNConfig, PixelCNN, PixelCNNConfig
from .pretrained import Pretrained
from .wavenet import WaveNet, WaveNetConfig

__all__ = ["AlignDRAW", "AlignDRAWConfig", "DRAW", "DRAWConfig", "GatedPixelCNN", "GatedPixelCNNConfig", "PixelCNN",
           "PixelCNNConfig", "Pretrained", "WaveNet", "WaveNetConfig", "aligndraw", "draw", "pixelcnn", "wavenet"]
