"""Summarise a py-spy `--format raw` profile (collapsed stacks) as text.

Each line of the file is `frame;frame;...;frame COUNT`, outermost frame first,
a frame being `function (path/file.py:line)`. bench_poll.py records with `--gil`,
so each sample is of the thread holding the GIL, and a share is a share of the
time Python code ran (C code that released the GIL, such as parts of lxml, is not
in it). Prints where the samples' innermost frame was (self), which
functions were on the stack (inclusive), and self time per package.
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from pathlib import Path

_LINE_NUMBER = re.compile(r":\d+\)$")
# Frames on nearly every stack (the event loop, thread start-up): left out of "inclusive".
PLUMBING = {"asyncio", "threading", "concurrent", "runpy", "<frozen runpy>", "selectors"}


def load(path: Path) -> list[tuple[list[str], int]]:
    stacks = []
    for line in path.read_text(errors="replace").splitlines():
        frames, _, count = line.rpartition(" ")
        if frames and count.isdigit():
            stacks.append(([_LINE_NUMBER.sub(")", f) for f in frames.split(";")], int(count)))
    return stacks


def package(frame: str) -> str:
    """`parse (feedparser/api.py)` → `feedparser`; the standard library by module."""
    location = frame.rpartition(" (")[2].rstrip(")")
    head = location.split("/", 1)[0]
    return head.removesuffix(".py") or "?"


def tallies(stacks: list[tuple[list[str], int]]) -> tuple[Counter, Counter, Counter, int]:
    own: Counter = Counter()
    inclusive: Counter = Counter()
    packages: Counter = Counter()
    for frames, count in stacks:
        own[frames[-1]] += count
        packages[package(frames[-1])] += count
        for frame in set(frames):
            if package(frame) not in PLUMBING and not frame.startswith("<module> "):
                inclusive[frame] += count
    return own, inclusive, packages, sum(count for _, count in stacks)


def report(path: Path, top: int = 12) -> str:
    own, inclusive, packages, total = tallies(load(path))
    if not total:
        return f"{path}: no samples\n"
    lines = [f"{path.name}: {total} samples"]
    sections = (
        ("self time by package", packages),
        ("self time by function", own),
        ("inclusive (on the stack)", inclusive),
    )
    for title, counter in sections:
        lines.append(f"  {title}:")
        lines += [
            f"    {100 * count / total:5.1f}%  {frame}" for frame, count in counter.most_common(top)
        ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    for name in sys.argv[1:]:
        sys.stdout.write(report(Path(name)))
