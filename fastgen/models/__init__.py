"""Complete model definitions, one module per paper.

Each module exposes its model, a config dataclass, and ``loss_fn(model, batch, generator)`` for
fastgen.train.
"""
from . import aligndraw, draw
from .aligndraw import AlignDRAW, AlignDRAWConfig
from .draw import DRAW, DRAWConfig

__all__ = ["AlignDRAW", "AlignDRAWConfig", "DRAW", "DRAWConfig", "aligndraw", "draw"]
