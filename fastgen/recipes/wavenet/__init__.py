"""Training, evaluation and sampling of WaveNet on speech: what ``fastgen train|eval|sample wavenet``
and ``fastgen demo`` run; usable from Python too::

    spec = DataSpec.from_arg("corpus")            # or a folder of WAVs
    result = train_run({"residual_channels": 32, "skip_channels": 64, "layers_per_stack": 8},
                       "both", spec, TrainSettings(steps=300, batch_size=4, crop=4096), "runs/wavenet")
    model, run, ckpt = load_run("runs/wavenet")
    print(evaluate_run(model, run)["bits_per_sample"])
    audio = sample_run(model, run, seconds=2.0, seed=0).waveform

Data (:class:`DataSpec`): "corpus" is the espeak-ng speech corpus of :func:`fastgen.data.synthesize_corpus`
(``corpus_size`` utterances by 4 synthetic speakers at 16 kHz), synthesised once into
:func:`data_root` (``$FASTGEN_DATA_DIR``, else ``$XDG_CACHE_HOME/fastgen``, else ``~/.cache/fastgen``)
and reused; or a folder of WAVs (every file speaker 0, or one speaker per top-level subfolder with
``speaker_folders``), resampled to ``sample_rate``. Utterances are split by :meth:`SpeechDataset.split`
(seeded, stratified by speaker) into train / validation / test.

Training (:func:`train_run`) uses fastgen.train's Trainer. Every step draws ``batch_size`` random crops
of ``crop`` samples (hop-aligned, uniform over the training utterances) from the Trainer's noise
generator, so the crop sequence is an infinite seeded stream and resuming is bit-exact. An "epoch" is
:data:`EPOCH_STEPS` steps (it only sets the logging of fractional epochs); the run lasts ``steps``.

Metrics, all in bits per sample (a sample = one mu-law token of ``classes``):

* validation (periodic): teacher-forced cross-entropy on ``val_crops`` fixed crops of the validation
  utterances (drawn once, seed :data:`VAL_SEED`), beside the unigram baseline on the same tokens;
* test (:func:`test_nll`, ``fastgen eval``): teacher-forced cross-entropy over every whole test
  utterance (each sample after the first predicted from all the samples before it, zero history
  before the utterance's first sample), averaged over all predicted samples; deterministic. Beside it
  the mu-law unigram baseline (:func:`fastgen.data.unigram_baseline`: the training token
  frequencies, add-one smoothed) on exactly the same predicted samples.

The checkpoint's model config (``fastgen.train`` stores it in config.json) is the run description
:func:`run_config` builds: model config, conditioning, data spec and split sizes, training settings,
evaluation settings; ``load_run`` rebuilds the model from it.

Modules: :mod:`.data` (corpus, DataSpec, splits), :mod:`.model` (config, loss, metrics),
:mod:`.training` (TrainSettings, train_run, run description, evaluate_run), :mod:`.sampling`
(sample_run).
"""
from fastgen.recipes.runs import RecipeError, TrainResult
from fastgen.recipes.wavenet.data import (CORPUS, DEFAULT_CORPUS_SIZE, DataSpec, Splits, corpus_dir, data_root,
                                          load_splits, spec_from_run)
from fastgen.recipes.wavenet.model import (BASELINE, CONDITIONINGS, TEST_METRIC, build_model, check_conditioning,
                                           crops_nll, describe_config, make_config, make_loss_fn, test_nll,
                                           uses_mel, uses_speaker, validation_crops)
from fastgen.recipes.wavenet.sampling import SampleResult, sample_run
from fastgen.recipes.wavenet.training import (EPOCH_STEPS, KIND, TrainSettings, evaluate_run, find_checkpoint,
                                              load_run, read_run, run_config, train_run)

__all__ = ["BASELINE", "CONDITIONINGS", "CORPUS", "DEFAULT_CORPUS_SIZE", "DataSpec", "EPOCH_STEPS", "KIND",
           "RecipeError", "SampleResult", "Splits", "TEST_METRIC", "TrainResult", "TrainSettings", "build_model",
           "check_conditioning", "corpus_dir", "crops_nll", "data_root", "describe_config", "evaluate_run",
           "find_checkpoint", "load_run", "load_splits", "make_config", "make_loss_fn", "read_run", "run_config",
           "sample_run", "spec_from_run", "test_nll", "train_run", "uses_mel", "uses_speaker", "validation_crops"]
