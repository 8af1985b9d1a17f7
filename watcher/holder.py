"""The daemon holding a state, seen from another process (`watcher status`, `reload`):
its pid and the address of its HTTP side, as it wrote them in the state's lock file."""

from __future__ import annotations

import fcntl
import os
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from watcher.store.files import lock_path


@dataclass(frozen=True)
class Holder:
    pid: int
    address: str | None  # http://host:port of its HTTP side, if it serves one


def holder(state: Path) -> Holder | None:
    """The watcher that holds `state`, if one runs: the lock is held (a pid left in the
    file by a watcher killed is no holder, whoever has that pid now), by the pid it names."""
    try:
        with open(lock_path(state), encoding="utf-8") as handle:
            if not _held(handle):
                return None
            lines = handle.read().split()
    except OSError:
        return None
    if not lines or not lines[0].isdigit():
        return None
    pid = int(lines[0])
    if pid == os.getpid() or not _alive(pid):
        return None
    return Holder(pid, lines[1] if len(lines) > 1 else None)


def _held(handle: IO[str]) -> bool:
    """Whether another process holds the lock: a shared lock cannot be had, then. (Had,
    it is let go at once; a watcher starting meanwhile waits for it: see acquire_lock.)"""
    try:
        fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    fcntl.flock(handle, fcntl.LOCK_UN)
    return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True
