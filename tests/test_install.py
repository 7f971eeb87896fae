"""A wheel install, as a user gets it from `pip install .`: bundled data inside, indexes outside site-packages."""

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from conftest import project_version

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_a_wheel_installed_in_a_fresh_venv_builds_and_queries_from_another_directory(tmp_path):
    source = tmp_path / "src"  # a clean copy: an in-tree build/ folder could carry stale files into the wheel
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".*", "indexes", "build", "dist", "*.egg-info", "__pycache__", "runs"))
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", str(source), "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "dist")],
        check=True, capture_output=True, timeout=300,
    )
    [wheel] = (tmp_path / "dist").glob("qsearch-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    site = Path(subprocess.run(
        [venv / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True,
    ).stdout.strip())
    # the dependencies come from this environment (no download); qsearch itself only from the wheel
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "-q", "--no-deps",
                    "--no-index", str(wheel)], check=True, capture_output=True, timeout=300)
    elsewhere, home = tmp_path / "elsewhere", tmp_path / "home"
    elsewhere.mkdir()
    env = {**{k: v for k, v in os.environ.items() if k not in ("QSEARCH_INDEX", "PYTHONPATH", "XDG_DATA_HOME")},
           "HOME": str(home), "OMP_NUM_THREADS": "1"}

    def qsearch(*args: str) -> str:
        done = subprocess.run([venv / "bin" / "qsearch", *args], cwd=elsewhere, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr
        return done.stdout

    where = subprocess.run([venv / "bin" / "python", "-c", "import qsearch; print(qsearch.__file__)"],
                           cwd=elsewhere, env=env, capture_output=True, text=True, check=True).stdout
    assert where.startswith(str(site)), where
    assert qsearch("--version") == f"qsearch {project_version()}\n"
    assert "indexed 64942 unique questions" in qsearch("build-index")
    index = home / ".local" / "share" / "qsearch" / "indexes" / "default"
    assert (index / "CURRENT").is_file()
    assert "How can I learn Python" in qsearch("query", "How do I learn Python quickly?", "-k", "3")
    assert not list(site.rglob("indexes")) and not list(elsewhere.iterdir())
    env["QSEARCH_INDEX"] = str(tmp_path / "chosen")
    few = tmp_path / "few.csv"
    few.write_text("question\n" + "".join(f"How do I learn language number {n}?\n" for n in range(20)))
    assert "indexed 20 unique questions" in qsearch("build-index", "--questions", str(few))
    assert (tmp_path / "chosen" / "CURRENT").is_file()
