"""Data sets that exist offline on this machine, and readers for the standard files users hold.

Every loader raises :class:`DataError` (a ValueError) for missing or malformed data, with a message
naming the file and the problem and, for a missing data set, what to install.
"""
from .binarize import BINARIZATION_MODES, BinarizedImages, binarization_protocol, binarize
from .captions import (
    TEMPLATES,
    VOCABULARY,
    MnistCaptions,
    decode_tokens,
    encode_caption,
    heldout_combinations,
    parse_caption,
)
from .download import DATASETS, download, ensure_mnist
from .errors import DataError
from .idx import read_idx, write_idx
from .mnist import (
    FASHION_MNIST_CLASSES,
    FASHION_MNIST_ROOT,
    load_fashion_mnist,
    load_mnist,
    load_mnist_subset,
)

__all__ = [
    "BINARIZATION_MODES",
    "BinarizedImages",
    "DATASETS",
    "DataError",
    "FASHION_MNIST_CLASSES",
    "FASHION_MNIST_ROOT",
    "MnistCaptions",
    "TEMPLATES",
    "VOCABULARY",
    "binarization_protocol",
    "binarize",
    "decode_tokens",
    "download",
    "encode_caption",
    "ensure_mnist",
    "heldout_combinations",
    "load_fashion_mnist",
    "load_mnist",
    "load_mnist_subset",
    "parse_caption",
    "read_idx",
    "write_idx",
]
