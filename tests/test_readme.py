"""The README's examples run as written and print what it shows, so the first code a user
copies works and the outputs it reads are real."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import run_cli

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
    assert lines[4] == "[3, None] 4"  # the sky question removed (id 3), the other never stored
    auc, other_words = map(float, lines[5].split())
    said = re.search(r'by_kind.*#\s*([0-9.]+)\.\.\., ([0-9.]+)\.\.\.', python_api_example())  # the comment's figures
    assert (round(auc, 4), round(other_words, 4)) == (float(said.group(1)), float(said.group(2)))
    assert (tmp_path / "indexes" / "demo").is_dir()


def transcripts(prefix: str) -> list[tuple[list[str], str]]:
    """Every ``$ PREFIX ...`` line of the README's text blocks, as arguments (``qsearch`` itself
    left out), with the output the README shows under it (up to the next ``$`` line or the
    block's end)."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    found = []
    for block in re.findall(r"```text\n(.*?)```", readme, re.S):
        for chunk in re.split(r"^(?=\$ )", block, flags=re.M):
            line, _, shown = chunk.partition("\n")
            if line.startswith(f"$ {prefix}"):
                args = shlex.split(line[2:])
                found.append((args[1:] if args[0] == "qsearch" else args, shown.strip("\n") + "\n"))
    return found


def timeless(text: str) -> str:
    """Output with its timings (``0.1s``) blanked: the one part that is not the same each run."""
    return re.sub(r"\b\d+(\.\d+)?s\b", "_s", text)


def rounded(text: str) -> str:
    """Output with JSON's full-precision floats cut to 5 decimals: the float32 sums behind a
    score may end in other digits from one BLAS thread count or index build to another."""
    return re.sub(r"\d+\.\d{6,}", lambda m: f"{float(m.group()):.5f}", text)


def test_the_compare_examples_print_what_the_readme_shows():
    examples = transcripts("qsearch compare ")
    assert len(examples) >= 4
    for args, shown in examples:
        assert run_cli(*args).stdout == shown, args


def test_the_dedup_examples_print_what_the_readme_shows(tmp_path):
    [(_, archive)] = transcripts("cat archive.csv")
    (tmp_path / "archive.csv").write_text(archive)
    examples = transcripts("qsearch dedup ")
    assert len(examples) >= 3
    for args, shown in examples:
        cut = args.index("&&") if "&&" in args else len(args)  # `... --out clusters.csv && cat clusters.csv`
        args, then = args[:cut], args[cut + 1 :]
        printed = run_cli(*args, cwd=tmp_path).stdout
        if then:
            assert then[0] == "cat", then
            printed += (tmp_path / then[1]).read_text()
        assert timeless(printed) == timeless(shown), args


@pytest.mark.slow
def test_the_query_examples_print_what_the_readme_shows(tmp_path):
    env = {**os.environ, "QSEARCH_INDEX": str(tmp_path / "index")}
    assert "indexed 64942 unique questions" in run_cli("build-index", env=env).stdout
    examples = [(args, shown) for args, shown in transcripts("qsearch query ") if "--index" not in args]
    assert len(examples) >= 3  # those with --index belong to their sections' own indexes (a repaired one, a missing one)
    for args, shown in examples:
        assert rounded(run_cli(*args, env=env).stdout) == rounded(shown), args
