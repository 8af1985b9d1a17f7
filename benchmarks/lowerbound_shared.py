#!/usr/bin/env python3
# Copied from ../shared/bench/lowerbound.py; reformatted only (ruff format), logic unchanged.
# ruff: noqa: SIM115, UP031
"""Physical lower bound for a feed monitor: httpx + lxml, single process, sequential.

Plugged into the harness through the same interface as any extra peer:
  env FEEDS_FILE  file with one feed URL per line
  env SINK_URL    webhook URL; one POST per new item (not in 'cold' mode)
  env STATE_DIR   where to keep state (ETag / Last-Modified / seen GUIDs)

  lowerbound.py cold   first poll: fetch + parse everything, store GUIDs, deliver nothing
  lowerbound.py poll   conditional GET (If-None-Match / If-Modified-Since); parse only
                       200 responses; POST one small JSON per GUID not seen before

Prints BENCH_DETECTED=<new items> (the harness picks this up) plus a timing split.
"""

import json
import os
import sys
import time

import httpx
from lxml import etree


def main():
    mode = sys.argv[1] if len(sys.argv) > 1 else "poll"
    urls = [u.strip() for u in open(os.environ["FEEDS_FILE"]) if u.strip()]
    sink = os.environ.get("SINK_URL")
    state_path = os.path.join(os.environ.get("STATE_DIR", "."), "lowerbound_state.json")
    state = {}
    if mode != "cold" and os.path.exists(state_path):
        with open(state_path) as f:
            state = json.load(f)
    parser = etree.XMLParser(resolve_entities=False, huge_tree=True)
    t_fetch = t_parse = t_post = 0.0
    n200 = n304 = detected = delivered = 0
    with httpx.Client(timeout=60) as http:
        for url in urls:
            st = state.get(url, {})
            hdrs = {}
            if st.get("etag"):
                hdrs["If-None-Match"] = st["etag"]
            if st.get("last_modified"):
                hdrs["If-Modified-Since"] = st["last_modified"]
            t0 = time.perf_counter()
            r = http.get(url, headers=hdrs)
            t_fetch += time.perf_counter() - t0
            if r.status_code == 304:
                n304 += 1
                continue
            r.raise_for_status()
            n200 += 1
            t0 = time.perf_counter()
            root = etree.fromstring(r.content, parser)
            items = []
            for it in root.iterfind("channel/item"):
                guid = it.findtext("guid") or it.findtext("link")
                items.append((guid, it.findtext("title"), it.findtext("link")))
            t_parse += time.perf_counter() - t0
            seen = set(st.get("guids", []))
            new = [i for i in items if i[0] not in seen]
            detected += len(new)
            if mode != "cold" and sink:
                t0 = time.perf_counter()
                for guid, title, link in reversed(new):  # oldest first
                    http.post(sink, json={"guid": guid, "title": title, "link": link, "feed": url})
                    delivered += 1
                t_post += time.perf_counter() - t0
            state[url] = {
                "etag": r.headers.get("etag"),
                "last_modified": r.headers.get("last-modified"),
                "guids": sorted(seen.union(i[0] for i in items)),
            }
    tmp = state_path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(state, f)
    os.replace(tmp, state_path)
    print("BENCH_DETECTED=%d" % detected)
    print(
        "lowerbound %s: %d x 200, %d x 304, delivered %d; fetch %.2fs parse %.2fs post %.2fs"
        % (mode, n200, n304, delivered, t_fetch, t_parse, t_post)
    )


if __name__ == "__main__":
    main()
