"""An exclusive lock on a training run's folder, held for the life of the run.

Two trainers writing one folder corrupt each other's run (one deletes the other's temporary
checkpoint folder as a crash leftover; log.csv interleaves both runs' rows), so a training run
holds ``flock(2)`` on ``<folder>/run.lock`` until it ends. The kernel drops the lock when its
holder exits however it exits (``kill -9`` included), so a crashed run never blocks a resume. The
file itself stays: removing it on release would let a late comer lock a fresh file of the same
name while an earlier process still holds the old one.
"""
from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import Optional, Union

LOCK_NAME = "run.lock"


class RunLockError(RuntimeError):
    """The run folder is held by another process, or its lock file cannot be opened."""


class RunLock:
    """A held lock; release it with :meth:`release` or by leaving a ``with`` block."""

    def __init__(self, folder: Path, fd: int):
        self.folder = folder
        self._fd: Optional[int] = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the only descriptor drops the flock
            self._fd = None

    def __enter__(self) -> "RunLock":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def lock_run_folder(folder: Union[str, "os.PathLike[str]"]) -> RunLock:
    """Create ``folder`` if needed and lock it for this process, or raise :class:`RunLockError`
    naming the process that holds it. Never waits."""
    folder = Path(folder)
    path = folder / LOCK_NAME
    try:
        folder.mkdir(parents=True, exist_ok=True)
        # O_NOFOLLOW: a symlink planted as run.lock must not make us create or truncate a file elsewhere
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666)
    except OSError as e:
        raise RunLockError(f"cannot lock the run folder {folder}: {e.strerror} ({path})") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 64).decode("ascii", "replace").strip()
        os.close(fd)
        who = f" (process {holder})" if holder.isdigit() else ""
        raise RunLockError(f"{folder} is in use by another training run{who}: wait for it to finish, "
                           "or choose another folder") from None
    except BaseException:
        os.close(fd)
        raise
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode("ascii"))
    return RunLock(folder, fd)


__all__ = ["LOCK_NAME", "RunLock", "RunLockError", "lock_run_folder"]
