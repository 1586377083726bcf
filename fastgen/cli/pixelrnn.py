"""``fastgen train|eval|sample|bench pixelrnn`` and its demo part: PixelCNN's commands
(fastgen.cli.pixelcnn: the same data, protocol, run folders, resume and torchrun) over PixelRNN's
ModelKind (fastgen.recipes.pixelrnn), with its size flags (--layer row|diagonal first), its samplers
and its benchmark (fastgen.recipes.pixelrnn.bench)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fastgen.cli.pixelcnn import SIZE_FLAGS, PixelFamily, SampleMethods
from fastgen.recipes.family import DemoBudget

LAYERS = ("row", "diagonal")  # fastgen.models.pixelrnn.LAYERS, without importing the model here
SIZE_FLAGS_RNN = {
    "layer": ("the recurrent layer: row (Row LSTM) or diagonal (Diagonal BiLSTM)", {"choices": LAYERS}),
    "layers": ("LSTM layers after the mask-A layer", {}),
    "hidden": ("h: LSTM state channels (the residual stream carries 2h)", {}),
    "row_kernel": ("the Row LSTM's k (odd, >= 3): its k x 1 state-to-state and 1 x k input-to-state kernels", {}),
    "skips": ("learnable 1x1 skip connections from every layer to the output",
              {"action": argparse.BooleanOptionalAction}),
    "output_hidden": SIZE_FLAGS["output_hidden"],
    "first_kernel": SIZE_FLAGS["first_kernel"],
}
SAMPLE_METHODS = SampleMethods(
    ("fastgen", "naive"), None,
    "default: PixelRNN.sample's own sampler; fastgen: the cached C++ sampler (where it is built); naive: one "
    "full forward pass per sub-pixel (the definition); the same seed gives the same images")


class PixelRNNFamily(PixelFamily):
    """PixelRNN: train, eval, sample, bench, demo."""

    def __init__(self):
        super().__init__(
            "pixelrnn", "PixelRNN", DemoBudget(full=25, quick=6),  # with PixelCNN's, its former 60 / 15 s
            "Train a tiny Diagonal BiLSTM PixelRNN on the binary MNIST subset and write samples, the raster-order "
            "sampling GIF, the training curve and its sampling speed.",
            bench_help="PixelRNN: one Row LSTM / Diagonal LSTM layer (forward, forward+backward) against the eager "
                       "twin and torch.compile, and a whole-model training step",
            size_flags=SIZE_FLAGS_RNN, sample_methods=SAMPLE_METHODS)
        self.help["train"] = "PixelRNN, --layer row|diagonal (binary MNIST by default)"

    def kind(self):
        from fastgen.recipes.pixelrnn import PIXELRNN
        return PIXELRNN

    def add_arguments(self, verb: str, parser: argparse.ArgumentParser) -> None:
        super().add_arguments(verb, parser)
        if verb == "bench":
            parser.add_argument("--layer", choices=LAYERS, action="append",
                                help="the layer to time (repeatable; default both)")
            parser.add_argument("--config", choices=("mnist", "colour"), action="append",
                                help="mnist (B=16, h=16, 28x28; with the whole-model step) or colour (B=16, h=128, "
                                     "32x32; its torch.compile takes many minutes); repeatable, default both")

    def bench(self, args: argparse.Namespace) -> str:
        from fastgen.recipes.pixelrnn.bench import CONFIGS, run_pixelrnn_benchmark
        return run_pixelrnn_benchmark(args.threads, quick=args.quick, layers=tuple(args.layer or LAYERS),
                                      configs=tuple(args.config or CONFIGS),
                                      log=lambda line: print(line, file=sys.stderr, flush=True))

    def demo(self, out: Path, quick: bool, budget: float) -> list[tuple[str, Path]]:
        from fastgen.cli.pixelrnn_demo import demo_part
        return demo_part(self.kind(), self.title, out, quick, budget)


PIXELRNN = PixelRNNFamily()
