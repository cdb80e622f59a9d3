"""One release at a time per registered model: an exclusive lock on a file beside the audit log.

    with release_lock(audit_folder / "locks", "card-grader", holder="promote flow"):
        ...                                  # shadow, canary, approval request

The operating system drops the lock when its holder exits, however it exits (even `kill -9`),
so a crashed release never leaves the model locked; a second release while one runs is refused
at once, naming the holder.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path


class ReleaseLocked(RuntimeError):
    """Another process holds the model's release lock."""


@contextmanager
def release_lock(folder: Path, model: str, holder: str) -> Iterator[None]:
    """Hold `model`'s release lock for the block; ReleaseLocked when someone else holds it."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{model}.lock"
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            who = os.pread(descriptor, 4096, 0).decode(errors="replace").strip() or "unknown"
            raise ReleaseLocked(f"a release of {model} is already running ({who}); wait for "
                                f"it, or stop it with `gradeline release abort --model "
                                f"{model}`") from None
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, f"{holder}, pid {os.getpid()}, since "
                              f"{datetime.now(UTC).isoformat(timespec='seconds')}".encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(descriptor, 0)
            fcntl.flock(descriptor, fcntl.LOCK_UN)
    finally:
        os.close(descriptor)
