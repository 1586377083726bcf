"""Complete model definitions, one module per paper.

Each module exposes its model, a config dataclass, and ``loss_fn(model, batch, generator)`` for
fastgen.train.
"""
from . import aligndraw, draw, wavenet
from .aligndraw import AlignDRAW, AlignDRAWConfig
from .draw import DRAW, DRAWConfig
from .wavenet import WaveNet, WaveNetConfig

__all__ = ["AlignDRAW", "AlignDRAWConfig", "DRAW", "DRAWConfig", "WaveNet", "WaveNetConfig", "aligndraw", "draw",
           "wavenet"]
