"""What a hostile user can do to the store through the batch commands, and what they now refuse:
an export over the store itself, formula cells in the CSV, impossible reviews, reading commands
writing into (or refusing to read) a database."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import sqlite3
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from qa_audio.batch.export import FORMULA_STARTS, ExportOptions, export_rows, write_rows
from qa_audio.batch.store import STORE_VERSION, FileKey, ReviewsRefused, Store, StoreError
from qa_audio.cli.main import app

BANDS_7B = [[0, 2], [3, 5], [6, 8], [9, 12], [13, 15]]
CALL = "c" * 64


def run(*args: str):
    return CliRunner().invoke(app, [str(a) for a in args])


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tables(path: Path) -> set[str]:
    conn = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True)
    try:
        return {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    finally:
        conn.close()


def make_store(tmp_path: Path, name: str = "v.db") -> Path:
    """A store with one pending call scored on 7b (15 points) and 1b (2 points)."""
    db = tmp_path / name
    with Store(db) as store:
        store.add_result(FileKey("/archive/a.wav", 10, 0.0, CALL), {
            "audio": {"duration": 60.0, "channels": 2}, "roles": {"confidence": 1.0},
            "rubric": {"items": [
                {"id": "7b", "points": 15, "score": 13, "confidence": 0.9, "status": "auto", "bands": BANDS_7B},
                {"id": "1b", "points": 2, "score": 2, "confidence": 0.9, "status": "auto",
                 "bands": [[0, 0], [1, 1], [2, 2]]}],
                "total": 80, "max_total": 100, "flags": []}})
    return db


def error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("qa-audio: error:")]


# ------------------------------------------------------------------------------ 1. export over the store


def test_export_refuses_to_overwrite_its_own_store(tmp_path):
    db = make_store(tmp_path)
    before = digest(db)
    result = run("export", db, "--db", db, "--all")
    assert result.exit_code == 3, result.output
    assert len(error_lines(result.output)) == 1 and str(db) in result.output
    assert digest(db) == before
    with Store(db) as store:
        assert store.integrity_check() == "ok" and len(store.calls()) == 1


@pytest.mark.parametrize("how", ["symlink", "hardlink", "relative", "wal", "shm"])
def test_export_refuses_every_other_name_of_the_store(tmp_path, how, monkeypatch):
    db = make_store(tmp_path)
    before = digest(db)
    out = tmp_path / "queue.jsonl"
    if how == "symlink":
        out.symlink_to(db)
    elif how == "hardlink":
        os.link(db, out)
    elif how == "relative":
        (tmp_path / "sub").mkdir()
        monkeypatch.chdir(tmp_path / "sub")
        out = Path("..") / db.name
    else:
        out = Path(f"{db}-{how}")
    result = run("export", out, "--db", db, "--all")
    assert result.exit_code == 3, result.output
    assert len(error_lines(result.output)) == 1 and "store" in result.output
    assert digest(db) == before


def test_export_refuses_to_overwrite_any_sqlite_database(tmp_path):
    db = make_store(tmp_path)
    other = tmp_path / "crm.jsonl"  # an SQLite file whatever its name says
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE customers (name TEXT)")
    conn.commit()
    conn.close()
    before = digest(other)
    result = run("export", other, "--db", db, "--all")
    assert result.exit_code == 3 and "SQLite database" in result.output
    assert digest(other) == before
    plain = tmp_path / "old_queue.jsonl"  # an earlier export is overwritten as before
    plain.write_text("old\n", encoding="utf-8")
    assert run("export", plain, "--db", db, "--all").exit_code == 0
    assert json.loads(plain.read_text(encoding="utf-8").splitlines()[0])["call_id"] == CALL


# ------------------------------------------------------------------------------ 2. CSV formula injection

HOSTILE = ["=cmd|' /C calc'!A0.wav", "@SUM(1+1).wav", "+1+2.wav", "-x.wav", "\tTAB.wav", "\rCR.wav",
           "＝1+1.wav", "＋1.wav", "－1.wav", "＠SUM(1).wav"]


def test_csv_export_neutralises_formula_cells(tmp_path):
    store = Store(tmp_path / "qa.db")
    for n, name in enumerate(HOSTILE):
        store.add_result(FileKey(name, 1, 0.0, f"{n:02d}".ljust(64, "0")), {
            "audio": {"duration": 1.0, "channels": 1}, "roles": {"confidence": 0.9},
            "findings": [{"rule": "greeting", "level": -5}],
            "rubric": {"items": [{"id": "7b", "points": 15, "score": 3, "confidence": 0.9}], "total": -5,
                       "max_total": 100, "flags": ["=HYPERLINK(\"http://x\")", "needs_review"]}})
    rows = export_rows(store, ExportOptions(everything=True, sample=0))
    table = io.StringIO()
    write_rows(rows, table, "csv")
    parsed = list(csv.DictReader(io.StringIO(table.getvalue(), newline="")))
    assert sorted(r["path"] for r in parsed) == sorted("'" + name for name in HOSTILE)
    for record in parsed:
        assert record["flags"] == "'=HYPERLINK(\"http://x\");needs_review"
        assert record["total"] == "-5.0", "a number is a number, not text to neutralise"
        for cell in record.values():
            assert not cell.startswith(FORMULA_STARTS) or cell == "-5.0", cell
    text = io.StringIO()
    write_rows(rows, text, "jsonl")  # JSON Lines stays exact
    assert sorted(json.loads(line)["path"] for line in text.getvalue().splitlines()) == sorted(HOSTILE)


# ------------------------------------------------------------------------------ 3. impossible reviews


def bad_sheet(tmp_path: Path) -> Path:
    lines = [
        {"call_id": CALL, "item_id": "7b", "inspector_score": 12, "inspector": "王芳"},  # 1: good
        {"call_id": CALL, "item_id": "1b", "inspector_score": 999},  # 2: above its points
        {"call_id": CALL, "item_id": "1b", "inspector_score": -5},  # 3: below 0
        {"call_id": CALL, "item_id": "zz9", "inspector_score": 1},  # 4: no such item
        {"call_id": CALL, "item_id": "1b", "inspector_score": True},  # 5: a bool
        {"call_id": CALL, "item_id": "1b", "inspector_score": 1, "comment": "x"},  # 6: unknown key
        {"call_id": "f" * 64, "item_id": "1b", "inspector_score": 1},  # 7: unknown call
        {"call_id": CALL, "item_id": "7b", "inspector_score": 2.5},  # 8: between two bands
        {"call_id": CALL, "item_id": "7b", "inspector_score": 13},  # 9: 7b twice
        {"call_id": CALL, "item_id": "1b", "inspector_score": 1},  # 10: good
    ]
    sheet = tmp_path / "reviews.jsonl"
    sheet.write_text("".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines), encoding="utf-8")
    return sheet


BAD_LINES = {2: "above its 2 points", 3: "below 0", 4: "no rubric item 'zz9'", 5: "inspector_score true is not a",
             6: "unknown field(s) 'comment'", 7: "is not in the store", 8: "in none of its bands",
             9: "already scored at line 1"}


def reviews(db: Path) -> list[tuple]:
    with Store(db, read_only=True) as store:
        return [tuple(r) for r in store.conn.execute(
            "SELECT item_id, inspector_score FROM reviews ORDER BY item_id")]


def test_import_reviews_refuses_impossible_rows_and_stores_nothing(tmp_path):
    db = make_store(tmp_path)
    sheet = bad_sheet(tmp_path)
    result = run("import-reviews", sheet, "--db", db)
    assert result.exit_code == 2, result.output
    errors = error_lines(result.output)
    for line, reason in BAD_LINES.items():
        assert any(e.startswith(f"qa-audio: error: {sheet}:{line}: ") and reason in e for e in errors), (line, errors)
    assert not any(f"{sheet}:1:" in e or f"{sheet}:10:" in e for e in errors)
    assert "nothing imported" in errors[-1]
    assert reviews(db) == []
    with Store(db, read_only=True) as store:
        assert store.calls()[0]["status"] == "pending_review"


def test_import_reviews_skip_bad_stores_the_good_rows(tmp_path):
    db = make_store(tmp_path)
    sheet = bad_sheet(tmp_path)
    result = run("import-reviews", sheet, "--db", db, "--skip-bad")
    assert result.exit_code == 0, result.output
    assert "imported 2 score(s)" in result.output and f"skipped {len(BAD_LINES)} bad row(s)" in result.output
    for line in BAD_LINES:
        assert f"skipped {sheet}:{line}: " in result.stderr
    assert reviews(db) == [("1b", 1.0), ("7b", 12.0)]
    with Store(db, read_only=True) as store:
        assert store.calls()[0]["status"] == "reviewed"
    report = json.loads(run("agreement", "--db", db, "--json").stdout)
    by_item = {item["item_id"]: item for item in report["items"]}
    assert report["calls"] == 1 and by_item["7b"]["n"] == 1 and by_item["7b"]["exact"] == 0.0
    assert by_item["7b"]["within_one_band"] == 1.0  # 13 (13-15) against 12 (9-12): one band apart
    assert by_item["1b"]["n"] == 1 and by_item["1b"]["exact"] == 0.0


def test_csv_review_sheets_are_checked_too(tmp_path):
    db = make_store(tmp_path)
    sheet = tmp_path / "reviews.csv"
    sheet.write_text("call_id,item_id,inspector_score,comment\n" f"{CALL},7b,12,ok\n", encoding="utf-8")
    result = run("import-reviews", sheet, "--db", db, "--skip-bad")
    assert result.exit_code == 2 and f"{sheet}:1: unknown column(s) 'comment'" in result.output
    sheet.write_text("call_id,item_id,inspector_score\n"
                     f"{CALL},7b,12\n{CALL},1b,true\n{CALL},1b,1_0\n\n{CALL},7b,999\n{CALL},1b,1,extra\n",
                     encoding="utf-8")
    result = run("import-reviews", sheet, "--db", db)
    assert result.exit_code == 2
    errors = error_lines(result.output)
    assert [e.split(": ")[2].split(":")[1] for e in errors[:-1]] == ["3", "4", "6", "7"]
    assert "'true' is not a number" in errors[0] and "above its 15 points" in errors[2]
    assert reviews(db) == []


def test_the_store_api_checks_reviews_as_well(tmp_path):
    db = make_store(tmp_path)
    with Store(db) as store, pytest.raises(ReviewsRefused) as refused:
        store.add_reviews([{"call_id": CALL, "item_id": "7b", "inspector_score": 14},
                           {"call_id": CALL, "item_id": "7b", "inspector_score": float("nan")}])
    assert refused.value.problems == ["row 2: inspector_score must be finite"]
    assert reviews(db) == []


# ------------------------------------------------------------------------------ 4. reading and writing a database


def foreign_db(tmp_path: Path) -> Path:
    path = tmp_path / "crm.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
    conn.execute("CREATE TABLE calls (id INTEGER PRIMARY KEY, number TEXT)")  # a name qa-audio also uses
    conn.execute("INSERT INTO customers (name) VALUES ('张三')")
    conn.commit()
    conn.close()
    return path


def test_a_new_store_carries_the_qa_audio_marker(tmp_path):
    db = make_store(tmp_path)
    conn = sqlite3.connect(db)
    assert dict(conn.execute("SELECT key, value FROM meta")) == {"application": "qa-audio",
                                                                 "store_version": str(STORE_VERSION)}
    conn.close()


@pytest.mark.parametrize("command", ["export", "agreement", "import-reviews", "batch"])
def test_no_command_writes_into_another_applications_database(tmp_path, command):
    db = foreign_db(tmp_path)
    before = digest(db)
    listing = sorted(os.listdir(tmp_path))
    (tmp_path / "archive").mkdir()
    sheet = tmp_path / "s.jsonl"
    sheet.write_text(json.dumps({"call_id": CALL, "item_id": "7b", "inspector_score": 1}) + "\n", encoding="utf-8")
    args = {"export": ["export", tmp_path / "q.jsonl"], "agreement": ["agreement"],
            "import-reviews": ["import-reviews", sheet], "batch": ["batch", tmp_path / "archive", "-q"]}[command]
    result = run(*args, "--db", db)
    assert result.exit_code == 3, result.output
    assert error_lines(result.output) == [f"qa-audio: error: not a qa-audio store: {db} (an SQLite database "
                                          "without qa-audio's tables)"]
    assert digest(db) == before and tables(db) == {"customers", "calls"}
    assert sorted(os.listdir(tmp_path)) == sorted([*listing, "archive", "s.jsonl"])


@pytest.mark.parametrize("content", [b"", b"not a database at all " * 50])
def test_reading_commands_refuse_files_that_are_not_stores(tmp_path, content):
    db = tmp_path / "x.db"
    db.write_bytes(content)
    for args in (["export", tmp_path / "q.jsonl"], ["agreement"]):
        result = run(*args, "--db", db)
        assert result.exit_code == 3 and len(error_lines(result.output)) == 1
        assert f"not a qa-audio store: {db}" in result.output
    assert db.read_bytes() == content and not (tmp_path / "q.jsonl").exists()


def test_reading_commands_never_create_a_missing_database(tmp_path):
    for args in (["export", tmp_path / "q.jsonl"], ["agreement"]):
        result = run(*args, "--db", tmp_path / "none.db")
        assert result.exit_code == 3 and "no such database" in result.output
    assert sorted(os.listdir(tmp_path)) == []
    with pytest.raises(StoreError, match="no such database"):
        Store(tmp_path / "none.db", read_only=True)
    assert not (tmp_path / "none.db").exists()


def test_a_store_of_the_previous_version_is_accepted_and_marked(tmp_path):
    db = make_store(tmp_path)
    conn = sqlite3.connect(db)
    conn.execute("DELETE FROM meta WHERE key='application'")  # as the previous qa-audio left it
    conn.commit()
    conn.close()
    before = digest(db)
    assert run("export", tmp_path / "q.jsonl", "--db", db, "--all").exit_code == 0
    assert run("agreement", "--db", db, "--json").exit_code == 0
    assert digest(db) == before, "the reading commands leave it as it was"
    with Store(db) as store:  # a writer adds the marker
        assert store.conn.execute("SELECT value FROM meta WHERE key='application'").fetchone()[0] == "qa-audio"
        assert len(store.calls()) == 1


def test_reading_commands_open_the_store_read_only(tmp_path):
    db = make_store(tmp_path)
    with Store(db, read_only=True) as store:
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            store.conn.execute("DELETE FROM calls")
        assert len(store.calls()) == 1
    file_mode, dir_mode = db.stat().st_mode, tmp_path.stat().st_mode
    before, mtime = digest(db), db.stat().st_mtime_ns
    os.chmod(db, stat.S_IRUSR | stat.S_IRGRP)  # read-only file in a read-only folder (root ignores both:
    os.chmod(tmp_path, stat.S_IRUSR | stat.S_IXUSR)  # the checks above and below are what hold there)
    try:
        out = io.StringIO()
        result = run("export", "-", "--db", db, "--all")
        assert result.exit_code == 0, result.output
        out.write(result.stdout)
        assert json.loads(out.getvalue().splitlines()[0])["call_id"] == CALL
        assert run("agreement", "--db", db, "--json").exit_code == 0
    finally:
        os.chmod(tmp_path, dir_mode)
        os.chmod(db, file_mode)
    assert digest(db) == before and db.stat().st_mtime_ns == mtime


def test_a_store_whose_wal_files_cannot_be_made_is_still_read(tmp_path):
    db = make_store(tmp_path)  # closed: its -wal and -shm are gone
    assert not Path(f"{db}-wal").exists()
    Path(f"{db}-wal").mkdir()  # SQLite cannot make them here, as on a read-only mount
    Path(f"{db}-shm").mkdir()
    before = digest(db)
    result = run("export", "-", "--db", db, "--all")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.splitlines()[0])["call_id"] == CALL
    assert run("agreement", "--db", db, "--json").exit_code == 0
    assert digest(db) == before
