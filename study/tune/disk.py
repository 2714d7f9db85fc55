"""A study on a file system that fills: it stops itself while it can still write, and resumes once there is room.

The driver checks the free space where the study writes (its folder: the results table, the checkpoints by
default, the SQLite MLflow store) before each write of the results table; below ``RESERVE_MB`` it stops the study
as Ctrl-C does (Ray Tune ends the trials and saves its state), and says in one line where and how much is free.
Every file the study writes goes to a temporary name and is renamed, so a write the disk cut short leaves nothing
half-written behind; ``study resume`` continues once space is freed, nothing lost or counted twice.
"""
from __future__ import annotations

import errno
import os
import shutil
import signal
from pathlib import Path

RESERVE_MB = float(os.environ.get("LPFT_DISK_RESERVE_MB", "32"))  # room a study keeps for its next checkpoints
_STOPPED: list[tuple[Path, float]] = []  # where and how full, once this driver stopped its study for space


def free_mb(path: Path) -> float:
    """The free space of the file system ``path`` is (or would be) on, in MiB."""
    existing = next(parent for parent in (Path(path), *Path(path).parents) if parent.exists())
    return shutil.disk_usage(existing).free / 2**20


def low_space_problem(path: Path, key: str) -> str | None:
    """One line if ``path``'s file system has less than the reserve free (a study would stop at once)."""
    free = free_mb(path)
    if free < RESERVE_MB:
        return (f"{key}: {path} has {free:.1f} MiB free; a study keeps at least {RESERVE_MB:g} MiB free for its "
                "checkpoints and tables: free some space, or pass a folder on another file system")
    return None


def is_disk_full(error: BaseException) -> bool:
    return isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT)


def reset() -> None:
    """A new driver session: nothing stopped for space yet."""
    _STOPPED.clear()


def stop_for_space(path: Path) -> None:
    """Stop this driver's study as Ctrl-C does, once, remembering where the space ran out."""
    if not _STOPPED:
        _STOPPED.append((Path(path), free_mb(path)))
        os.kill(os.getpid(), signal.SIGINT)


def guard(path: Path) -> bool:
    """True, and the study stopped, if ``path``'s file system is below the reserve."""
    if free_mb(path) < RESERVE_MB:
        stop_for_space(path)
        return True
    return False


def stopped_for_space() -> str | None:
    """Why this driver stopped its study, if for space: one line naming the path and the free space."""
    if not _STOPPED:
        return None
    path, free = _STOPPED[-1]
    return (f"{path}: the file system is full ({free:.1f} MiB free, under the {RESERVE_MB:g} MiB a study keeps for "
            "its checkpoints); nothing reported is lost")
