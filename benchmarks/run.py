"""Benchmark the tap against local emulators and write docs/benchmarks.md.

    .venv/bin/python -m benchmarks.run        (or: make bench)

Four figures, each measured on a tap process started here:

a. requests of a backfill of every stream against the minimum the report table allows;
b. achieved request rate against the configured budget, for several budgets and latencies;
c. records per second on a report with thousands of rows per day, against a raw baseline;
d. peak RSS of a 365-day sync against a 30-day sync.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from benchmarks.harness import (
    GET_DATA_PATH,
    access_token,
    discover_catalog,
    run_tap,
    tap_config,
    window_days,
)
from benchmarks.minimum import minimum_requests
from benchmarks.replay import ReplayProxy
from tap_baidu_tongji.emulator import Emulator, FaultPlan
from tap_baidu_tongji.reports import REPORTS, REPORTS_BY_STREAM

REPO_ROOT = Path(__file__).resolve().parent.parent
DOC_PATH = REPO_ROOT / "docs" / "benchmarks.md"

BACKFILL_DAYS = 90
UNLIMITED_RATE = 1000.0
"""Budget for runs that measure CPU, requests or memory rather than pacing (requests/s)."""
CPU_BOUND_CONCURRENCY = 8

BUDGET_CASES = ((5.0, 0.05), (20.0, 0.1), (20.0, 0.3), (50.0, 0.05), (50.0, 0.3))
"""(max_requests_per_second, emulator latency in seconds) of figure b."""
BUDGET_STREAM = "source_engine"
BUDGET_SECONDS = 8.0
"""Length a budget run aims at: the days read are the budget times this."""
BUDGET_SITE = 16847648

THROUGHPUT_STREAM = "visit_toppage"
THROUGHPUT_SITE = 16901234
THROUGHPUT_DAYS = 20
THROUGHPUT_PAGE_COUNT = 5000
THROUGHPUT_TRAFFIC_SCALE = 20.0
THROUGHPUT_PAGE_SIZE = 10_000
THROUGHPUT_ATTEMPTS = 3

MEMORY_SITE = 16847648
MEMORY_DAYS = (30, 365)


@dataclass(frozen=True)
class Figure:
    """One line of the summary: what was measured, the value, the target and the settings."""

    name: str
    measured: str
    ratio: float
    target: str
    met: bool
    settings: str


def measure_requests(folder: Path, page_size: int) -> tuple[Figure, list[str]]:
    """Figure a: requests of a 90-day backfill of every stream, for the emulator's sites."""
    first, last = window_days(BACKFILL_DAYS)
    with Emulator(port=0) as census_emu:
        minimum = minimum_requests(census_emu, REPORTS, first, last, page_size)

    with Emulator(port=0) as emu:
        config = tap_config(
            emu.url,
            emu,
            folder,
            start_date=first.isoformat(),
            end_date=last.isoformat(),
            page_size=page_size,
            max_requests_per_second=UNLIMITED_RATE,
            max_concurrent_requests=CPU_BOUND_CONCURRENCY,
        )
        catalog = discover_catalog(config, folder, streams=None)
        process = run_tap(config, catalog, folder, f"requests-{page_size}")
        log = emu.request_log

    sent_by_method = Counter(
        entry.params.get("method") for entry in log if entry.path == GET_DATA_PATH
    )
    details = []
    for stream, needed in sorted(minimum.by_stream.items()):
        sent_for_stream = sent_by_method.get(REPORTS_BY_STREAM[stream].method, 0)
        if sent_for_stream != needed:
            details.append(f"{stream}: {sent_for_stream} requests, minimum {needed}")
    sent = len(log)
    ratio = sent / minimum.total
    figure = Figure(
        name=f"a. requests, 90-day backfill (page_size {page_size})",
        measured=f"{sent} requests, minimum {minimum.total} ({process.wall_seconds:.1f} s)",
        ratio=ratio,
        target="1.0",
        met=math.isclose(ratio, 1.0),
        settings=(
            f"{len(catalog['streams'])} streams selected, 3 sites, {first} to {last}, "
            f"page_size {page_size}, no latency"
        ),
    )
    return figure, details


def measure_budget(folder: Path, rate: float, latency: float) -> Figure:
    """Figure b: steady request rate of a per-day backfill against `max_requests_per_second`.

    Concurrency is 1.5 times what Little's law requires (rate x latency), so the budget and
    not the number of threads limits the run.
    """
    days = max(30, int(rate * BUDGET_SECONDS))
    first, last = window_days(days)
    concurrency = max(2, math.ceil(rate * (latency + 0.01) * 1.5))
    with Emulator(port=0, faults=FaultPlan(latency_seconds=latency)) as emu:
        config = tap_config(
            emu.url,
            emu,
            folder,
            start_date=first.isoformat(),
            end_date=last.isoformat(),
            site_ids=[BUDGET_SITE],
            max_requests_per_second=rate,
            max_concurrent_requests=concurrency,
        )
        catalog = discover_catalog(config, folder, streams=[BUDGET_STREAM])
        run_tap(config, catalog, folder, f"budget-{rate:g}-{latency:g}")
        times = [entry.time for entry in emu.request_log if entry.path == GET_DATA_PATH]

    achieved = (len(times) - 1) / (times[-1] - times[0])
    ratio = achieved / rate
    return Figure(
        name=f"b. request rate, budget {rate:g}/s, latency {latency * 1000:.0f} ms",
        measured=f"{achieved:.1f} requests/s over {len(times)} requests",
        ratio=ratio,
        target=">= 0.9",
        met=ratio >= 0.9,
        settings=(f"{BUDGET_STREAM}, 1 site, {days} days, max_concurrent_requests {concurrency}"),
    )


def _run_baseline(url: str, token: str, first: dt.date, last: dt.date) -> tuple[int, float]:
    """Run the raw baseline process; return its record count and wall time."""
    report = REPORTS_BY_STREAM[THROUGHPUT_STREAM]
    args = [
        sys.executable,
        "-m",
        "benchmarks.baseline",
        "--url",
        url,
        "--token",
        token,
        "--site-id",
        str(THROUGHPUT_SITE),
        "--method",
        report.method,
        "--metrics",
        ",".join(report.metrics),
        "--first",
        first.isoformat(),
        "--last",
        last.isoformat(),
        "--page-size",
        str(THROUGHPUT_PAGE_SIZE),
        "--stream",
        THROUGHPUT_STREAM,
    ]
    started = time.perf_counter()
    completed = subprocess.run(
        args, capture_output=True, text=True, check=True, cwd=REPO_ROOT, timeout=600
    )
    wall = time.perf_counter() - started
    return int(json.loads(completed.stdout)["records"]), wall


def measure_throughput(folder: Path) -> tuple[Figure, dict[str, float]]:
    """Figure c: tap records per second on a large report against the raw baseline.

    Both run as processes with stdout to /dev/null and are timed from start to exit, so the
    tap's start-up counts. A warm-up pass fills the replay proxy first, so neither run waits
    for the emulator to build rows.
    """
    first, last = window_days(THROUGHPUT_DAYS)
    faults = FaultPlan(sticky_refresh_token=True)
    emulator = Emulator(
        port=0,
        faults=faults,
        page_count=THROUGHPUT_PAGE_COUNT,
        traffic_scale=THROUGHPUT_TRAFFIC_SCALE,
    )
    with emulator as emu, ReplayProxy(emu.url) as proxy:
        token = access_token(proxy.url, emu)
        records, _ = _run_baseline(proxy.url, token, first, last)
        proxy.reset_counts()
        config = tap_config(
            proxy.url,
            emu,
            folder,
            start_date=first.isoformat(),
            end_date=last.isoformat(),
            site_ids=[THROUGHPUT_SITE],
            page_size=THROUGHPUT_PAGE_SIZE,
            max_requests_per_second=UNLIMITED_RATE,
            max_concurrent_requests=CPU_BOUND_CONCURRENCY,
        )
        catalog = discover_catalog(config, folder, streams=[THROUGHPUT_STREAM])
        # Alternate the two and keep the best of each, because other load on the machine
        # slows single runs by up to a factor of two.
        baseline_walls: list[float] = []
        processes = []
        for attempt in range(THROUGHPUT_ATTEMPTS):
            baseline_walls.append(_run_baseline(proxy.url, token, first, last)[1])
            processes.append(run_tap(config, catalog, folder, f"throughput-{attempt}"))
        misses = proxy.misses

    baseline_wall = min(baseline_walls)
    process = min(processes, key=lambda run: run.wall_seconds)
    baseline_rate = records / baseline_wall
    tap_rate = records / process.wall_seconds
    ratio = tap_rate / baseline_rate
    measured = (
        f"tap {tap_rate:,.0f} records/s ({process.wall_seconds:.1f} s, "
        f"{process.cpu_seconds:.1f} s CPU), baseline {baseline_rate:,.0f} records/s "
        f"({baseline_wall:.1f} s)"
    )
    if misses:
        measured += f", {misses} tap requests missed the replay cache"
    figure = Figure(
        name=f"c. records/s, {THROUGHPUT_STREAM}",
        measured=measured,
        ratio=ratio,
        target=">= 0.5",
        met=ratio >= 0.5,
        settings=(
            f"{records:,} records: 1 site, {THROUGHPUT_DAYS} days, about "
            f"{records // THROUGHPUT_DAYS:,} rows a day (emulator page_count "
            f"{THROUGHPUT_PAGE_COUNT}, traffic_scale {THROUGHPUT_TRAFFIC_SCALE:g}), page_size "
            f"{THROUGHPUT_PAGE_SIZE}, no latency, best of {THROUGHPUT_ATTEMPTS} runs each"
        ),
    )
    return figure, {"tap_cpu_seconds": process.cpu_seconds, "records": records}


def measure_memory(folder: Path) -> Figure:
    """Figure d: peak RSS of syncing every stream of one site for 365 days against 30 days."""
    peaks: dict[int, float] = {}
    seconds: dict[int, float] = {}
    for days in MEMORY_DAYS:
        first, last = window_days(days)
        run_folder = folder / f"{days}-days"
        run_folder.mkdir()
        with Emulator(port=0) as emu:
            config = tap_config(
                emu.url,
                emu,
                run_folder,
                start_date=first.isoformat(),
                end_date=last.isoformat(),
                site_ids=[MEMORY_SITE],
                max_requests_per_second=UNLIMITED_RATE,
                max_concurrent_requests=CPU_BOUND_CONCURRENCY,
            )
            catalog = discover_catalog(config, run_folder, streams=None)
            process = run_tap(config, catalog, run_folder, f"memory-{days}")
        peaks[days] = process.peak_rss_mib
        seconds[days] = process.wall_seconds
    short, long = MEMORY_DAYS
    ratio = peaks[long] / peaks[short]
    return Figure(
        name=f"d. peak RSS, {long} against {short} days",
        measured=(
            f"{peaks[long]:.1f} MiB against {peaks[short]:.1f} MiB "
            f"({seconds[long]:.1f} s and {seconds[short]:.1f} s)"
        ),
        ratio=ratio,
        target="<= 1.1",
        met=ratio <= 1.1,
        settings="every stream, 1 site, no latency",
    )


def render(figures: list[Figure], notes: list[str], total_seconds: float) -> str:
    """Return the Markdown page of one run."""
    lines = [
        "# Benchmarks",
        "",
        "Written by `python -m benchmarks.run` (`make bench`); rerun it to refresh this page.",
        "Every figure comes from a tap process run against the bundled emulator on",
        "127.0.0.1, so network time is the emulator's injected latency only.",
        "",
        f"- Date: {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC",
        f"- CPUs: {os.cpu_count()}",
        f"- Python: {platform.python_version()} ({platform.python_implementation()})",
        f"- Platform: {platform.platform()}",
        f"- Load average at the end (1, 5, 15 min): "
        f"{', '.join(f'{load:.1f}' for load in os.getloadavg())}",
        f"- Whole run: {total_seconds:.0f} s",
        "",
        "| Figure | Measured | Ratio | Target | Met | Settings |",
        "|---|---|---|---|---|---|",
    ]
    for figure in figures:
        lines.append(
            f"| {figure.name} | {figure.measured} | {figure.ratio:.2f} | {figure.target} | "
            f"{'yes' if figure.met else 'no'} | {figure.settings} |"
        )
    lines += [
        "",
        "## How each figure is measured",
        "",
        "- **a**: every request the emulator logged (token refresh, getSiteList, getData),",
        "  divided by the minimum computed from the report table and the emulator's `total`",
        "  per day: per site one range request per daily-rows report, one request per day and",
        "  page for the other dated reports, and the realtime report's pages; plus one",
        "  getSiteList and one token refresh.",
        "- **b**: getData requests in the emulator's log, divided by the time between the",
        "  first and the last, against `max_requests_per_second`. The budget spaces requests",
        "  5 % wider than the rate, so about 0.95 is the ceiling.",
        "- **c**: records of the tap process (stdout to /dev/null, timed from start to exit)",
        "  against a baseline process that does one GET with requests, `json.loads` and one",
        "  `json.dumps` RECORD line per row to /dev/null. Both read the same days through a",
        "  caching proxy warmed beforehand, so neither waits for the emulator to build rows.",
        "- **d**: `ru_maxrss` of the tap process from `os.wait4`.",
        "",
        "## Where the tap's time goes",
        "",
        "A py-spy profile of figure c (2026-12-04, singer-sdk 0.54.9): the main thread takes",
        "about two thirds of the samples, the fetch threads a quarter and start-up imports",
        "(about 0.8 s) the rest. In the main thread, the SDK's per-record work (removing",
        "deselected properties, building message objects, counting) and JSON encoding of",
        "RECORD lines dominate; in the fetch threads, HTTP and JSON decoding come before the",
        "tap's own conversion. The tap already skips the SDK's type conformance on report",
        "streams and writes RECORD lines in batches; the rest would need overriding private",
        "SDK methods. Rates reach 0.95 of the budget, the ceiling set by the 5 % safety",
        "margin between request start times.",
        "",
    ]
    if notes:
        lines += ["## Notes", "", *[f"- {note}" for note in notes], ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Benchmark the tap against local emulators.")
    parser.add_argument(
        "--only",
        choices=["a", "b", "c", "d"],
        action="append",
        help="Run only this figure (repeatable); the page is written only for a full run.",
    )
    args = parser.parse_args(argv)
    selected_figures = set(args.only or "abcd")

    started = time.perf_counter()
    figures: list[Figure] = []
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="tap-baidu-tongji-bench-") as tmp:
        folder = Path(tmp)

        def run_folder(name: str) -> Path:
            path = folder / name
            path.mkdir()
            return path

        if "a" in selected_figures:
            for page_size in (1000, 10):
                figure, details = measure_requests(run_folder(f"a-{page_size}"), page_size)
                figures.append(figure)
                notes += details
                print(figure, flush=True)
        if "b" in selected_figures:
            for rate, latency in BUDGET_CASES:
                figure = measure_budget(run_folder(f"b-{rate:g}-{latency:g}"), rate, latency)
                figures.append(figure)
                print(figure, flush=True)
        if "c" in selected_figures:
            figure, _ = measure_throughput(run_folder("c"))
            figures.append(figure)
            print(figure, flush=True)
        if "d" in selected_figures:
            figure = measure_memory(run_folder("d"))
            figures.append(figure)
            print(figure, flush=True)

    total = time.perf_counter() - started
    page = render(figures, notes, total)
    print()
    print(page)
    if selected_figures == set("abcd"):
        DOC_PATH.write_text(page, encoding="utf-8")
        print(f"Wrote {DOC_PATH.relative_to(REPO_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
