"""`qsearch backup`: a consistent copy of an index taken while it serves, usable as an index
folder wherever it is moved, and never a half-written one."""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from conftest import as_unprivileged, readonly_copy, run_cli
from qsearch import SearchEngine

WRITER = """
import sys
import tempfile
from pathlib import Path
from qsearch import SearchEngine
engine = SearchEngine.open(sys.argv[1])
n = 0
while True:
    text = f"Question number {n} added during a backup?"
    engine.add([text])
    print(text, flush=True)
    n += 1
"""


@pytest.fixture(params=["faiss", "milvus"])
def backend(request) -> str:
    if request.param == "milvus":
        pytest.importorskip("milvus_lite", reason="the Milvus backend needs pip install 'qsearch[milvus]'")
    return request.param


def test_a_backup_moved_anywhere_holds_what_the_index_held(backend, tmp_path, corpus_questions):
    engine = SearchEngine.build(corpus_questions[:150], path=tmp_path / "idx", backend=backend)
    added = "Is this question kept by the backup?"
    try:
        engine.add([added])
        engine.remove([corpus_questions[0]])
        facts = engine.backup(tmp_path / "backup")
        held = set(engine.backend.all_texts())
    finally:
        engine.close()
    assert facts["questions"] == len(held) == len(set(corpus_questions[:150]))
    shutil.move(tmp_path / "backup", tmp_path / "elsewhere")  # the copy names nothing outside itself
    copy = SearchEngine.open(tmp_path / "elsewhere")
    try:
        assert set(copy.backend.all_texts()) == held and corpus_questions[0] not in held
        assert copy.search([added], k=1)[0][0].text == added
    finally:
        copy.close()


def test_a_backup_taken_while_another_process_adds_holds_every_add_acknowledged_before_it(tmp_path, corpus_questions):
    SearchEngine.build(corpus_questions[:150], path=tmp_path / "idx").close()
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path / "idx")], stdout=subprocess.PIPE, text=True)
    try:
        acknowledged = [writer.stdout.readline().rstrip("\n") for _ in range(20)]
        engine = SearchEngine.open(tmp_path / "idx")
        try:
            engine.backup(tmp_path / "backup")
        finally:
            engine.close()
        more = writer.stdout.readline()
        assert more  # the writer was still adding after the backup
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait(timeout=30)
    copy = SearchEngine.open(tmp_path / "backup")
    try:
        assert set(copy.ids_of(acknowledged)) == set(acknowledged)
        assert len(copy) == len(set(copy.backend.all_texts()))
    finally:
        copy.close()


def test_a_backup_into_a_folder_that_holds_files_is_refused_in_one_line(tmp_path, corpus_questions):
    SearchEngine.build(corpus_questions[:50], path=tmp_path / "idx").close()
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    result = run_cli("backup", str(tmp_path / "taken"), "--index", str(tmp_path / "idx"), check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip() == f"error: {tmp_path / 'taken'} exists and is not an empty folder; back up into a new one"
    assert [p.name for p in (tmp_path / "taken").iterdir()] == ["notes.txt"]


def test_the_command_line_says_where_the_copy_is_and_how_to_use_it(tmp_path, corpus_questions):
    SearchEngine.build(corpus_questions[:50], path=tmp_path / "idx").close()
    out = run_cli("backup", str(tmp_path / "b"), "--index", str(tmp_path / "idx")).stdout
    assert out.startswith(f"backed up {len(set(corpus_questions[:50]))} questions from {tmp_path / 'idx'} into {tmp_path / 'b'} (")
    assert out.rstrip().endswith(f"search it with --index {tmp_path / 'b'}")
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no partial copy left beside it


def test_a_backup_that_cannot_be_written_says_why_not_that_the_disk_is_full(tmp_path, corpus_questions):
    if not Path("/proc/self").is_dir():
        pytest.skip("needs /proc, a file system that reports no free space")
    SearchEngine.build(corpus_questions[:50], path=tmp_path / "idx").close()
    result = run_cli("backup", "/proc/qsearch-backup", "--index", str(tmp_path / "idx"), check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip() == "error: cannot write the backup into /proc/qsearch-backup: No such file or directory"


def test_what_a_killed_backup_left_is_cleared_by_the_next_one_to_that_name(tmp_path, corpus_questions):
    SearchEngine.build(corpus_questions[:50], path=tmp_path / "idx").close()
    left = tmp_path / ".b.partial-999999"  # the hidden folder of a backup killed before its rename
    (left / "g00001").mkdir(parents=True)
    run_cli("backup", str(tmp_path / "b"), "--index", str(tmp_path / "idx"))
    assert not left.exists() and (tmp_path / "b" / "CURRENT").exists()


def test_an_index_only_readable_to_its_user_is_backed_up_by_that_user(tmp_path, corpus_questions):
    SearchEngine.build(corpus_questions[:50], path=tmp_path / "idx").close()
    copy = readonly_copy(tmp_path / "idx")
    out = Path(tempfile.mkdtemp(prefix="qsearch-backup-"))
    out.chmod(0o777)
    try:
        result = subprocess.run(as_unprivileged([sys.executable, "-m", "qsearch.cli", "backup", str(out / "b"), "--index", str(copy)]),
                                capture_output=True, text=True, env={**os.environ, "HOME": "/tmp"}, timeout=120)
        assert result.returncode == 0, result.stderr
        backup = SearchEngine.open(out / "b")
        try:
            assert set(backup.backend.all_texts()) == set(corpus_questions[:50])
        finally:
            backup.close()
    finally:
        for path in [copy.parent, *copy.parent.rglob("*")]:
            path.chmod(0o755)
        shutil.rmtree(copy.parent)
        shutil.rmtree(out)


def test_a_backup_name_too_long_for_the_file_system_is_one_line(tmp_path, corpus_questions):
    SearchEngine.build(corpus_questions[:50], path=tmp_path / "idx").close()
    result = run_cli("backup", str(tmp_path / ("x" * 300)), "--index", str(tmp_path / "idx"), check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith("error: cannot write the backup into ") and result.stderr.rstrip().endswith("File name too long")
