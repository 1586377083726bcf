"""Training, evaluation and sampling of PixelCNN and Gated PixelCNN: what ``fastgen train|eval|sample
pixelcnn|gated-pixelcnn`` and ``fastgen demo`` run; usable from Python too::

    spec = DataSpec.from_arg("mnist-subset")                      # binary, dynamic binarisation
    result = train_run("gated-pixelcnn", {"layers": 5, "hidden": 32}, spec,
                       TrainConfig(batch_size=32, epochs=5), "runs/gated")
    train_run("gated-pixelcnn", {}, spec, TrainConfig(epochs=5), "runs/cond", conditional=True)  # on the labels
    model, run, ckpt = load_run("runs/gated")
    print(evaluate_run(model, run, "val")["value"])              # model selection: validation
    print(evaluate_run(model, run, "test")["value"])             # once, for the reported figure

Data (:mod:`.data`): binary MNIST subset / Fashion-MNIST with a binarisation protocol, 256-level
Fashion-MNIST, colour patches of a folder of images (default: the photographs shipped in
scikit-image / scikit-learn) and CIFAR-10's binary batches; a validation split carved from the
training split; the test split read only by :func:`evaluate_run`.

Models and metrics (:mod:`.model`): fastgen.models.pixelcnn's PixelCNN and GatedPixelCNN (small MNIST
configs for binary data, the paper-scale defaults otherwise; flags override every size), the exact
NLL in nats/image (binary) or bits/dim (256 levels) with its standard error.

Runs (:mod:`.training`): the fastgen Trainer (resumable bit-exactly, data-parallel under torchrun),
the run description stored in the checkpoint's config.json, loading, evaluation and sampling.
"""
from fastgen.recipes.pixelcnn.data import BINARY_SOURCES, SOURCES, DataSpec, Split, load_split
from fastgen.recipes.pixelcnn.model import (KINDS, METRIC, MODEL_KINDS, TITLES, ModelKind, build_model,
                                            check_conditional, config_class, describe_config, make_config,
                                            make_loss_fn, model_kind, nll_summary, nll_text, per_image_nll,
                                            size_fields)
from fastgen.recipes.pixelcnn.training import (evaluate_run, find_checkpoint, load_run, read_run, run_config,
                                               sample_levels, spec_from_run, train_run, validation_text)
from fastgen.recipes.runs import RecipeError, TrainResult

__all__ = ["BINARY_SOURCES", "DataSpec", "KINDS", "METRIC", "MODEL_KINDS", "ModelKind", "RecipeError", "SOURCES",
           "Split", "TITLES", "TrainResult", "build_model", "check_conditional", "config_class", "describe_config",
           "evaluate_run", "find_checkpoint", "load_run", "load_split", "make_config", "make_loss_fn", "model_kind",
           "nll_summary", "nll_text", "per_image_nll", "read_run", "run_config", "sample_levels", "size_fields",
           "spec_from_run", "train_run", "validation_text"]
