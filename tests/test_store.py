"""The store on its own: identity by hash, one transaction per call, findings and rubric tables,
supersession of a changed file, failures, reviews. Results here are hand-written JSON in the
documented shape (with the ``findings`` and ``rubric`` fields still to come in the analysis)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from qa_audio.batch.store import FileKey, ReviewsRefused, Store, StoreError, hash_file, min_confidence


def result(duration: float = 30.0, findings: list | None = None, rubric: dict | None = None) -> dict:
    out = {"schema_version": "1.0", "audio": {"path": "x.wav", "duration": duration, "channels": 1},
           "roles": {"confidence": 0.9}, "turns": [{"text": "您好"}]}
    if findings is not None:
        out["findings"] = findings
    if rubric is not None:
        out["rubric"] = rubric
    return out


def key(tmp_path: Path, name: str, content: bytes) -> FileKey:
    path = tmp_path / name
    path.write_bytes(content)
    return hash_file(path)


def test_hash_is_content_identity(tmp_path):
    a = key(tmp_path, "a.wav", b"RIFF1234")
    b = key(tmp_path, "b.wav", b"RIFF1234")
    c = key(tmp_path, "c.wav", b"RIFF1235")
    assert a.call_id == b.call_id != c.call_id
    assert len(a.call_id) == 64 and a.size == 8
    missing = hash_file(tmp_path / "nope.wav")
    assert missing.call_id is None and "cannot stat" in missing.error
    assert missing.failure_key.startswith(str(tmp_path / "nope.wav"))


def test_a_call_is_stored_once_with_its_findings_and_rubric(tmp_path):
    store = Store(tmp_path / "qa.db")
    k = key(tmp_path, "a.wav", b"one")
    findings = [{"rule": "forbidden_phrase", "role": "agent", "start": 1.0, "end": 2.0, "severity": "0-2"},
                {"rule": "greeting", "role": "agent", "start": 0.0, "end": 3.0, "level": 1}]
    rubric = {"items": [{"id": "7b", "name": "化解冲突能力", "points": 15, "score": 2, "confidence": 0.4,
                         "status": "auto", "evidence": []}],
              "total": 55, "max_total": 100, "flags": ["fatal"], "problems": [], "suggestions": []}
    assert store.add_result(k, result(findings=findings, rubric=rubric), run_id=None)
    assert not store.add_result(k, result(), run_id=None), "a second insert of the same hash is refused"
    call = store.calls()[0]
    assert (call["total"], call["max_total"], json.loads(call["flags"])) == (55, 100, ["fatal"])
    assert call["min_confidence"] == 0.4 and call["status"] == "pending_review"
    assert store.finding_counts() == {k.call_id: {"forbidden_phrase": 1, "greeting": 1}}
    assert store.fatal_findings() == {k.call_id}
    assert [r["item_id"] for r in store.rubric_items()[k.call_id]] == ["7b"]
    assert json.loads(call["result_json"])["rubric"]["total"] == 55


def test_a_result_without_findings_or_rubric_is_stored(tmp_path):
    store = Store(tmp_path / "qa.db")
    k = key(tmp_path, "a.wav", b"one")
    store.add_result(k, result())
    call = store.calls()[0]
    assert call["total"] is None and json.loads(call["flags"]) == [] and call["min_confidence"] == 0.9
    assert store.finding_counts() == {}


def test_a_failed_transaction_leaves_nothing(tmp_path):
    store = Store(tmp_path / "qa.db")
    k = key(tmp_path, "a.wav", b"one")
    bad = result(findings=[{"rule": "x", "start": object()}])  # not JSON-serialisable: fails mid-transaction
    with pytest.raises(TypeError):
        store.add_result(k, bad)
    assert store.calls() == [] and store.conn.execute("SELECT COUNT(*) FROM paths").fetchone()[0] == 0


def test_a_changed_file_supersedes_the_old_call(tmp_path):
    store = Store(tmp_path / "qa.db")
    old = key(tmp_path, "a.wav", b"old bytes")
    store.add_result(old, result())
    new = key(tmp_path, "a.wav", b"new bytes")
    store.add_result(new, result())
    assert [c["call_id"] for c in store.calls()] == [new.call_id]
    everything = {c["call_id"]: c["superseded_by"] for c in store.calls(include_superseded=True)}
    assert everything == {old.call_id: new.call_id, new.call_id: None}


def test_failures_count_attempts_and_clear_on_success(tmp_path):
    store = Store(tmp_path / "qa.db")
    k = key(tmp_path, "a.wav", b"x")
    store.add_failure(k, "a.wav: empty", "bad_input")
    store.add_failure(k, "a.wav: still empty", "bad_input")
    row = store.failure(k.failure_key)
    assert row["attempts"] == 2 and row["error"] == "a.wav: still empty"
    store.add_result(k, result())
    assert store.failure(k.failure_key) is None


def test_reviews_mark_calls_reviewed_and_refuse_or_skip_unknown_ids(tmp_path):
    store = Store(tmp_path / "qa.db")
    k = key(tmp_path, "a.wav", b"x")
    store.add_result(k, result(rubric={"items": [{"id": "1b", "points": 2, "score": 1,
                                                  "bands": [[0, 0], [1, 1], [2, 2]]}]}))
    rows = [
        {"call_id": k.call_id, "item_id": "1b", "inspector_score": 2, "inspector": "李", "reviewed_at": "2026-01-01"},
        {"call_id": "f" * 64, "item_id": "1b", "inspector_score": 1},
    ]
    with pytest.raises(ReviewsRefused, match="row 2: call ffffffffffff… is not in the store"):
        store.add_reviews(rows)  # all or nothing
    assert store.calls()[0]["status"] == "pending_review"
    assert store.conn.execute("SELECT COUNT(*) FROM reviews").fetchone()[0] == 0
    stored, skipped = store.add_reviews(rows, skip_bad=True)
    assert (stored, skipped) == (1, ["row 2: call ffffffffffff… is not in the store"])
    assert store.calls()[0]["status"] == "reviewed"


def test_not_a_database(tmp_path):
    path = tmp_path / "qa.db"
    path.write_text("this is not sqlite, " * 100)
    with pytest.raises(StoreError, match="not a qa-audio store"):
        Store(path)


def test_wal_and_integrity(tmp_path):
    store = Store(tmp_path / "qa.db")
    assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.integrity_check() == "ok"
    with pytest.raises(sqlite3.IntegrityError):
        store.conn.execute("INSERT INTO calls (call_id, path, size, analysed_at, status, result_json) "
                           "VALUES ('a', 'p', 0, 'now', 'bogus', '{}')")


def test_min_confidence_takes_the_lowest_decided_value():
    assert min_confidence({"roles": {"confidence": 0.7},
                           "rubric": {"items": [{"confidence": 0.9, "status": "auto"},
                                                {"confidence": 0.3, "status": "auto"}]}}) == 0.3
    # a suggested item is a lean for the inspector, not a decision: it does not queue the call
    assert min_confidence({"roles": {"confidence": 0.7},
                           "rubric": {"items": [{"confidence": 0.9, "status": "auto"},
                                                {"confidence": 0.3, "status": "suggested"}]}}) == 0.7
    assert min_confidence({}) is None
