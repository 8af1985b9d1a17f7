"""The daemon holding a state, seen from another process (`watcher status`, `reload`):
its pid and the address of its HTTP side, as it wrote them in the state's lock file."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from watcher.store.files import lock_path


@dataclass(frozen=True)
class Holder:
    pid: int
    address: str | None  # http://host:port of its HTTP side, if it serves one


def holder(state: Path) -> Holder | None:
    """The watcher that holds `state`, if one runs: the pid its lock file names, alive."""
    try:
        lines = lock_path(state).read_text(encoding="utf-8").split()
    except OSError:
        return None
    if not lines or not lines[0].isdigit():
        return None
    pid = int(lines[0])
    if pid == os.getpid() or not _alive(pid):
        return None
    return Holder(pid, lines[1] if len(lines) > 1 else None)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True
