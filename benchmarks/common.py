"""Small timing helpers shared by the benchmark scripts (time.perf_counter and resource only)."""

from __future__ import annotations

import json
import platform
import resource
import statistics
import subprocess
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
PARAPHRASES = Path(__file__).resolve().parent / "data" / "paraphrases.csv"  # 234 hand-written pairs, reported
PARAPHRASES_MORE = PARAPHRASES.with_name("paraphrases_more.csv")  # 251 more, written 2026-12-01 and committed before any model scored them, reported
PARAPHRASES_DEV = PARAPHRASES.with_name("paraphrases_dev.csv")  # 202 more (120 until the sixth session of 2026-11-29), written to choose between models


def percentiles(seconds: list[float]) -> dict[str, float]:
    """p50 and p99 in milliseconds."""
    ms = sorted(s * 1000 for s in seconds)
    return {"p50_ms": statistics.median(ms), "p99_ms": ms[min(len(ms) - 1, int(0.99 * len(ms)))]}


def peak_rss_mib() -> float:
    """Peak resident memory of this process in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def command_peak_rss_mib(cmd: list[str]) -> float:
    """Peak resident memory of one run of a command, in MiB, measured by GNU time.

    Not ru_maxrss of our own child: Linux carries a parent's high-water mark into a forked
    child across exec, so a child of a big benchmark process reports the parent's size.
    """
    done = subprocess.run(["/usr/bin/time", "-f", "%M", *cmd], capture_output=True, text=True, check=True)
    return int(done.stderr.strip().splitlines()[-1]) / 1024


def cold_command(cmd: list[str], runs: int = 5) -> dict[str, float]:
    """Median wall time of a whole command, new process each run (after one warm-up for the
    disk cache), and its peak memory."""
    subprocess.run(cmd, capture_output=True, check=True)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, capture_output=True, check=True)
        times.append(time.perf_counter() - start)
    return {"median_s": statistics.median(times), "min_s": min(times), "runs": runs, "peak_rss_mib": command_peak_rss_mib(cmd)}


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import os

    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()}"


def save(name: str, data: dict) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path
