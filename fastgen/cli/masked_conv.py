"""The masked-convolution kernel family (PixelCNN's and Gated PixelCNN's convolutions):
``fastgen bench masked-conv``, fastgen.ops.masked_conv2d against oneDNN and torch.compile of the
masked dense convolution on the models' layer shapes (fastgen.benchmarking.masked_conv)."""
from __future__ import annotations

import argparse

from fastgen.recipes.family import Family


class MaskedConvFamily(Family):
    name = "masked-conv"
    title = "masked convolutions"
    verbs = ("bench",)
    help = {"bench": "PixelCNN's masked convolutions (skipping masked taps) against oneDNN and torch.compile"}

    def bench(self, args: argparse.Namespace) -> str:
        from fastgen.benchmarking.masked_conv import run_masked_conv_benchmark
        return run_masked_conv_benchmark(threads=args.threads, quick=args.quick)


FAMILY = MaskedConvFamily()
