"""Optional comparison: reader (the Python feed-reader library, SQLite) over the same feeds.

Run as its own process by bench_poll.py, with the watcher's interpreter (reader
comes with the `bench` extra: `pip install -e '.[bench]'`):

    python reader_side.py add DB URLS.json   # set-up, not timed: make_reader(DB), add_feed each
    python reader_side.py update DB          # one phase: update_feeds(), as a cron job would

`update` is `reader.update_feeds(scheduled=False)` (one feed at a time, its
default; `scheduled=False` because the phases are seconds apart, and reader 3.x
would otherwise skip every feed until its update interval, an hour by default,
has passed), iterated through `update_feeds_iter()` so the new entries and
errors can be counted; it
prints one JSON line: {"new": …, "modified": …, "not_modified": …, "errors": …}.
reader delivers nothing: it stores entries (and sends conditional GETs with the
ETag / Last-Modified it stored), so its rows count new entries, not POSTs.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def add(db: str, urls_file: str) -> dict:
    from reader import make_reader

    reader = make_reader(db)
    urls = json.loads(Path(urls_file).read_text())
    for url in urls:
        reader.add_feed(url, exist_ok=True)
    reader.close()
    import reader as package

    return {"feeds": len(urls), "version": package.__version__}


def update(db: str) -> dict:
    from reader import make_reader

    reader = make_reader(db)
    new = modified = not_modified = errors = 0
    for result in reader.update_feeds_iter(scheduled=False):
        if result.error is not None:
            errors += 1
            print(f"{result.url}: {result.error!r}", file=sys.stderr)
        elif result.value is None:
            not_modified += 1
        else:
            new += result.value.new
            modified += result.value.modified
    reader.close()
    return {"new": new, "modified": modified, "not_modified": not_modified, "errors": errors}


def main(argv: list[str]) -> int:
    command, *rest = argv
    summary = add(*rest) if command == "add" else update(*rest)
    print(json.dumps(summary))
    return 1 if summary.get("errors") else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
