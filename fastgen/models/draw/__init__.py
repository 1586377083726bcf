"""DRAW (Gregor et al., ICML 2015) and the pieces of the DRAW family that AlignDRAW reuses.

model.py       DRAW, DRAWConfig, loss_fn (fastgen.train's contract)
bptt.py        the hand-written backpropagation-through-time core DRAW trains through on the cpu kernels
read_write.py  Reader / Writer: the read and write blocks, with or without attention
family.py      what DRAW and AlignDRAW share: output likelihood, config and image checks, the bound
"""
from fastgen.models.draw.family import (LIKELIHOODS, backend_context, bound_and_metrics, check_common_config,
                                        check_images, core_applies, image_sizes, reconstruction_nll)
from fastgen.models.draw.model import DRAW, DRAWConfig, loss_fn
from fastgen.models.draw.read_write import Reader, Writer

__all__ = ["DRAW", "DRAWConfig", "LIKELIHOODS", "Reader", "Writer", "backend_context", "bound_and_metrics",
           "check_common_config", "check_images", "core_applies", "image_sizes", "loss_fn", "reconstruction_nll"]
