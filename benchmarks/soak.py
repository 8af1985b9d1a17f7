#!/usr/bin/env python3
"""Soak the daemon: many feeds at a short interval, a flapping webhook, a kill -9 midway.

Run by hand (see benchmarks/README.md), never by the test suite:

    .venv/bin/python benchmarks/soak.py [--duration 5m] [--feeds 50] [--interval 2s] [--keep]

Everything listens on 127.0.0.1 only:

- **Feeds**: a ThreadingHTTPServer serves N small RSS feeds (ETag, 304 on a matching
  If-None-Match). Once the daemon has read every feed once, a publisher adds a new talk
  to a few feeds at random every few seconds; each talk added is *published*.
- **Webhook**: a receiver that flaps: down for the last ~20 s of every minute, then
  answering 503 with `Retry-After`, 503 without it, or resetting the connection, at
  random; else 200, recording each talk received (*delivered*) and each one received
  more than once (*duplicates*).
- **Daemon**: `python -m watcher run --log-format json` over those feeds, every
  `--interval`. Midway it is killed with SIGKILL and started again on the same state.

Every `--every` seconds a line: elapsed, daemon RSS (VmRSS), open fds, CPU seconds
(utime + stime, over both runs), talks published, delivered (distinct),
duplicates. After `--duration` the publisher stops, the webhook stays up, and the soak
waits (up to `--drain`) for every published talk to arrive; then SIGTERM, and a summary:
published vs delivered, missing, duplicated, latency, log lines by level. It exits 0 when
nothing is missing, the daemon exited 0 and every log line was JSON; else 1.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from email.utils import formatdate
from hashlib import sha256
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

from bench_poll import _git_revision, _load_average, machine_info  # noqa: E402
from servers import HOST, wait_for_port  # noqa: E402

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def seconds(text: str) -> float:
    """ "90", "90s", "5m", "1h" → seconds."""
    units = {"s": 1, "m": 60, "h": 3600}
    if text and text[-1] in units:
        return float(text[:-1]) * units[text[-1]]
    return float(text)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=seconds, default=300.0, help="soak time (5m)")
    parser.add_argument("--feeds", type=int, default=50, help="feeds served and polled (50)")
    parser.add_argument("--interval", type=seconds, default=2.0, help="the daemon's interval (2s)")
    parser.add_argument("--every", type=seconds, default=10.0, help="seconds between lines (10)")
    parser.add_argument(
        "--publish-every", type=seconds, default=3.0, help="seconds between new talks (3)"
    )
    parser.add_argument(
        "--publish-feeds", type=int, default=5, help="feeds given a new talk each time (5)"
    )
    parser.add_argument("--drain", type=seconds, default=120.0, help="longest wait at the end")
    parser.add_argument("--seed", type=int, default=11, help="random seed")
    parser.add_argument("--python", default=_default_python(), help="runs the daemon")
    parser.add_argument("--keep", action="store_true", help="keep the temp folder")
    return parser.parse_args(argv)


def _default_python() -> str:
    venv = REPO / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


class QuietServer(ThreadingHTTPServer):
    """A ThreadingHTTPServer that says nothing of clients gone mid-request (the daemon
    killed with its connections open)."""

    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


# the feeds


@dataclass
class Feed:
    name: str
    items: list[str] = field(default_factory=list)  # newest first
    body: bytes = b""
    etag: str = ""
    modified: str = ""
    served: int = 0  # 200s

    def render(self) -> None:
        head = (
            '<?xml version="1.0" encoding="UTF-8"?>\n<rss version="2.0"><channel>'
            f"<title>{self.name}</title><link>http://soak.invalid/{self.name}/</link>"
            "<description>soak</description>"
        )
        self.body = (head + "".join(self.items) + "</channel></rss>\n").encode()
        self.etag = '"' + sha256(self.body).hexdigest()[:16] + '"'
        self.modified = formatdate(time.time(), usegmt=True)


def talk_item(feed: str, number: int) -> tuple[str, str]:
    guid = f"http://soak.invalid/{feed}/talk-{number}"
    item = (
        f"<item><title>Soak talk {number} | Speaker {number % 17} | SoakConf</title>"
        f"<link>{guid}</link><guid>{guid}</guid>"
        f"<pubDate>{formatdate(time.time(), usegmt=True)}</pubDate>"
        f"<description>Talk {number} of {feed}. It is about soaking.</description></item>"
    )
    return guid, item


class FeedServer:
    """N feeds on 127.0.0.1, with ETag and 304; `publish` adds a talk to one."""

    KEEP = 30  # items in a feed; older ones drop out (they stay seen)

    def __init__(self, count: int) -> None:
        self.lock = threading.Lock()
        self.feeds = {f"feed-{i:03d}": Feed(f"feed-{i:03d}") for i in range(count)}
        self.numbers = Counter[str]()
        self.published: dict[tuple[str, str], float] = {}  # (feed, guid) → when
        for name, feed in self.feeds.items():
            for _ in range(3):  # the back catalogue: recorded as seen, never announced
                self._add(name, feed)
            feed.render()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                name = self.path.strip("/").removesuffix(".xml")
                with outer.lock:
                    feed = outer.feeds.get(name)
                    if feed is None:
                        self.send_error(404)
                        return
                    body, etag, modified = feed.body, feed.etag, feed.modified
                    if self.headers.get("If-None-Match") != etag:
                        feed.served += 1
                if self.headers.get("If-None-Match") == etag:
                    self.send_response(304)
                    self.send_header("ETag", etag)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/rss+xml; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("ETag", etag)
                self.send_header("Last-Modified", modified)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = QuietServer((HOST, 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, name: str) -> str:
        return f"http://{HOST}:{self.port}/{name}.xml"

    def _add(self, name: str, feed: Feed) -> str:
        self.numbers[name] += 1
        guid, item = talk_item(name, self.numbers[name])
        feed.items = [item, *feed.items][: self.KEEP]
        return guid

    def publish(self, name: str) -> None:
        with self.lock:
            feed = self.feeds[name]
            guid = self._add(name, feed)
            feed.render()
            self.published[(name, guid)] = time.monotonic()

    def all_read(self) -> bool:
        with self.lock:
            return all(feed.served for feed in self.feeds.values())

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# the webhook


class FlappingWebhook:
    """Down for `down` seconds of every `period` (503 with or without Retry-After, or a
    reset connection, at random), else 200; records what it accepted."""

    def __init__(self, rng: random.Random, period: float = 60.0, down: float = 20.0) -> None:
        self.rng = rng
        self.period, self.down = period, down
        self.started = time.monotonic()
        self.flapping = True
        self.lock = threading.Lock()
        self.received: dict[tuple[str, str], float] = {}  # first receipt
        self.counts = Counter[tuple[str, str]]()
        self.answers = Counter[str]()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                answer = outer.answer()
                with outer.lock:
                    outer.answers[answer] += 1
                if answer == "reset":
                    linger = struct.pack("ii", 1, 0)  # close with RST, not FIN
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
                    self.connection.close()
                    self.close_connection = True
                    return
                if answer.startswith("503"):
                    self.send_response(503)
                    if answer == "503 retry-after":
                        self.send_header("Retry-After", "5")
                    self.send_header("Content-Length", "4")
                    self.end_headers()
                    self.wfile.write(b"down")
                    return
                payload = json.loads(body)
                key = (payload["feed"], payload["talk"]["guid"])
                with outer.lock:
                    outer.counts[key] += 1
                    outer.received.setdefault(key, time.monotonic())
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        self.server = QuietServer((HOST, 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/hook"

    def is_down(self) -> bool:
        phase = (time.monotonic() - self.started) % self.period
        return self.flapping and phase >= self.period - self.down

    def answer(self) -> str:
        if not self.is_down():
            return "200"
        return self.rng.choice(["503 retry-after", "503", "reset"])

    def figures(self) -> tuple[int, int]:
        """Distinct talks received, and how many receipts were repeats."""
        with self.lock:
            return len(self.counts), sum(n - 1 for n in self.counts.values())

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# the daemon


def write_config(home: Path, feeds: FeedServer, hook: FlappingWebhook, interval: float) -> Path:
    lines = [
        "[watcher]",
        f'state = "{home / "state" / "watcher.json"}"',
        f'interval = "{interval:g}s"',
        'timeout = "10s"',
        "max_concurrency = 16",
        "max_per_host = 16",  # every feed is on the one local server
        "",
    ]
    for name in feeds.feeds:
        lines += ["[[feeds]]", f'name = "{name}"', f'url = "{feeds.url(name)}"', ""]
    lines += ["[[destinations]]", 'name = "hook"', 'type = "webhook"', f'url = "{hook.url}"']
    path = home / "watcher.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


class Daemon:
    def __init__(self, python: str, config: Path, home: Path) -> None:
        self.python, self.config, self.home = python, config, home
        self.runs = 0
        self.cpu_before = 0.0  # CPU seconds of the runs that ended
        self.process: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        self.runs += 1
        err = (self.home / f"daemon-{self.runs}.err").open("wb")
        out = (self.home / f"daemon-{self.runs}.out").open("wb")
        command = [self.python, "-m", "watcher", "run", "--log-format", "json"]
        self.process = subprocess.Popen(
            [*command, "--config", str(self.config)], cwd=REPO, stdout=out, stderr=err
        )
        err.close()
        out.close()

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def sample(self) -> tuple[float, int, float]:
        """RSS (MB), open fds, CPU seconds of the process running now."""
        status = Path(f"/proc/{self.pid}/status").read_text()
        rss = next(int(line.split()[1]) for line in status.splitlines() if line[:6] == "VmRSS:")
        fds = len(os.listdir(f"/proc/{self.pid}/fd"))
        return rss / 1024, fds, self.cpu_before + self.cpu()

    def cpu(self) -> float:
        stat = Path(f"/proc/{self.pid}/stat").read_text()
        fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime

    def kill(self) -> None:
        assert self.process is not None
        self.cpu_before += self.cpu()
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self, timeout: float = 30.0) -> int:
        assert self.process is not None
        cpu = self.cpu()
        self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            return -9
        self.cpu_before += cpu
        return code

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_lines(self) -> tuple[Counter[str], int]:
        """Log lines by level over every run, and the lines that are not JSON."""
        levels = Counter[str]()
        bad = 0
        for run in range(1, self.runs + 1):
            for line in (self.home / f"daemon-{run}.err").read_text(errors="replace").splitlines():
                try:
                    levels[json.loads(line)["level"]] += 1
                except (ValueError, KeyError, TypeError):
                    bad += 1
        return levels, bad


# the soak


@dataclass
class Sample:
    elapsed: float
    run: int
    rss: float
    fds: int
    cpu: float
    published: int
    delivered: int
    duplicates: int


def line(sample: Sample) -> str:
    return (
        f"{sample.elapsed:6.0f}s  run {sample.run}  rss {sample.rss:6.1f} MB  "
        f"fds {sample.fds:3d}  cpu {sample.cpu:6.1f} s  published {sample.published:4d}  "
        f"delivered {sample.delivered:4d}  duplicates {sample.duplicates:2d}"
    )


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else 0.0


def soak(args: argparse.Namespace, home: Path) -> bool:
    rng = random.Random(args.seed)
    feeds = FeedServer(args.feeds)
    hook = FlappingWebhook(random.Random(args.seed + 1))
    config = write_config(home, feeds, hook, args.interval)
    wait_for_port(feeds.port, lambda: True)
    wait_for_port(hook.port, lambda: True)
    print(f"soak: {_git_revision()}")
    for info in machine_info(args.python):
        print(info)
    print(f"load average at the start: {_load_average()}")
    print(
        f"feeds: {args.feeds} every {args.interval:g}s; a new talk on {args.publish_feeds} "
        f"feeds every {args.publish_every:g}s; webhook down {hook.down:g}s of every "
        f"{hook.period:g}s; kill -9 at {args.duration / 2:.0f}s; soak {args.duration:.0f}s; "
        f"folder {home}"
    )
    daemon = Daemon(args.python, config, home)
    samples: list[Sample] = []
    start = time.monotonic()
    try:
        deadline = time.monotonic() + 60
        while not feeds.all_read():  # the first poll of each is its baseline
            if not daemon.alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the daemon did not read every feed; see {home}")
            time.sleep(0.1)
        print(f"every feed read once after {time.monotonic() - start:.1f}s; publishing")
        killed = False
        next_publish = next_sample = time.monotonic()
        end = start + args.duration
        while time.monotonic() < end:
            now = time.monotonic()
            if now >= next_publish:
                for name in rng.sample(sorted(feeds.feeds), args.publish_feeds):
                    feeds.publish(name)
                next_publish += args.publish_every
            if not killed and now - start >= args.duration / 2:
                print(f"{now - start:6.0f}s  kill -9 {daemon.pid}; starting it again")
                daemon.kill()
                daemon.start()
                killed = True
            if now >= next_sample:
                samples.append(take_sample(daemon, feeds, hook, start))
                print(line(samples[-1]), flush=True)
                next_sample += args.every
            if not daemon.alive():
                raise RuntimeError(f"the daemon exited ({daemon.process.returncode}); see {home}")
            time.sleep(0.05)
        hook.flapping = False
        print(f"{time.monotonic() - start:6.0f}s  publishing stopped; webhook up; draining")
        drain_start = time.monotonic()
        while time.monotonic() - drain_start < args.drain:
            if set(feeds.published) <= set(hook.received):
                break
            time.sleep(0.2)
        drained = time.monotonic() - drain_start
        samples.append(take_sample(daemon, feeds, hook, start))
        print(line(samples[-1]))
        code = daemon.stop()
    finally:
        if daemon.alive():
            daemon.process.kill()
        feeds.close()
        hook.close()
    return summary(feeds, hook, daemon, samples, drained, code)


def take_sample(daemon: Daemon, feeds: FeedServer, hook: FlappingWebhook, start: float) -> Sample:
    rss, fds, cpu = daemon.sample()
    delivered, duplicates = hook.figures()
    with feeds.lock:
        published = len(feeds.published)
    return Sample(
        time.monotonic() - start, daemon.runs, rss, fds, cpu, published, delivered, duplicates
    )


def summary(
    feeds: FeedServer,
    hook: FlappingWebhook,
    daemon: Daemon,
    samples: list[Sample],
    drained: float,
    code: int,
) -> bool:
    published = set(feeds.published)
    received = set(hook.received)
    missing = sorted(published - received)
    unexpected = sorted(received - published)
    duplicated = {key: n for key, n in hook.counts.items() if n > 1}
    latencies = [hook.received[key] - feeds.published[key] for key in published & received]
    levels, not_json = daemon.log_lines()
    print()
    print(f"published {len(published)}, delivered {len(published & received)} (distinct)")
    print(f"missing {len(missing)}" + (f": {missing[:5]}" if missing else ""))
    extra = sum(n - 1 for n in duplicated.values())
    print(f"duplicated {len(duplicated)} talks ({extra} extra receipts)")
    if unexpected:
        print(f"received but never published (back catalogue announced?): {len(unexpected)}")
    print(
        f"latency publish → webhook: median {percentile(latencies, 0.5):.1f}s, "
        f"p95 {percentile(latencies, 0.95):.1f}s, max {max(latencies, default=0):.1f}s; "
        f"the last arrived {drained:.1f}s after publishing stopped"
    )
    print(f"webhook answers: {dict(sorted(hook.answers.items()))}")
    rss = [s.rss for s in samples]
    fds = [s.fds for s in samples]
    print(
        f"daemon: rss {min(rss):.1f}–{max(rss):.1f} MB, fds {min(fds)}–{max(fds)}, "
        f"cpu {daemon.cpu_before:.1f} s over {daemon.runs} runs "
        f"({daemon.cpu_before / max(samples[-1].elapsed, 1) * 100:.1f}% of a core); "
        f"exit {code} on SIGTERM"
    )
    print(f"log lines by level: {dict(sorted(levels.items()))}; not JSON: {not_json}")
    print(f"load average at the end: {_load_average()}")
    return not missing and not unexpected and code == 0 and not not_json


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    home = Path(tempfile.mkdtemp(prefix="watcher-soak-"))
    try:
        return 0 if soak(args, home) else 1
    finally:
        if args.keep:
            print(f"kept {home}")
        else:
            shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
