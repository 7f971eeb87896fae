"""A full disk: every command says so in one line, the index stays as it was, searches go on,
and nothing acknowledged is lost. The disk is real: a 48 MiB tmpfs mounted for each test and
filled to its last byte, so these tests need root (CI runs as root) and skip elsewhere."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from conftest import run_cli
from qsearch import SearchEngine
from qsearch.errors import DiskFull
from qsearch.server import create_app


@pytest.fixture()
def disk(tmp_path):
    """A small real file system of its own, unmounted after the test."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("mounting a small file system to fill needs root")
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48m", "tmpfs", str(mount)], capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a small file system here: {made.stderr.strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(disk: Path, leave: int = 0) -> Path:
    """Take every free byte of ``disk`` (then give back ``leave`` bytes); returns the filler to delete."""
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as f:
        for chunk in (1 << 20, 1 << 12, 1):
            try:
                while True:
                    f.write(b"\0" * chunk)
            except OSError:
                pass
    if leave:
        os.truncate(filler, max(filler.stat().st_size - leave, 0))
    return filler


@pytest.fixture()
def index(disk, corpus_questions) -> Path:
    SearchEngine.build(corpus_questions[:150], path=disk / "idx").close()
    return disk / "idx"


def one_line_error(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.stderr
    return lines[0]


def stored(index: Path) -> list[str]:
    engine = SearchEngine.open(index)
    try:
        return engine.backend.all_texts()
    finally:
        engine.close()


def test_an_add_on_a_full_disk_is_refused_in_one_line_while_searches_go_on(index):
    run_cli("add", "Is this question added before the disk filled?", "--index", str(index))
    filler = fill(index.parent)

    refused = one_line_error(run_cli("add", "Is this one added after?", "--index", str(index), check=False))
    assert "full" in refused and "free some space" in refused
    found = run_cli("query", "Is this question added before the disk filled?", "--index", str(index), "-k", "1", "--json")
    assert json.loads(found.stdout)[0]["matches"][0]["text"] == "Is this question added before the disk filled?"

    filler.unlink()
    run_cli("add", "Is this one added after?", "--index", str(index))
    texts = stored(index)
    assert len(texts) == 152
    assert {"Is this question added before the disk filled?", "Is this one added after?"} <= set(texts)


def test_a_rebuild_that_does_not_fit_leaves_the_index_as_it_was(index, corpus_questions):
    questions = index.parent / "questions.txt"
    questions.write_text("\n".join(corpus_questions[:300]) + "\n")
    filler = fill(index.parent, leave=5 << 20)  # a generation with its model copy takes about 21 MB

    refused = one_line_error(run_cli("build-index", "--questions", str(questions), "--index", str(index), check=False))
    assert f"the index at {index} is unchanged" in refused
    assert sorted(p.name for p in index.glob("g*")) == ["g00001"]  # the half-written generation gave its space back
    assert len(stored(index)) == 150

    filler.unlink()
    run_cli("build-index", "--questions", str(questions), "--index", str(index))
    assert len(stored(index)) == 300


def test_a_server_answers_507_on_a_full_disk_and_keeps_what_it_acknowledged(index):
    engine = SearchEngine.open(index)
    client = TestClient(create_app(engine))
    assert client.post("/add", json={"questions": ["Which question came before the disk filled?"]}).status_code == 200
    filler = fill(index.parent)

    full = client.post("/add", json={"questions": ["Which question came after it filled?"]})
    assert full.status_code == 507 and "free some space" in full.json()["error"]
    search = client.post("/search", json={"query": "Which question came before the disk filled?", "k": 1})
    assert search.status_code == 200 and search.json()["matches"][0]["text"] == "Which question came before the disk filled?"

    filler.unlink()
    assert client.post("/add", json={"questions": ["Which question came after it filled?"]}).status_code == 200
    engine.close()
    assert {"Which question came before the disk filled?", "Which question came after it filled?"} <= set(stored(index))
    assert len(stored(index)) == 152


def test_training_on_a_full_disk_stops_in_one_line_and_leaves_its_folder_usable(disk, pairs_slice):
    out = disk / "model"
    args = ["train", "--data", str(pairs_slice), "--out", str(out), "--epochs", "1", "--dim", "16", "--embed-dim", "16",
            "--batch-size", "64", "--teacher", "none", "--threads", "1"]
    filler = fill(disk)

    refused = one_line_error(run_cli(*args, check=False))
    assert "ran out of space" in refused and "--resume" in refused
    assert not any(out.glob("*.tmp"))  # no half-written checkpoint left taking the space

    filler.unlink()
    run_cli(*args)
    assert (out / "model.json").is_file()


def test_a_dedup_file_that_does_not_fit_is_not_left_cut_off(disk, corpus_questions, tmp_path):
    questions = tmp_path / "questions.txt"
    questions.write_text("\n".join(corpus_questions[:100]) + "\n")
    fill(disk)
    refused = one_line_error(run_cli("dedup", str(questions), "--out", str(disk / "clusters.csv"), check=False))
    assert "No space left" in refused
    assert not (disk / "clusters.csv").exists()


def test_a_milvus_lite_add_on_a_full_disk_is_one_line_and_keeps_what_was_there(disk, corpus_questions):
    pytest.importorskip("milvus_lite")
    index = disk / "mv"
    SearchEngine.build(corpus_questions[:150], path=index, backend="milvus").close()
    filler = fill(disk)

    refused = one_line_error(run_cli("add", "Is this added while the disk is full?", "--index", str(index), check=False))
    assert "No space left" in refused and "Traceback" not in refused

    filler.unlink()
    run_cli("add", "Is this added while the disk is full?", "--index", str(index))
    assert len(stored(index)) == 151


def test_a_milvus_lite_rebuild_that_does_not_fit_keeps_every_question(disk, corpus_questions):
    pytest.importorskip("milvus_lite")
    index = disk / "mv"
    engine = SearchEngine.build(corpus_questions[:150], path=index, backend="milvus")
    engine.add(["Is this kept through a rebuild on a full disk?"])
    engine.close()
    filler = fill(disk)

    with pytest.raises(DiskFull, match="is unchanged; free some space"):
        SearchEngine.build(corpus_questions[:150], path=index, backend="milvus")
    assert len(stored(index)) == 151

    filler.unlink()
    rebuilt = SearchEngine.build(corpus_questions[:150], path=index, backend="milvus")
    try:
        assert len(rebuilt) == 151
    finally:
        rebuilt.close()


def test_a_first_milvus_lite_removal_on_a_full_disk_works_once_space_is_freed(disk, corpus_questions):
    pytest.importorskip("milvus_lite")
    index = disk / "mv"
    SearchEngine.build(corpus_questions[:150], path=index, backend="milvus").close()
    filler = fill(disk)

    refused = one_line_error(run_cli("remove", corpus_questions[0], "--index", str(index), check=False))
    assert "No space left" in refused

    filler.unlink()
    run_cli("remove", corpus_questions[0], "--index", str(index))
    assert corpus_questions[0] not in stored(index) and len(stored(index)) == 149


def test_a_backup_that_does_not_fit_leaves_nothing_on_that_disk(disk, tmp_path, corpus_questions):
    SearchEngine.build(corpus_questions[:150], path=tmp_path / "idx").close()
    filler = fill(disk, leave=1 << 20)  # room for some of the copy, not for the model beside it

    refused = one_line_error(run_cli("backup", str(disk / "backup"), "--index", str(tmp_path / "idx"), check=False))
    assert "ran out of space" in refused and "no backup was written" in refused
    assert sorted(p.name for p in disk.iterdir()) == ["filler"]

    filler.unlink()
    run_cli("backup", str(disk / "backup"), "--index", str(tmp_path / "idx"))
    assert len(stored(disk / "backup")) == len(set(corpus_questions[:150]))
