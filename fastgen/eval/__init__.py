"""Evaluation tools beyond the likelihood bound: a digit classifier, and AlignDRAW's caption fidelity
(does each generated image show the digits its caption names, where it names them?)."""
from .caption_fidelity import (
    FidelityError,
    FidelityReport,
    caption_fidelity,
    generate_for_captions,
    oracle_fidelity,
    score_canvases,
    search_boxes,
)
from .digit_classifier import (
    ClassifierSettings,
    DigitClassifier,
    classifier_cache_dir,
    evaluate_classifier,
    load_classifier,
    load_or_train_classifier,
    save_classifier,
    train_classifier,
)

__all__ = [
    "ClassifierSettings", "DigitClassifier", "FidelityError", "FidelityReport", "caption_fidelity",
    "classifier_cache_dir", "evaluate_classifier", "generate_for_captions", "load_classifier",
    "load_or_train_classifier", "oracle_fidelity", "save_classifier", "score_canvases", "search_boxes",
    "train_classifier",
]
