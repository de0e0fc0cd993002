"""A run directory belongs to one run: an existing one is refused unless resumed or replaced, and a lock keeps two
processes from writing one directory."""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import IO

LOCK_NAME = ".lock"
# What a run writes; ``--force`` removes exactly these, never other files a user keeps beside them.
RUN_ENTRIES = ("graph.json", "run.json", "metrics.jsonl", "summary.json", "summary.json.partial", "checkpoints",
               "tensorboard", "curves.png", "videos")


class RunDirectoryError(Exception):
    """A run directory this run may not use: another run's, or one being written by another process."""


class RunLock:
    """An exclusive lock on a run directory, held while this process runs in it (``fcntl.flock``: the operating
    system releases it when the process dies, so a crashed run never leaves a stale lock).

    Args:
        path: the run directory (created).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[str] | None = None

    def acquire(self) -> None:
        """Take the lock or raise ``RunDirectoryError`` naming the process that holds it."""
        import fcntl

        self.path.mkdir(parents=True, exist_ok=True)
        file = open(self.path / LOCK_NAME, "a+")
        try:
            fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            file.seek(0)
            holder = file.read().strip() or "another process"
            file.close()
            raise RunDirectoryError(f"{self.path} is being written by another run (pid {holder}); wait for it to "
                                    "end or choose another --run-dir") from None
        file.seek(0)
        file.truncate()
        file.write(str(os.getpid()))
        file.flush()
        self._file = file

    def release(self) -> None:
        """Release the lock (also released when the process exits)."""
        if self._file is not None:
            self._file.close()
            self._file = None


def holds_a_run(path: Path) -> bool:
    """Whether ``path`` already holds what a run writes."""
    return path.is_dir() and any((path / name).exists() for name in RUN_ENTRIES)


def claim(path: Path, resume: bool = False, force: bool = False) -> RunLock:
    """Lock ``path`` for this run.

    Args:
        path: the run directory.
        resume: this run continues the run in ``path`` (it must hold one).
        force: replace the run in ``path``: what a run writes there is removed first (after the lock is taken).

    Raises:
        RunDirectoryError: ``path`` holds another run and neither ``resume`` nor ``force`` was given, or holds no
            run to resume, or another process writes it.
    """
    if resume and not holds_a_run(path):
        raise RunDirectoryError(f"{path} holds no run to resume")
    if not resume and not force and holds_a_run(path):
        raise RunDirectoryError(f"{path} already holds a run: continue it with --resume {path}, replace it with "
                                "--force, or choose another --run-dir")
    lock = RunLock(path)
    lock.acquire()
    if force and not resume:
        for name in RUN_ENTRIES:
            entry = path / name
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            elif entry.exists() or entry.is_symlink():
                entry.unlink()
    return lock
