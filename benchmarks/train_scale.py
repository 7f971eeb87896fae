"""Training at the scale of the full release, measured on synthetic pairs built from the bundled ones.

Each bundled pair is repeated with words dropped or swapped (its label kept, a new pair id)
until the file has N rows; then a real `qsearch train` process (triplet stage, no teacher, no
corpus, this machine's device) runs on it while this script reads its progress bar and its
peak memory (VmHWM). An epoch of 400k pairs takes longer than this script waits on a 2-core
CPU, so seconds per epoch come from the measured step rate of the first ``--seconds`` of
steps (steps in an epoch / steps per second), and say so.

    python benchmarks/train_scale.py                      # 10k, 100k, 400k rows
    python benchmarks/train_scale.py --rows 10000 --seconds 60 --device cuda
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from common import RESULTS, machine
from qsearch.augment import augment
from qsearch.paths import DEFAULT_PAIRS

PROGRESS = re.compile(r"train epoch 1:\s+\d+%.*?\|\s*(\d+)/(\d+) \[([0-9:]+)<")


def synthetic_pairs(rows: int, path: Path, seed: int = 0) -> None:
    """The bundled pairs, then noisy copies of them, to ``rows`` rows (written as CSV.gz)."""
    base = pd.read_csv(DEFAULT_PAIRS, dtype=str, keep_default_na=False)
    rng = np.random.default_rng(seed)
    parts, copy = [base], 0
    while sum(len(p) for p in parts) < rows:
        copy += 1
        noisy = base.copy()
        noisy["id"] = noisy["id"] + f"-s{copy}"
        noisy["question1"] = [augment(q, rng) for q in noisy["question1"]]
        noisy["question2"] = [augment(q, rng) for q in noisy["question2"]]
        parts.append(noisy)
    frame = pd.concat(parts).head(rows)
    with gzip.open(path, "wt", encoding="utf-8") as f:
        frame[["id", "question1", "question2", "is_duplicate"]].to_csv(f, index=False)


def seconds(text: str) -> int:
    total = 0
    for part in text.split(":"):
        total = total * 60 + int(part)
    return total


def measure(path: Path, out: Path, wait: float, device: str) -> dict:
    cmd = [sys.executable, "-m", "qsearch.cli", "train", "--data", str(path), "--corpus", "none", "--teacher", "none",
           "--epochs", "1", "--device", device, "--out", str(out)]
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)
    peak_kib, first_step, last, data_line = 0, None, None, ""
    buffer = ""
    fd = proc.stderr.fileno()
    os.set_blocking(fd, False)
    while proc.poll() is None:
        try:
            chunk = os.read(fd, 1 << 16).decode("utf-8", "replace")
        except BlockingIOError:
            chunk = ""
        buffer = (buffer + chunk)[-20000:]
        for line in re.split(r"[\r\n]", chunk):
            if line.startswith("data:"):
                data_line = line
            m = PROGRESS.search(line)
            if m:
                done, total, elapsed = int(m.group(1)), int(m.group(2)), seconds(m.group(3))
                if first_step is None and done > 0:
                    first_step = time.perf_counter()
                last = (done, total, elapsed)
        try:
            status = Path(f"/proc/{proc.pid}/status").read_text()
            peak_kib = max(peak_kib, int(re.search(r"VmHWM:\s+(\d+)", status).group(1)))
        except (OSError, AttributeError):
            pass
        if first_step is not None and time.perf_counter() - first_step > wait:
            proc.kill()
            break
        time.sleep(0.5)
    finished = proc.wait() == 0
    setup_s = (first_step or time.perf_counter()) - started
    if last is None:
        raise SystemExit(f"no progress read from the training run:\n{buffer[-2000:]}")
    done, total, elapsed = last
    rate = done / max(elapsed, 1)
    return {"pairs_file_rows": None, "steps_per_epoch": total, "steps_measured": done, "steps_per_s": round(rate, 3),
            "epoch_s": round(total / rate), "setup_s": round(setup_s), "peak_mib": round(peak_kib / 1024),
            "whole_epoch_run": finished, "data": data_line}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000, 100_000, 400_000])
    parser.add_argument("--seconds", type=float, default=90, help="seconds of steps to measure the rate on")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    rows_out = []
    with tempfile.TemporaryDirectory() as tmp:
        for rows in args.rows:
            path = Path(tmp) / f"pairs_{rows}.csv.gz"
            synthetic_pairs(rows, path)
            result = measure(path, Path(tmp) / f"model_{rows}", args.seconds, args.device)
            result["pairs_file_rows"] = rows
            result["device"] = args.device
            rows_out.append(result)
            print(json.dumps(result), flush=True)
    print("\n| pairs | device | steps/epoch | steps/s | seconds per epoch | setup s (read, tokenize) | peak MiB |")
    print("|---:|---|---:|---:|---:|---:|---:|")
    for r in rows_out:
        note = "" if r["whole_epoch_run"] else " (from the step rate)"
        print(f"| {r['pairs_file_rows']:,} | {r['device']} | {r['steps_per_epoch']} | {r['steps_per_s']} | {r['epoch_s']}{note} | {r['setup_s']} | {r['peak_mib']} |")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"train_scale_{args.device}.json").write_text(json.dumps({"machine": machine(), "rows": rows_out}, indent=2) + "\n")


if __name__ == "__main__":
    main()
