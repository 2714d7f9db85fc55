"""One driver per study: the study folder is claimed, and locked while its driver runs.

``study run`` creates the study's folder atomically (two runs of one name race for it: exactly one wins) and holds
an exclusive lock on ``<study>/.lock`` until it ends; ``study resume``, ``confirm``, ``soup`` and ``delete`` take
the same lock. The operating system drops the lock when its process ends, however it ends (SIGKILL, a crash), so a
lock is never stale: ``study resume`` simply takes it. A run refused, or stopped by bad input, before its study
started removes the folders it created, so nothing is left behind.
"""
from __future__ import annotations

import fcntl
import json
import os
import platform
import time
from pathlib import Path

LOCK_FILE = ".lock"


class StudyBusy(RuntimeError):
    """Another driver holds the study (one line: who, since when, what to do)."""


class StudyLock:
    """The lock of the study in ``folder``; ``new``: the folder must not exist yet (``study run``)."""

    def __init__(self, folder: Path, *, new: bool, command: str = "study run"):
        self.folder, self.new, self.command = Path(folder), new, command
        self.created: list[Path] = []
        self.handle = None

    def acquire(self) -> "StudyLock":
        if self.new:
            missing = [p for p in (self.folder, *self.folder.parents) if not p.exists()]
            for path in reversed(missing[1:]):
                path.mkdir()
                self.created.append(path)
            try:
                self.folder.mkdir()  # atomic: of two runs of one name, exactly one creates it
                self.created.append(self.folder)
            except FileExistsError:
                if any(self.folder.iterdir()):  # an empty folder left behind is taken; the lock decides a race
                    self._undo()
                    raise self._busy_or_exists() from None
        self.handle = open(self.folder / LOCK_FILE, "a+")
        try:
            fcntl.flock(self.handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            busy = self._busy()
            self.handle.close()
            self.handle = None
            self._undo()
            raise busy from None
        self.handle.seek(0)
        self.handle.truncate()
        self.handle.write(json.dumps({"pid": os.getpid(), "host": platform.node(), "command": self.command,
                                      "since": time.strftime("%Y-%m-%d %H:%M:%S")}))
        self.handle.flush()
        return self

    def started(self) -> None:
        """The study began writing: its folder stays, whatever happens next."""
        self.created = []

    def release(self) -> None:
        if self.handle is not None:
            fcntl.flock(self.handle, fcntl.LOCK_UN)
            self.handle.close()
            self.handle = None
        if self.created:
            (self.folder / LOCK_FILE).unlink(missing_ok=True)
            self._undo()

    def __enter__(self) -> "StudyLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()

    def _undo(self) -> None:
        for path in reversed(self.created):
            try:
                path.rmdir()
            except OSError:
                break
        self.created = []

    def _holder(self) -> str:
        try:
            holder = json.loads((self.folder / LOCK_FILE).read_text())
            return f"{holder['command']} on {holder['host']}, pid {holder['pid']}, since {holder['since']}"
        except (OSError, ValueError, KeyError):
            return "another process"

    def _busy(self) -> StudyBusy:
        return StudyBusy(f"{self.folder}: the study is running now ({self._holder()}); wait for it to end, or pass "
                         "--name NEW_NAME for another study")

    def _busy_or_exists(self) -> Exception:
        from study.tune.runner import StudyExists

        if is_locked(self.folder):
            return self._busy()
        return StudyExists(f"{self.folder} already holds a study named {self.folder.name!r}; `study resume "
                           f"{self.folder}` continues it, or pass --name NEW_NAME for a new one")


def is_locked(folder: Path) -> bool:
    """Whether a driver holds the study in ``folder`` now."""
    path = Path(folder) / LOCK_FILE
    if not path.is_file():
        return False
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
        return False
