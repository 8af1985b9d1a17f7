"""The floor for one phase: fetch every URL and pull out the GUIDs, nothing else.

Run as its own process by bench_poll.py, so its wall time, CPU and peak RSS are
measured like the watcher's:

    python lower_bound.py URLS.json VALIDATORS_IN.json VALIDATORS_OUT.json CONCURRENCY

URLS.json is a JSON list of URLs. VALIDATORS_IN.json maps a URL to the ETag and
Last-Modified of the previous phase (sent as If-None-Match / If-Modified-Since);
the ones this phase got are written to VALIDATORS_OUT.json. It prints one JSON
line: the count of each HTTP status and of the GUIDs read. No state, no diff, no
delivery: only httpx.AsyncClient with the same concurrency as the watcher, and
lxml over the bytes.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections import Counter
from pathlib import Path

import httpx
from lxml import etree

USER_AGENT = "lowerbound/1"


def guids(body: bytes) -> list[str]:
    root = etree.fromstring(body, parser=etree.XMLParser(resolve_entities=False, huge_tree=True))
    return [element.text or "" for element in root.iterfind("channel/item/guid")]


async def fetch(
    client: httpx.AsyncClient, slots: asyncio.Semaphore, url: str, previous: dict[str, str]
) -> tuple[int, int, dict[str, str]]:
    """(status, GUIDs read, validators to send next time) for one URL."""
    headers = {}
    if previous.get("etag"):
        headers["If-None-Match"] = previous["etag"]
    if previous.get("last_modified"):
        headers["If-Modified-Since"] = previous["last_modified"]
    async with slots:
        response = await client.get(url, headers=headers)
    if response.status_code == 304:
        return 304, 0, previous
    response.raise_for_status()
    found = len(guids(response.content))
    validators = {
        "etag": response.headers.get("etag", ""),
        "last_modified": response.headers.get("last-modified", ""),
    }
    return response.status_code, found, validators


async def run(urls: list[str], previous: dict, concurrency: int) -> tuple[Counter, int, dict]:
    slots = asyncio.Semaphore(concurrency)
    headers = {"User-Agent": USER_AGENT}
    async with httpx.AsyncClient(headers=headers, timeout=120.0) as client:
        results = await asyncio.gather(
            *(fetch(client, slots, url, previous.get(url, {})) for url in urls)
        )
    statuses = Counter(status for status, _, _ in results)
    found = sum(count for _, count, _ in results)
    validators = {url: result[2] for url, result in zip(urls, results, strict=True)}
    return statuses, found, validators


def main(argv: list[str]) -> int:
    urls_file, previous_file, next_file, concurrency = argv
    urls = json.loads(Path(urls_file).read_text())
    previous = json.loads(Path(previous_file).read_text()) if Path(previous_file).exists() else {}
    statuses, found, validators = asyncio.run(run(urls, previous, int(concurrency)))
    Path(next_file).write_text(json.dumps(validators))
    print(json.dumps({"statuses": {str(k): v for k, v in statuses.items()}, "guids": found}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
