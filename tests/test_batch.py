"""The nightly batch end to end, on real models and real audio: a run over a few short sample calls
and bad files is SIGKILLed three times after a commit, then finishes; nothing is lost or doubled.

The module's one expensive fixture (`resumed`) is that run; the other tests read its database or
rerun over it without new audio to analyse (no workers are started then).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile

from qa_audio.batch.export import ExportOptions, export_rows, read_reviews, write_rows
from qa_audio.batch.run import BatchOptions, discover, run_batch
from qa_audio.batch.store import Store
from tests.helpers import ROOT, SAMPLE_CALLS

pytestmark = pytest.mark.slow  # whole batch runs of real calls through the real models

GOOD = ["call03_minimal_script.wav", "call09_talkover_stereo.wav", "call02_partial_script.wav"]
BAD = {  # file -> (failure kind, words the reason must contain)
    "empty.wav": ("bad_input", "empty file"),
    "notes.wav": ("bad_input", "not a recognised audio file"),
    "cut/truncated.wav": ("bad_input", "truncated WAV"),
    "silent.flac": ("bad_input", "all silent"),
    "huge.wav": ("too_long", "over --max-duration"),
}
KILLS = 3
RUN_TIMEOUT = 300


def make_archive(root: Path) -> Path:
    archive = root / "archive"
    (archive / "day1").mkdir(parents=True)
    (archive / "cut").mkdir()
    for i, name in enumerate(GOOD):
        shutil.copy(SAMPLE_CALLS / name, archive / ("day1" if i else "") / name)
    (archive / "empty.wav").write_bytes(b"")
    (archive / "notes.wav").write_text("not audio at all\n", encoding="utf-8")
    (archive / "README.txt").write_text("ignored: not an audio extension\n", encoding="utf-8")
    data = (SAMPLE_CALLS / "call10_fast_greeting.wav").read_bytes()
    (archive / "cut" / "truncated.wav").write_bytes(data[: len(data) // 5])
    soundfile.write(archive / "silent.flac", np.zeros(8000 * 5, dtype=np.float32), 8000)
    write_huge_wav(archive / "huge.wav", hours=5.0)
    return archive


def write_huge_wav(path: Path, hours: float, rate: int = 8000) -> None:
    """A 5-hour 16-bit WAV as a sparse file: a real header over zeros, no disk used."""
    data_bytes = int(hours * 3600 * rate) * 2
    header = b"RIFF" + struct.pack("<I", 36 + data_bytes) + b"WAVEfmt " + struct.pack(
        "<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16) + b"data" + struct.pack("<I", data_bytes)
    with path.open("wb") as handle:
        handle.write(header)
        handle.truncate(len(header) + data_bytes)


def count_calls(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            return conn.execute("SELECT COUNT(*) FROM calls").fetchone()[0]
    except sqlite3.Error:
        return 0  # the schema is not there yet


def start_batch(archive: Path, db: Path, log: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "qa_audio.cli.batch", "batch", str(archive), "--db", str(db), "--workers", "2",
         "--quiet"], cwd=archive.parent, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT,
        start_new_session=True)  # its own process group: the kill takes the workers too


@pytest.fixture(scope="module")
def resumed(tmp_path_factory):
    root = tmp_path_factory.mktemp("batch")
    archive = make_archive(root)
    db = root / "qa.db"
    log = root / "batch.log"
    commits_at_kill = []
    for _ in range(KILLS):
        before = count_calls(db)
        process = start_batch(archive, db, log)
        deadline = time.monotonic() + RUN_TIMEOUT
        while count_calls(db) <= before and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
        commits_at_kill.append((count_calls(db), process.returncode))
    process = start_batch(archive, db, log)
    assert process.wait(timeout=RUN_TIMEOUT) == 0, log.read_text(errors="replace")[-3000:]
    return {"archive": archive, "db": db, "root": root, "kills": commits_at_kill, "log": log}


def test_killed_three_times_then_finished_has_every_call_once(resumed):
    kills = resumed["kills"]
    assert all(code in (-signal.SIGKILL, 0) for _, code in kills), kills
    assert kills[0][0] >= 1, "the first kill came after a committed call"
    with sqlite3.connect(resumed["db"]) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        rows = conn.execute("SELECT path, status, COUNT(*) FROM calls GROUP BY call_id").fetchall()
        assert sorted(Path(p).name for p, _, _ in rows) == sorted(GOOD)
        assert {status for _, status, _ in rows} == {"pending_review"}
        assert all(n == 1 for _, _, n in rows)
        runs = conn.execute("SELECT COUNT(*), SUM(finished_at IS NOT NULL) FROM runs").fetchone()
    # a run that found nothing left to do (two workers can commit the last calls together) ends by
    # itself before the kill: its row is finished too
    ended_alone = sum(1 for _, code in kills if code == 0)
    assert runs == (KILLS + 1, 1 + ended_alone), "every killed run left an unfinished run row"
    store = Store(resumed["db"])
    for call in store.calls():
        result = json.loads(call["result_json"])
        assert result["turns"], f"{call['path']}: no turns"
        assert result["audio"]["duration"] == pytest.approx(call["duration"])


def test_each_bad_file_is_failed_once_with_its_reason(resumed):
    store = Store(resumed["db"])
    failures = {Path(f["path"]).relative_to(resumed["archive"]).as_posix(): f for f in store.failures()}
    assert set(failures) == set(BAD)
    for name, (kind, words) in BAD.items():
        assert failures[name]["kind"] == kind, name
        assert words in failures[name]["error"], failures[name]["error"]
        assert failures[name]["error"].count("\n") == 0
    # killed runs may have recorded a bad file already; it is then skipped, never recorded twice
    assert all(f["attempts"] == 1 for f in failures.values())


def test_rerun_redoes_nothing_and_a_renamed_copy_is_known(resumed, tmp_path):
    archive = resumed["archive"]
    shutil.copy(archive / GOOD[0], archive / "day1" / "renamed.wav")
    store = Store(resumed["db"])
    summary = run_batch([archive], store, BatchOptions(workers=2))
    assert summary.done == 0 and summary.failed == 0
    assert summary.skipped_done == len(GOOD) + 1
    assert summary.skipped_failed == len(BAD)
    paths = store.conn.execute("SELECT path FROM paths WHERE call_id=(SELECT call_id FROM paths WHERE path LIKE "
                               "'%renamed.wav')").fetchall()
    assert sorted(Path(p[0]).name for p in paths) == sorted([GOOD[0], "renamed.wav"])
    assert store.conn.execute("SELECT COUNT(*) FROM calls").fetchone()[0] == len(GOOD)


def test_retry_failed_tries_again(resumed):
    archive = resumed["archive"]
    store = Store(resumed["db"])
    summary = run_batch([archive / "huge.wav"], store, BatchOptions(retry_failed=True))
    assert summary.failed == 1 and "over --max-duration" in summary.failures[0][1]
    assert store.failure(store.failures()[-1]["failure_key"])["attempts"] == 2


def test_list_file_and_extensions(resumed, tmp_path):
    archive = resumed["archive"]
    listing = tmp_path / "tonight.txt"
    listing.write_text(f"# tonight\n{archive / GOOD[0]}\n{archive / 'day1' / GOOD[1]}\n", encoding="utf-8")
    assert [p.name for p in discover([listing])] == GOOD[:2]
    found = {p.name for p in discover([archive])}
    assert "README.txt" not in found and {"silent.flac", "huge.wav", *GOOD} <= found


def test_export_of_real_results_is_ordered_and_complete(resumed, tmp_path):
    store = Store(resumed["db"])
    rows = export_rows(store, ExportOptions(sample=len(GOOD), seed=7))
    assert sorted(Path(r["path"]).name for r in rows) == sorted(GOOD)
    reasons = [r["review_reason"] for r in rows]
    order = ["fatal", "low_confidence", "low_total", "random_sample"]
    assert reasons == sorted(reasons, key=order.index)
    assert [r["review_priority"] for r in rows] == list(range(1, len(rows) + 1))
    # mono calls are diarized: their role confidence (< 1) is the lowest confidence there is today
    for row in rows:
        assert row["min_confidence"] is not None and 0 < row["min_confidence"] <= 1
    out = tmp_path / "queue.csv"
    with out.open("w", encoding="utf-8", newline="") as handle:
        write_rows(rows, handle, "csv")
    header = out.read_text(encoding="utf-8").splitlines()[0].split(",")
    assert header[:4] == ["review_priority", "review_reason", "call_id", "path"]
    assert len(out.read_text(encoding="utf-8").splitlines()) == len(rows) + 1
    sheet = tmp_path / "reviews.jsonl"
    sheet.write_text(json.dumps({"call_id": rows[0]["call_id"], "item_id": "7b", "inspector_score": 12,
                                 "inspector": "王芳", "reviewed_at": "2026-01-02"}) + "\n", encoding="utf-8")
    stored, unknown = store.add_reviews(read_reviews(sheet))
    assert (stored, unknown) == (1, [])
    assert export_rows(store, ExportOptions(status="reviewed"))[0]["call_id"] == rows[0]["call_id"]
    assert len(export_rows(store, ExportOptions(sample=len(GOOD)))) == len(GOOD) - 1
