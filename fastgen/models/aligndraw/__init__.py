"""AlignDRAW (Mansimov et al., ICLR 2016): DRAW conditioned on captions through soft alignment.

model.py  AlignDRAW, AlignDRAWConfig, loss_fn (fastgen.train's contract)
bptt.py   the hand-written backpropagation-through-time core it trains through on the cpu kernels
"""
from fastgen.models.aligndraw.model import AlignDRAW, AlignDRAWConfig, loss_fn

__all__ = ["AlignDRAW", "AlignDRAWConfig", "loss_fn"]
