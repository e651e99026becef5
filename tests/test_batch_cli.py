"""The commands through Typer: registered on the real app, exit codes, files written."""

from __future__ import annotations

import json

import typer
from typer.testing import CliRunner

from qa_audio.batch.store import FileKey, Store
from qa_audio.cli.batch import register


def app() -> typer.Typer:
    from qa_audio.cli.main import app as main_app

    fresh = typer.Typer()
    fresh.registered_commands = list(main_app.registered_commands)
    register(fresh)
    return fresh


def make_db(tmp_path) -> tuple:
    db = tmp_path / "qa.db"
    store = Store(db)
    ids = []
    for n, (score, flags) in enumerate([(2, ["fatal"]), (14, []), (12, [])]):
        call_id = f"{n}".ljust(64, "a")
        store.add_result(FileKey(f"/a/{n}.wav", 1, 0.0, call_id), {
            "audio": {"duration": 30.0, "channels": 2}, "roles": {"confidence": 1.0},
            "rubric": {"items": [{"id": "7b", "score": score, "confidence": 0.9}], "total": 80, "max_total": 100,
                       "flags": flags}})
        ids.append(call_id)
    store.close()
    return db, ids


def test_export_import_agreement_commands(tmp_path):
    db, ids = make_db(tmp_path)
    runner = CliRunner()
    out = tmp_path / "queue.jsonl"
    result = runner.invoke(app(), ["export", str(out), "--db", str(db), "--sample", "5", "--seed", "3"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert rows[0]["call_id"] == ids[0] and rows[0]["review_reason"] == "fatal" and len(rows) == 3
    csv_out = tmp_path / "queue.csv"
    assert runner.invoke(app(), ["export", str(csv_out), "--db", str(db)]).exit_code == 0
    assert csv_out.read_text(encoding="utf-8").startswith("review_priority,review_reason,call_id")
    sheet = tmp_path / "reviews.jsonl"
    sheet.write_text("".join(json.dumps({"call_id": cid, "item_id": "7b", "inspector_score": s}) + "\n"
                             for cid, s in zip(ids, [2, 13, 5], strict=True)), encoding="utf-8")
    result = runner.invoke(app(), ["import-reviews", str(sheet), "--db", str(db)])
    assert result.exit_code == 0 and "imported 3" in result.output
    result = runner.invoke(app(), ["agreement", "--db", str(db), "--json"])
    report = json.loads(result.output)
    assert report["calls"] == 3 and report["items"][0]["exact"] == round(1 / 3, 4)
    result = runner.invoke(app(), ["export", str(out), "--db", str(db)])
    assert result.exit_code == 0 and out.read_text(encoding="utf-8") == ""  # all reviewed now


def test_exit_codes(tmp_path):
    runner = CliRunner()
    assert runner.invoke(app(), ["batch", str(tmp_path / "missing"), "--db", str(tmp_path / "q.db")]).exit_code == 2
    assert runner.invoke(app(), ["export", str(tmp_path / "o.csv"), "--db", str(tmp_path / "none.db")]).exit_code == 3
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{nope\n", encoding="utf-8")
    db, _ = make_db(tmp_path)
    assert runner.invoke(app(), ["import-reviews", str(bad), "--db", str(db)]).exit_code == 2
    assert runner.invoke(app(), ["export", "o.csv", "--db", str(db), "--since", "soon"]).exit_code == 2


def test_a_worker_that_cannot_start_stops_the_batch_without_failing_files(tmp_path):
    import shutil

    from tests.helpers import SAMPLE_CALLS

    archive = tmp_path / "archive"
    archive.mkdir()
    shutil.copy(SAMPLE_CALLS / "call03_minimal_script.wav", archive)
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "roles.yaml").write_text("cues: 5\n", encoding="utf-8")
    db = tmp_path / "q.db"
    result = CliRunner().invoke(app(), ["batch", str(archive), "--db", str(db), "--workers", "1", "-q",
                                        "--rules", str(rules)])
    assert result.exit_code == 3, result.output
    assert "roles.yaml" in result.output
    store = Store(db)
    assert store.counts() == {"calls": 0, "failures": 0, "reviewed": 0}
