#!/usr/bin/env python3
"""Benchmark one full `watcher poll` cycle over many large feeds, against a lower bound.

Run by hand (see benchmarks/README.md), never by the test suite:

    .venv/bin/python benchmarks/bench_poll.py [--feeds 200] [--talks 20] [--concurrency 16]
        [--rss2email] [--reader] [--scale] [--profile DIR] [--server auto|nginx|python] [--keep]

It generates N feeds in the seed fixture's format into a temp folder, serves them
from nginx (or a Python fallback) on 127.0.0.1, and runs three phases, each as
fresh child processes whose wall time, CPU (user+sys) and peak RSS are measured:
cold (first poll: baseline, nothing announced), steady (nothing changed: all 304)
and changed (one new talk per feed: exactly N webhook POSTs). Each phase is also
run by two lower bounds, and each watcher phase's ratio is to the faster of them:
lower_bound.py (the same fetches with httpx.AsyncClient at the watcher's
concurrency, GUIDs read with lxml) and lowerbound_shared.py (one feed at a time
with httpx.Client, conditional GET, lxml GUIDs, one POST per new GUID).
"""

from __future__ import annotations

import argparse
import ctypes
import hashlib
import json
import os
import platform
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

import feedgen  # noqa: E402
import pyspy_report  # noqa: E402
import rss2email_side  # noqa: E402
import servers  # noqa: E402

PHASES = ("cold", "steady", "changed")
SCALE_PHASES = ("cold", "steady")
EXPECTED_STATUS = {"cold": 200, "steady": 304, "changed": 200}
SHARED_CLIENT = "python-httpx"  # lowerbound_shared.py sends httpx's default User-Agent
READER_CLIENT = "python-reader"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--feeds", type=int, help="feeds N (default 200; 10000 with --scale)")
    parser.add_argument("--talks", type=int, default=20, help="talks per feed K (default 20)")
    parser.add_argument("--concurrency", type=int, default=16, help="feeds at once (default 16)")
    parser.add_argument("--rss2email", action="store_true", help="also run rss2email (pip)")
    parser.add_argument("--reader", action="store_true", help="also run reader (.[bench])")
    parser.add_argument(
        "--scale", action="store_true", help="10000 feeds of small talks; cold then steady"
    )
    parser.add_argument("--profile", metavar="DIR", type=Path, help="run the watcher under py-spy")
    parser.add_argument("--server", choices=("auto", "nginx", "python"), default="auto")
    parser.add_argument("--phase-timeout", type=float, default=1800.0, metavar="SECONDS")
    parser.add_argument("--python", default=None, help="the watcher's interpreter")
    parser.add_argument("--keep", action="store_true", help="keep the temp folder (logs, state)")
    parser.add_argument(
        "--runs", type=int, default=3, metavar="N", help="best of N runs of each phase (default 3)"
    )
    args = parser.parse_args(argv)
    args.feeds = args.feeds or (10_000 if args.scale else 200)
    args.python = args.python or _default_python()
    args.py_spy = shutil.which("py-spy") or str(Path(args.python).parent / "py-spy")
    if args.profile and not Path(args.py_spy).exists():
        parser.error("--profile needs py-spy: .venv/bin/pip install py-spy")
    return args


def _default_python() -> str:
    venv = REPO / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


# measuring one child process


@dataclass(frozen=True)
class Measured:
    """One child process: wall seconds, its own CPU seconds and peak RSS (from wait4)."""

    wall: float
    user: float
    system: float
    rss_mb: float
    returncode: int
    timed_out: bool = False

    @property
    def cpu(self) -> float:
        return self.user + self.system

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out


def measure(
    command: list[str], logs: Path, cwd: Path, timeout: float, env: dict[str, str] | None = None
) -> Measured:
    """Run `command` to the end (killed after `timeout`); stdout and stderr go to
    `logs`.out / .err.

    The watcher reads large documents in worker processes of a fork server, which are
    not its children: they would be missed by the child's own rusage. So the benchmark
    is a subreaper (`set_subreaper()`): those processes are reaped here when they end,
    and the CPU is the rusage of every process reaped during the run (the child and its
    descendants). The peak RSS is the larger of the child's own high-water mark and the
    highest sum of its RSS and its descendants' PSS (see `TreeSampler`)."""
    expired = threading.Event()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with logs.with_suffix(".out").open("wb") as out, logs.with_suffix(".err").open("wb") as err:
        start = time.perf_counter()
        environment = {**os.environ, **env} if env else None
        process = subprocess.Popen(command, cwd=cwd, stdout=out, stderr=err, env=environment)
        sampler = TreeSampler(process.pid)
        sampler.start()

        def expire() -> None:
            expired.set()
            process.send_signal(signal.SIGKILL)

        timer = threading.Timer(timeout, expire)
        timer.start()
        try:
            _, status, usage = os.wait4(process.pid, 0)
        except BaseException:  # Ctrl-C or SIGTERM: leave no child behind
            process.kill()
            process.wait()
            raise
        finally:
            timer.cancel()
            sampler.stop()
        wall = time.perf_counter() - start
        sampler.reap_descendants()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    process.returncode = os.waitstatus_to_exitcode(status)
    return Measured(
        wall=wall,
        user=after.ru_utime - before.ru_utime,
        system=after.ru_stime - before.ru_stime,
        rss_mb=max(usage.ru_maxrss / 1024, sampler.peak_kb / 1024),  # KiB on Linux
        returncode=process.returncode,
        timed_out=expired.is_set(),
    )


def set_subreaper() -> None:
    """Be the parent of this run's orphans (PR_SET_CHILD_SUBREAPER), so that their CPU
    is counted (see `measure`)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(36, 1, 0, 0, 0) != 0:  # PR_SET_CHILD_SUBREAPER
        print("bench: cannot become a subreaper: worker processes' CPU is not counted")


class TreeSampler(threading.Thread):
    """The highest total memory of a process and its descendants, sampled every 100 ms:
    the process's own RSS (from /proc/PID/status, which costs it nothing) and each
    descendant's PSS (proportional set size: the workers share what their fork server
    imported). Reading a PSS walks the process's page tables under its memory lock,
    which is not done to the process being timed."""

    def __init__(self, root: int) -> None:
        super().__init__(daemon=True)
        self.root = root
        self.peak_kb = 0
        self.seen: set[int] = set()
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.wait(0.1):
            below = _descendants(self.root)
            self.seen |= below
            total = _memory_kb(self.root, "VmRSS:") + sum(_memory_kb(p, "Pss:") for p in below)
            self.peak_kb = max(self.peak_kb, total)

    def stop(self) -> None:
        self._done.set()
        self.join()

    def reap_descendants(self, seconds: float = 10.0) -> None:
        """Wait for the descendants seen to end, reaping those that became ours."""
        deadline = time.monotonic() + seconds
        left = set(self.seen)
        while left and time.monotonic() < deadline:
            for pid in list(left):
                try:
                    if os.waitpid(pid, os.WNOHANG)[0] == pid:
                        left.discard(pid)
                except ChildProcessError:  # not ours (yet), or gone
                    if not Path(f"/proc/{pid}").exists():
                        left.discard(pid)
            if left:
                time.sleep(0.01)


def _descendants(root: int) -> set[int]:
    """Every process below `root`, from /proc/PID/task/TID/children."""
    found: set[int] = set()
    todo = [root]
    while todo:
        pid = todo.pop()
        try:
            tasks = list(Path(f"/proc/{pid}/task").iterdir())
        except OSError:
            continue
        for task in tasks:
            try:
                children = (task / "children").read_text().split()
            except OSError:
                continue
            for child in map(int, children):
                if child not in found:
                    found.add(child)
                    todo.append(child)
    return found


def _memory_kb(pid: int, field_name: str) -> int:
    """A process's VmRSS (from status) or Pss (from smaps_rollup), in KiB; 0 if gone."""
    path = f"/proc/{pid}/status" if field_name == "VmRSS:" else f"/proc/{pid}/smaps_rollup"
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(field_name):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


# the setup: feeds, servers, config


@dataclass
class Bench:
    args: argparse.Namespace
    home: Path
    writer: feedgen.FeedWriter
    server: servers.NginxFeeds | servers.PythonFeeds
    sink: servers.WebhookSink
    config: Path
    urls: Path
    feed_urls: dict[str, str]
    r2e: rss2email_side.Rss2Email | None = None
    smtp: servers.SmtpSink | None = None
    reader_db: Path | None = None  # reader's SQLite file, once its feeds are added
    broken: str | None = None  # why the watcher's later phases are skipped
    load_at_start: str = field(default_factory=lambda: _load_average())
    revision_at_start: str = field(default_factory=lambda: _git_revision())
    sources_at_start: str = field(default_factory=lambda: _source_digest())

    @property
    def feeds(self) -> int:
        return self.args.feeds

    @property
    def talks(self) -> int:
        return self.args.talks


def generate(writer: feedgen.FeedWriter, feeds: int, talks: int) -> list[int]:
    start = time.perf_counter()
    sizes = [writer.write(index, talks) for index in range(1, feeds + 1)]
    total = sum(sizes) / 1e6
    took = time.perf_counter() - start
    print(f"generated {feeds} feeds × {talks} talks: {total:.0f} MB in {took:.1f}s", flush=True)
    return sizes


def write_config(home: Path, feed_urls: dict[str, str], sink_url: str, concurrency: int) -> Path:
    """A watcher config: every feed notifies the one webhook destination, the sink."""
    lines = [
        "[watcher]",
        f'state = "{home / "state" / "watcher.json"}"',
        'timeout = "120s"',
        f"max_concurrency = {concurrency}",
        # every feed is on the one local server: the lower bound's concurrency, not a host's
        f"max_per_host = {concurrency}",
        "",
        "[[destinations]]",
        'name = "sink"',
        'type = "webhook"',
        f'url = "{sink_url}"',
        "",
    ]
    for name, url in feed_urls.items():
        lines += ["[[feeds]]", f'name = "{name}"', f'url = "{url}"', 'notify = ["sink"]', ""]
    path = home / "watcher.toml"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def start_server(
    args: argparse.Namespace, feeds_dir: Path, home: Path
) -> servers.NginxFeeds | servers.PythonFeeds:
    if args.server == "python":
        return servers.PythonFeeds(feeds_dir, "chosen by --server python")
    if args.server == "nginx" and not shutil.which("nginx"):
        raise SystemExit("bench: --server nginx, but nginx is not on PATH")
    return servers.start_feed_server(feeds_dir, home / "nginx")


def set_up(args: argparse.Namespace, home: Path, stack: ExitStack) -> tuple[Bench, list[int]]:
    """Feeds, the feed server and the sink (stopped when `stack` closes), the config."""
    feeds_dir = home / "feeds"
    feeds_dir.mkdir()
    shape = feedgen.SMALL if args.scale else feedgen.REALISTIC
    writer = feedgen.FeedWriter(feeds_dir, shape, feedgen.seed_transcripts())
    sizes = generate(writer, args.feeds, args.talks)
    server = start_server(args, feeds_dir, home)
    stack.callback(server.close)
    sink = servers.WebhookSink()
    stack.callback(sink.close)
    feed_urls = {
        feedgen.feed_name(i): f"{server.base_url}/{feedgen.feed_name(i)}.xml"
        for i in range(1, args.feeds + 1)
    }
    config = write_config(home, feed_urls, sink.url, args.concurrency)
    compile_watcher(args.python)
    urls = home / "urls.json"
    urls.write_text(json.dumps(list(feed_urls.values())))
    (home / "urls.txt").write_text("".join(f"{url}\n" for url in feed_urls.values()))
    for folder in ("logs", "validators", "shared-state"):
        (home / folder).mkdir()
    bench = Bench(args, home, writer, server, sink, config, urls, feed_urls)
    return bench, sizes


def compile_watcher(python: Path) -> None:
    """Compile the watcher's modules to bytecode, as `pip install` (and so the Dockerfile)
    does: a checkout run with PYTHONDONTWRITEBYTECODE set (as on these machines) would
    otherwise compile every module from source on every run, about 0.06 s of each phase
    that its installed dependencies, and so the lower bounds, do not pay."""
    subprocess.run(
        [str(python), "-m", "compileall", "-q", str(REPO / "watcher")],
        check=True,
        stdout=subprocess.DEVNULL,
    )


def set_up_rss2email(bench: Bench, stack: ExitStack) -> str | None:
    """Install and configure rss2email; None, with the reason printed, if it cannot be."""
    try:
        bench.smtp = servers.SmtpSink()
    except ImportError as exc:
        print(f"rss2email: skipped: no SMTP sink: {exc} (pip install aiosmtpd)")
        return None
    stack.callback(bench.smtp.close)
    r2e = rss2email_side.Rss2Email(bench.home / "rss2email", bench.feed_urls, bench.smtp.port)
    print("rss2email: installing into a venv in the temp folder…", flush=True)
    try:
        version = r2e.set_up()
    except rss2email_side.Unavailable as exc:
        print(f"rss2email: skipped: {exc}")
        return None
    bench.r2e = r2e
    return version


def set_up_reader(bench: Bench) -> str | None:
    """Add the feeds to a fresh reader database (not timed); None, with the reason
    printed, if reader is not installed in the watcher's venv."""
    db = bench.home / "reader.sqlite"
    logs = bench.home / "logs" / "reader-add"
    command = [bench.args.python, str(HERE / "reader_side.py"), "add", str(db), str(bench.urls)]
    result = measure(command, logs, bench.home, bench.args.phase_timeout)
    if not result.ok:
        why = (log_excerpt(logs, 1) or ["no output"])[-1]
        print(f"reader: skipped ({why}); pip install -e '.[bench]'")
        return None
    bench.reader_db = db
    return "reader " + json.loads(logs.with_suffix(".out").read_text())["version"]


# one phase


@dataclass
class PhaseResult:
    phase: str
    watcher: Measured | None
    lower: Measured
    lower_guids: int
    posts: int
    http: Counter  # (client, status) → answers during the phase
    shared: Measured | None = None  # lowerbound_shared.py
    shared_detected: int = -1
    shared_posts: int = 0
    r2e: Measured | None = None
    mails: int = 0
    reader: Measured | None = None
    reader_new: int = -1

    @property
    def faster(self) -> tuple[str, Measured | None]:
        """The faster lower bound of the two that completed: ("async" | "seq", its run)."""
        runs = [(w, m) for w, m in (("async", self.lower), ("seq", self.shared)) if m and m.ok]
        return min(runs, key=lambda pair: pair[1].wall) if runs else ("-", None)

    problems: list[str] = field(default_factory=list)


def watcher_command(bench: Bench, phase: str) -> list[str]:
    command = [bench.args.python, "-m", "watcher", "poll", "--config", str(bench.config)]
    if not bench.args.profile:
        return command
    out = bench.args.profile / f"{phase}.txt"
    # --gil: sample the thread holding the GIL only. Without it, the parse threads
    # waiting for the GIL are counted in whatever frame they wait in (often lxml).
    spy = [bench.args.py_spy, "record", "--gil", "--format", "raw", "--nonblocking"]
    return [*spy, "-o", str(out), "--", *command]


def lower_command(bench: Bench, phase: str) -> list[str]:
    index = PHASES.index(phase)
    previous = bench.home / "validators" / f"{PHASES[index - 1] if index else 'none'}.json"
    current = bench.home / "validators" / f"{phase}.json"
    script = str(HERE / "lower_bound.py")
    concurrency = str(bench.args.concurrency)
    return [bench.args.python, script, str(bench.urls), str(previous), str(current), concurrency]


def run_watcher(bench: Bench, phase: str) -> Measured | None:
    """Run one phase of the watcher. Exit 1 (some feeds failed, the others were
    polled and recorded) lets the next phases run; a crash or a time-out does not."""
    if bench.broken:
        return None
    logs = bench.home / "logs" / f"watcher-{phase}"
    result = measure(watcher_command(bench, phase), logs, bench.home, bench.args.phase_timeout)
    if not result.ok:
        why = "timed out" if result.timed_out else f"exited {result.returncode}"
        if result.timed_out or result.returncode != 1:
            bench.broken = f"the {phase} phase {why}"
        print(f"\nwatcher {phase}: {why}; from its log:", *log_excerpt(logs), sep="\n  ")
    return result


def log_excerpt(logs: Path, most: int = 8) -> list[str]:
    """The log's ERROR lines (the first few, and how many), else its last lines."""
    lines = logs.with_suffix(".err").read_text(errors="replace").splitlines()
    errors = [line for line in lines if " ERROR " in line or "Traceback" in line]
    if not errors:
        return lines[-most:]
    more = [f"… {len(errors) - most} more ERROR lines"] if len(errors) > most else []
    return errors[:most] + more + lines[-1:]


def run_lower_bound(bench: Bench, phase: str) -> tuple[Measured, int]:
    logs = bench.home / "logs" / f"lower-{phase}"
    result = measure(lower_command(bench, phase), logs, bench.home, bench.args.phase_timeout)
    try:
        summary = json.loads(logs.with_suffix(".out").read_text())
    except ValueError:
        summary = {"guids": -1}
    return result, summary["guids"]


def run_shared_lower_bound(bench: Bench, phase: str) -> tuple[Measured, int, int]:
    """lowerbound_shared.py: its cold mode, then its poll mode (conditional GET, a POST
    per new GUID to the sink); (run, GUIDs it detected as new, POSTs the sink got)."""
    logs = bench.home / "logs" / f"shared-{phase}"
    mode = "cold" if phase == "cold" else "poll"
    command = [bench.args.python, str(HERE / "lowerbound_shared.py"), mode]
    env = {
        "FEEDS_FILE": str(bench.home / "urls.txt"),
        "SINK_URL": bench.sink.url,
        "STATE_DIR": str(bench.home / "shared-state"),
    }
    posts_before = bench.sink.posts
    result = measure(command, logs, bench.home, bench.args.phase_timeout, env)
    posts = bench.sink.posts - posts_before
    detected = -1
    for line in logs.with_suffix(".out").read_text().splitlines():
        if line.startswith("BENCH_DETECTED="):
            detected = int(line.partition("=")[2])
    return result, detected, posts


def run_reader(bench: Bench, phase: str) -> tuple[Measured, int]:
    logs = bench.home / "logs" / f"reader-{phase}"
    command = [bench.args.python, str(HERE / "reader_side.py"), "update", str(bench.reader_db)]
    result = measure(command, logs, bench.home, bench.args.phase_timeout)
    try:
        summary = json.loads(logs.with_suffix(".out").read_text())
    except ValueError:
        summary = {"new": -1}
    return result, summary["new"]


def run_best_of(bench: Bench, phase: str, runs: int) -> PhaseResult:
    """The phase `runs` times, each runner's fastest run kept, and every run checked.

    This machine's speed moves by a third between minutes (a VM beside others), more than
    what is measured; the runners take turns (watcher, async bound, shared bound, then
    again), so each fastest comes from about the same moments. A phase that changes the
    state (cold, changed) starts each run again from the state before its first run: the
    watcher's state and the shared bound's are kept aside and put back (the async bound
    reads the validators of the phase before, and writes its own). The peers (rss2email,
    reader) run once, in the first round."""
    kept = [bench.home / "state", bench.home / "shared-state"]
    before = bench.home / "before"
    shutil.rmtree(before, ignore_errors=True)
    for folder in kept:
        if folder.exists():
            shutil.copytree(folder, before / folder.name)
    results = []
    for index in range(max(runs, 1)):
        if index:
            for folder in kept:
                shutil.rmtree(folder, ignore_errors=True)
                if (before / folder.name).exists():
                    shutil.copytree(before / folder.name, folder)
            os.sync()
        results.append(run_phase(bench, phase, peers=index == 0))
    shutil.rmtree(before, ignore_errors=True)
    best = results[0]
    for name in ("watcher", "lower", "shared"):
        done = [getattr(r, name) for r in results if getattr(r, name) is not None]
        setattr(best, name, min(done, key=lambda run: run.wall) if done else None)
    best.problems = [problem for r in results for problem in r.problems]
    return best


def run_phase(bench: Bench, phase: str, peers: bool = True) -> PhaseResult:
    print(f"phase {phase}: watcher…", end="", flush=True)
    http_before, posts_before = bench.server.counts(), bench.sink.posts
    watcher = run_watcher(bench, phase)
    posts = bench.sink.posts - posts_before
    print(" lower bound…", end="", flush=True)
    lower, guids = run_lower_bound(bench, phase)
    result = PhaseResult(phase, watcher, lower, guids, posts, Counter())
    print(" shared lower bound…", end="", flush=True)
    result.shared, result.shared_detected, result.shared_posts = run_shared_lower_bound(
        bench, phase
    )
    if bench.r2e and bench.smtp and peers:
        print(" rss2email…", end="", flush=True)
        mails_before = bench.smtp.messages
        logs = bench.home / "logs" / f"rss2email-{phase}"
        result.r2e = measure(bench.r2e.command(phase), logs, bench.home, bench.args.phase_timeout)
        result.mails = bench.smtp.messages - mails_before
    if bench.reader_db and peers:
        print(" reader…", end="", flush=True)
        result.reader, result.reader_new = run_reader(bench, phase)
    result.http = bench.server.counts() - http_before
    print(" done", flush=True)
    result.problems = check(bench, result)
    return result


def check(bench: Bench, result: PhaseResult) -> list[str]:
    """What differs from what the phase must show; empty when all is as expected."""
    n, k = bench.feeds, bench.talks
    phase = result.phase
    want_posts = n if phase == "changed" else 0
    want_guids = {"cold": n * k, "steady": 0, "changed": n * (k + 1)}[phase]
    problems = []
    runs = [
        ("watcher", result.watcher),
        ("lowerbound", result.lower),
        (SHARED_CLIENT, result.shared),
        ("rss2email", result.r2e),
        (READER_CLIENT, result.reader),
    ]
    for client, run in runs:
        got = {s: c for (who, s), c in result.http.items() if who == client}
        if run is not None and got != {EXPECTED_STATUS[phase]: n}:
            problems.append(f"{client}: HTTP answers {got}, expected {EXPECTED_STATUS[phase]}×{n}")
        if run is not None and not run.ok:
            problems.append(f"{client}: exited {run.returncode}, timed out: {run.timed_out}")
    if result.watcher is not None and result.posts != want_posts:
        problems.append(f"watcher: sink received {result.posts} POSTs, expected {want_posts}")
    if result.lower_guids != want_guids:
        problems.append(f"lower bound: read {result.lower_guids} GUIDs, expected {want_guids}")
    want_new = {"cold": n * k, "steady": 0, "changed": n}[phase]
    if result.shared is not None and result.shared_detected != want_new:
        problems.append(
            f"shared lower bound: detected {result.shared_detected} new GUIDs, expected {want_new}"
        )
    if result.shared is not None and result.shared_posts != want_posts:
        problems.append(
            f"shared lower bound: sink received {result.shared_posts} POSTs, expected {want_posts}"
        )
    if result.reader is not None and result.reader_new != want_new:
        problems.append(f"reader: {result.reader_new} new entries, expected {want_new}")
    if result.r2e is not None and result.mails != want_posts:
        problems.append(f"rss2email: sent {result.mails} mails, expected {want_posts}")
    return problems


# output


def machine_info(python: str) -> list[str]:
    version = subprocess.run(
        [python, "-c", "import sys; print(sys.version.split()[0])"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    cpu = _first_field("/proc/cpuinfo", "model name") or platform.processor() or "?"
    memory = _first_field("/proc/meminfo", "MemTotal") or "?"
    return [
        f"date: {datetime.now(UTC).isoformat(timespec='seconds')}",
        f"machine: nproc {os.cpu_count()} (usable {len(os.sched_getaffinity(0))}), {cpu}, "
        f"memory {memory}, {platform.system()} {platform.release()}",
        f"python: {version} ({python})",
    ]


def _load_average() -> str:
    """The 1, 5 and 15 minute load averages: other work on the machine skews the numbers."""
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def _first_field(path: str, name: str) -> str | None:
    try:
        for line in Path(path).read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == name:
                return " ".join(value.split())
    except OSError:
        return None
    return None


def _git_revision() -> str:
    """The commit and whether watcher/ differs from it (read-only: no index refresh)."""
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0"}

    def git(*args: str) -> str:
        result = subprocess.run(
            ["git", "-C", str(REPO), *args], capture_output=True, text=True, env=env, check=False
        )
        return result.stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") or "unknown commit"
    dirty = git("status", "--porcelain", "--", "watcher")
    return f"commit {commit}" + (" + uncommitted changes in watcher/" if dirty else "")


def _source_digest() -> str:
    """A digest of the watcher's sources as they are now: others may be editing them."""
    digest = hashlib.sha256()
    for path in sorted((REPO / "watcher").rglob("*.py")):
        digest.update(path.relative_to(REPO).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def print_header(bench: Bench, sizes: list[int]) -> None:
    args = bench.args
    mode = "scale (small talks)" if args.scale else "realistic talks"
    mean = sum(sizes) / len(sizes) / 1e6
    print()
    for line in machine_info(args.python):
        print(line)
    print(f"load average (1/5/15 min): {bench.load_at_start} at the start, {_load_average()} now")
    sources = _source_digest()
    print(f"watcher: {_git_revision()}; sources sha256 {sources}; compiled to bytecode first")
    if sources != bench.sources_at_start:
        print(
            f"WARNING: watcher/ changed during the run (at the start: {bench.revision_at_start};"
            f" sources sha256 {bench.sources_at_start}): phases may have run different code"
        )
    print(
        f"N={args.feeds} feeds × K={args.talks} talks ({mode}), mean feed {mean:.2f} MB, "
        f"total {sum(sizes) / 1e6:.0f} MB; concurrency {args.concurrency}"
    )
    print(f"feed server: {bench.server.name} at {bench.server.base_url}")
    print(f"webhook sink: {bench.sink.url}")
    if args.profile:
        print(
            f"PROFILED RUN: the watcher ran under py-spy (profiles in {args.profile});"
            " its timings include py-spy's overhead: do not quote them"
        )
    print()


def _cells(run: Measured | None) -> list[str]:
    if run is None:
        return ["skipped", "-", "-"]
    wall = f"{run.wall:.2f}" + ("" if run.ok else " FAILED")
    return [wall, f"{run.cpu:.2f}", f"{run.rss_mb:.1f}"]


def _ratio(numerator: Measured | None, denominator: Measured | None) -> str:
    if not numerator or not denominator or denominator.wall <= 0:
        return "-"
    return f"{numerator.wall / denominator.wall:.1f}x"


def print_rows(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    print(" | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    print("-+-".join("-" * w for w in widths))
    for row in rows:
        cells = [row[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)
        ]
        print(" | ".join(cells))
    print()


def print_tables(results: list[PhaseResult]) -> None:
    header = ["phase", "watcher wall s", "cpu s", "peak RSS MB"]
    header += ["async bound wall s", "seq bound wall s", "faster", "ratio wall (to faster)"]
    rows = []
    for r in results:
        which, faster = r.faster
        wall = [_cells(r.lower)[0], _cells(r.shared)[0]]
        rows.append([r.phase, *_cells(r.watcher), *wall, which, _ratio(r.watcher, faster)])
    print_rows(header, rows)
    print(
        "lower bounds: async = lower_bound.py (httpx.AsyncClient at the watcher's concurrency),"
        "\n              seq = lowerbound_shared.py (httpx.Client, one feed at a time, POSTs):"
    )
    header = ["phase", "async wall s", "cpu s", "RSS MB", "seq wall s", "cpu s", "RSS MB"]
    header += ["watcher/async", "watcher/seq"]
    rows = [
        [
            r.phase,
            *_cells(r.lower),
            *_cells(r.shared),
            _ratio(r.watcher, r.lower),
            _ratio(r.watcher, r.shared),
        ]
        for r in results
    ]
    print_rows(header, rows)
    if any(r.reader for r in results):
        header = ["phase", "reader wall s", "cpu s", "peak RSS MB", "watcher wall s"]
        header += ["reader/watcher wall"]
        rows = [
            [r.phase, *_cells(r.reader), _cells(r.watcher)[0], _ratio(r.reader, r.watcher)]
            for r in results
        ]
        print("reader (update_feeds(): one feed at a time; SQLite; delivers nothing):")
        print_rows(header, rows)
    if any(r.r2e for r in results):
        header = ["phase", "rss2email wall s", "cpu s", "peak RSS MB", "watcher wall s"]
        header += ["rss2email/watcher wall"]
        rows = [
            [r.phase, *_cells(r.r2e), _cells(r.watcher)[0], _ratio(r.r2e, r.watcher)]
            for r in results
        ]
        print("rss2email (fetches one feed at a time; mails through a local SMTP sink):")
        print_rows(header, rows)


def print_checks(bench: Bench, results: list[PhaseResult]) -> bool:
    print("checks:")
    for r in results:
        answers = sorted(r.http.items())
        http = ", ".join(f"{who} {status}×{count}" for (who, status), count in answers)
        print(
            f"  {r.phase}: HTTP {http or 'none'}; webhook POSTs {r.posts}; "
            f"lower-bound GUIDs {r.lower_guids}; shared lower bound new GUIDs "
            f"{r.shared_detected}, POSTs {r.shared_posts}"
            + (f"; mails {r.mails}" if r.r2e else "")
            + (f"; reader new entries {r.reader_new}" if r.reader else "")
        )
        for problem in r.problems:
            print(f"    FAIL: {problem}")
    changed = next((r for r in results if r.phase == "changed"), None)
    if changed and changed.watcher:
        verdict = "OK" if changed.posts == bench.feeds else "FAIL"
        print(
            f"  changed: the sink received {changed.posts} POSTs, expected exactly "
            f"N={bench.feeds}: {verdict}"
        )
    print()
    return not any(r.problems for r in results)


def print_profiles(directory: Path, phases: tuple[str, ...]) -> None:
    for phase in phases:
        path = directory / f"{phase}.txt"
        if path.exists():
            print(f"py-spy, watcher {phase}:")
            print(pyspy_report.report(path))


# main


def run(args: argparse.Namespace, home: Path) -> bool:
    with ExitStack() as stack:  # stops every server, also on an error or Ctrl-C
        bench, sizes = set_up(args, home, stack)
        r2e_version = set_up_rss2email(bench, stack) if args.rss2email else None
        reader_version = set_up_reader(bench) if args.reader else None
        if args.profile:
            args.profile.mkdir(parents=True, exist_ok=True)
        print_header(bench, sizes)
        phases = SCALE_PHASES if args.scale else PHASES
        results = []
        for phase in phases:
            if phase == "changed":
                for index in range(1, args.feeds + 1):
                    bench.writer.add_newer_talk(index, args.talks)
            # The feeds were just written (241 MB by default): their write-back to disk
            # would slow whichever runner comes first, the watcher, and its fsyncs most.
            os.sync()
            results.append(run_best_of(bench, phase, args.runs))
    print()
    print_header(bench, sizes)
    if r2e_version:
        print(f"rss2email: {r2e_version}")
    if reader_version:
        print(f"reader: {reader_version}")
    print_tables(results)
    passed = print_checks(bench, results)
    if args.profile:
        print_profiles(args.profile, phases)
    return passed


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    set_subreaper()
    # SIGTERM unwinds like Ctrl-C, so the servers (nginx is a child) are stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    home = Path(tempfile.mkdtemp(prefix="bench-poll-"))
    try:
        passed = run(args, home)
    finally:
        if args.keep:
            print(f"kept the temp folder: {home} (logs/, state/, feeds/)")
        else:
            shutil.rmtree(home, ignore_errors=True)
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
