"""Complete model definitions, one package per paper (its model, generation driver and training core).

Each exposes its model, a config dataclass, and ``loss_fn(model, batch, generator)`` for
fastgen.train. Every model saves and loads with ``save_pretrained`` / ``from_pretrained``
(fastgen.models.pretrained).
"""
from . import aligndraw, draw, irgan, pixelcnn, pixelrnn, wavenet
from .aligndraw import AlignDRAW, AlignDRAWConfig
from .avb import AVB, AVBConfig
from .draw import DRAW, DRAWConfig
from .pixelcnn import GatedPixelCNN, GatedPixelCNNConfig, PixelCNN, PixelCNNConfig
from .pixelrnn import PixelRNN, PixelRNNConfig
from .pretrained import Pretrained
from .vaegan import VAEGAN, VAEGANConfig
from .wavenet import WaveNet, WaveNetConfig

__all__ = ["AVB", "AVBConfig", "AlignDRAW", "AlignDRAWConfig", "DRAW", "DRAWConfig", "GatedPixelCNN",
           "GatedPixelCNNConfig", "PixelCNN", "PixelCNNConfig", "PixelRNN", "PixelRNNConfig", "Pretrained", "VAEGAN",
           "VAEGANConfig", "WaveNet", "WaveNetConfig", "aligndraw", "draw", "irgan", "pixelcnn", "pixelrnn", "wavenet"]
