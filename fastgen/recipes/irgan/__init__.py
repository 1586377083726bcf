"""IRGAN item recommendation on MovieLens-100k (what ``fastgen train|eval|sample irgan`` runs)::

    settings = Settings()                                  # the authors' schedule, our batch sizes
    train_run(settings, DataSpec("u1"), "runs/irgan")      # DNS pretraining, IRGAN rounds, BPR baseline
    print(markdown(test_report("runs/irgan")))              # the test split, read once

Every model stops at its best validation epoch (:mod:`.selection`); the test split is read only by
:func:`test_report`. :mod:`.schedule` fits IRGAN's epoch-wise alternation to the fastgen Trainer.
The paper's web-search task (LETOR, MLP scorers) is :mod:`.web` (training, resumable) and
:mod:`.web_report` (its test figures); :mod:`.folders` keeps either task's run folders apart.
"""
from fastgen.recipes.irgan.data import DataSpec, load_test, load_train_val
from fastgen.recipes.irgan.report import markdown, test_report
from fastgen.recipes.irgan.training import KIND, Settings, fit_mf, load_mf, train_run

__all__ = ["DataSpec", "KIND", "Settings", "fit_mf", "load_mf", "load_test", "load_train_val", "markdown",
           "test_report", "train_run"]
