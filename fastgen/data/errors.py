"""The one exception every fastgen data loader raises for missing or unreadable data."""
from __future__ import annotations


class DataError(ValueError):
    """A data set is missing, truncated or malformed.

    The message always names the file (or folder) and what was wrong with it, and, when a data set
    is simply absent, how to install it.
    """
