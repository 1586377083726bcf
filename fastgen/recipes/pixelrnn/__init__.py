"""Training, evaluation and sampling of PixelRNN (Row LSTM or Diagonal BiLSTM): PixelCNN's recipe
(fastgen.recipes.pixelcnn: the same data, binarisation protocol, validation split, exact NLL, run
description, resumable and data-parallel Trainer) with PixelRNN's ModelKind; usable from Python::

    spec = DataSpec.from_arg("mnist-subset")
    result = train_run({"layer": "row", "layers": 2, "hidden": 16}, spec, TrainConfig(batch_size=32, epochs=5),
                       "runs/row")
    model, run, ckpt = load_run("runs/row")
    print(evaluate_run(model, run, "val")["value"])              # model selection: validation
    print(evaluate_run(model, run, "test")["value"])             # once, for the reported figure

The benchmark of ``fastgen bench pixelrnn`` is :mod:`.bench`.
"""
from __future__ import annotations

from functools import partial

from fastgen.recipes import pixelcnn as _recipe
from fastgen.recipes.pixelcnn import DataSpec, Split, evaluate_run, load_split, sample_levels
from fastgen.recipes.pixelrnn.model import LAYER_TITLES, PIXELRNN
from fastgen.recipes.runs import RecipeError, TrainResult

train_run = partial(_recipe.train_run, PIXELRNN)
load_run = partial(_recipe.load_run, kind=PIXELRNN)
read_run = partial(_recipe.read_run, kind=PIXELRNN)
make_config = partial(_recipe.make_config, PIXELRNN)

__all__ = ["DataSpec", "LAYER_TITLES", "PIXELRNN", "RecipeError", "Split", "TrainResult", "evaluate_run", "load_run",
           "load_split", "make_config", "read_run", "sample_levels", "train_run"]
