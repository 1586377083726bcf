"""Data sets that exist offline on this machine, and readers for the standard files users hold.

Every loader raises :class:`DataError` (a ValueError) for missing or malformed data, with a message
naming the file and the problem and, for a missing data set, what to install.
"""
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
    "DataError",
    "FASHION_MNIST_CLASSES",
    "FASHION_MNIST_ROOT",
    "load_fashion_mnist",
    "load_mnist",
    "load_mnist_subset",
    "read_idx",
    "write_idx",
]
