"""Atomic replacement of small text files (logs, summaries, manifests) without following links.

The new content goes to a temporary file with a unique name created exclusively beside the target
(``tempfile.mkstemp``: O_CREAT | O_EXCL, so a symlink planted under a predictable name is never
followed), is flushed to disk, and is renamed over the target; rename replaces a symlink at the
target itself, never the file it points to. A reader sees the old file or the new one, never half.
"""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator, Optional, TextIO, Union

PathArg = Union[str, "os.PathLike[str]"]

# mkstemp creates files 0600; give the result the mode a plain open() would have (0666 less umask).
# os.umask can only be read by setting it, so read it once, at import.
_UMASK = os.umask(0o022)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_write(path: PathArg, newline: Optional[str] = None) -> Iterator[TextIO]:
    """A UTF-8 text file that replaces ``path`` when the block ends; if the block raises, the
    temporary file is removed and ``path`` is left as it was."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)
        with os.fdopen(fd, "w", encoding="utf-8", newline=newline) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_text_atomic(path: PathArg, text: str) -> None:
    with atomic_write(path) as f:
        f.write(text)


def write_json_atomic(path: PathArg, obj: Any) -> None:
    """``obj`` as indented JSON (NaN and infinities allowed, as Python's json writes them)."""
    write_text_atomic(path, json.dumps(obj, indent=1, allow_nan=True) + "\n")


__all__ = ["atomic_write", "write_json_atomic", "write_text_atomic"]
