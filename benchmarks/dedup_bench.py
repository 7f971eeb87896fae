"""Time ``qsearch dedup`` on 100,000 real questions (the bundled questions, repeats included).

    python benchmarks/dedup_bench.py
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from common import command_peak_rss_mib, machine, save
from qsearch.data import default_questions


def main(rows: int = 100_000) -> None:
    questions = default_questions()
    questions = (questions * (rows // len(questions) + 1))[:rows]
    with tempfile.TemporaryDirectory() as tmp:
        src, out = Path(tmp) / "questions.csv", Path(tmp) / "clusters.csv"
        pd.DataFrame({"question": questions}).to_csv(src, index=False)
        cmd = [sys.executable, "-m", "qsearch.cli", "dedup", str(src), "--out", str(out)]
        start = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True, check=True)
        elapsed = time.perf_counter() - start
        clusters = pd.read_csv(out, keep_default_na=False)
        peak = command_peak_rss_mib(cmd)
    print(done.stdout.strip())
    print(f"| dedup {rows:,} questions, whole command | {elapsed:.1f} s | peak memory {peak:.0f} MiB |")
    print(f"largest cluster: {clusters['cluster_size'].max()} rows; machine: {machine()}")
    save("dedup", {"machine": machine(), "rows": rows, "seconds": elapsed, "peak_rss_mib": peak})


if __name__ == "__main__":
    main()
