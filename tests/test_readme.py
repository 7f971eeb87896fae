"""The README's Python API example runs as written, so the first code a user copies works."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def python_api_example() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Python API", 1)[1].split("\n## ", 1)[0]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_python_api_example_runs_and_prints_what_its_comments_say(tmp_path):
    (tmp_path / "benchmarks").symlink_to(ROOT / "benchmarks")  # the example reads benchmarks/data/paraphrases.csv
    run = subprocess.run([sys.executable, "-c", python_api_example()], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    cosine, threshold = map(float, lines[0].split())
    assert cosine < threshold  # "What is your age?" is not yet a duplicate of "How old are you?" for the bundled model
    assert lines[1].startswith("1 How old are you? ") and lines[1].endswith(" True")  # the best match, a duplicate
    assert lines[3] == "5"  # three built, one added, one more added by search_and_add
    auc, other_words = map(float, lines[4].split())
    said = re.search(r'by_kind.*#\s*([0-9.]+)\.\.\., ([0-9.]+)\.\.\.', python_api_example())  # the comment's figures
    assert (round(auc, 4), round(other_words, 4)) == (float(said.group(1)), float(said.group(2)))
    assert (tmp_path / "indexes" / "demo").is_dir()
