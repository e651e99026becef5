"""Export order and schema, the review sheets read back, and the agreement figures."""

from __future__ import annotations

import csv
import io
import json

import pytest

from qa_audio.batch.export import (
    ExportOptions,
    ReviewSheetError,
    agreement_report,
    export_rows,
    read_reviews,
    write_rows,
)
from qa_audio.batch.store import FileKey, Store


def add(store: Store, name: str, *, total=None, flags=(), confidence=0.9, findings=(), items=()) -> str:
    call_id = name.ljust(64, "0")
    rubric = None
    if total is not None or items:
        rubric = {"items": list(items), "total": total, "max_total": 100 if total is not None else None,
                  "flags": list(flags)}
    data = {"audio": {"duration": 60.0, "channels": 2}, "roles": {"confidence": confidence},
            "findings": list(findings)}
    if rubric:
        data["rubric"] = rubric
    store.add_result(FileKey(f"/archive/{name}.wav", 10, 0.0, call_id), data)
    return call_id


@pytest.fixture
def store(tmp_path):
    store = Store(tmp_path / "qa.db")
    add(store, "ok1", total=90)
    add(store, "ok2", total=85)
    add(store, "ok3", total=95)
    add(store, "low", total=40)
    add(store, "lower", total=30)
    add(store, "fatal", total=80, flags=["fatal"])
    add(store, "unsure", total=88, confidence=0.3)
    add(store, "review", total=88, flags=["needs_review"], confidence=0.8)
    return store


def test_order_is_fatal_low_confidence_low_total_then_sample(store):
    rows = export_rows(store, ExportOptions(sample=2, seed=1))
    names = [r["path"].split("/")[-1][:-4] for r in rows]
    assert names[:5] == ["fatal", "unsure", "review", "lower", "low"]
    assert [r["review_reason"] for r in rows] == ["fatal", "low_confidence", "low_confidence", "low_total",
                                                  "low_total", "random_sample", "random_sample"]
    assert set(names[5:]) <= {"ok1", "ok2", "ok3"}
    assert export_rows(store, ExportOptions(sample=2, seed=1)) == rows, "a seed makes the sample repeatable"
    everything = export_rows(store, ExportOptions(sample=0, everything=True))
    assert len(everything) == 8 and everything[-1]["review_reason"] == "routine"


def test_filters(store):
    assert [r["review_reason"] for r in export_rows(store, ExportOptions(flags=("fatal",)))] == ["fatal"]
    assert export_rows(store, ExportOptions(since="2999-01-01")) == []
    assert len(export_rows(store, ExportOptions(until="2999-01-01", sample=100))) == 8
    assert export_rows(store, ExportOptions(status="reviewed")) == []
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        export_rows(store, ExportOptions(since="yesterday"))


def test_without_rubric_the_findings_order_the_queue(tmp_path):
    store = Store(tmp_path / "qa.db")
    add(store, "quarrel", findings=[{"rule": "forbidden_phrase", "role": "agent", "severity": "0-2"}])
    add(store, "shirk", findings=[{"rule": "forbidden_phrase", "role": "agent", "severity": "3-5"}])
    add(store, "fine", findings=[{"rule": "greeting", "role": "agent", "level": 2}])
    rows = export_rows(store, ExportOptions(sample=0))
    assert [(r["path"][9:-4], r["review_reason"]) for r in rows] == [("quarrel", "fatal"), ("shirk", "low_total")]
    assert rows[0]["total"] is None and rows[0]["flags"] == []
    assert rows[0]["finding_counts"] == {"forbidden_phrase": 1}


def test_jsonl_and_csv_carry_the_same_rows(store):
    rows = export_rows(store, ExportOptions(sample=0))
    text = io.StringIO()
    write_rows(rows, text, "jsonl")
    assert [json.loads(line) for line in text.getvalue().splitlines()] == rows
    table = io.StringIO()
    write_rows(rows, table, "csv")
    parsed = list(csv.DictReader(io.StringIO(table.getvalue())))
    assert [r["call_id"] for r in parsed] == [r["call_id"] for r in rows]
    assert parsed[0]["flags"] == "fatal" and parsed[0]["review_priority"] == "1"


def test_reviews_round_trip_and_agreement(tmp_path):
    store = Store(tmp_path / "qa.db")
    prefills = [(2, 2), (13, 14), (4, 12), (6, 3), (14, 13)]  # (pre-fill, inspector) for item 7b
    ids = []
    for n, (prefill, _) in enumerate(prefills):
        # the bands as the rubric writes them (rules/rubric.yaml's, overlapping ones merged)
        ids.append(add(store, f"c{n}", total=70, items=[
            {"id": "7b", "points": 15, "score": prefill, "confidence": 0.8,
             "bands": [[0, 2], [3, 5], [6, 8], [9, 12], [13, 15]]},
            {"id": "1b", "points": 2, "score": 2, "confidence": 0.9, "bands": [[0, 0], [1, 1], [2, 2]]}]))
    sheet = tmp_path / "sheet.csv"
    lines = ["call_id,item_id,inspector_score,inspector,reviewed_at"]
    lines += [f"{cid},7b,{inspector},王芳,2026-01-02" for cid, (_, inspector) in zip(ids, prefills, strict=True)]
    lines += [f"{cid},1b,2,王芳,2026-01-02" for cid in ids]
    sheet.write_text("\n".join(lines) + "\n", encoding="utf-8")
    rows = read_reviews(sheet)
    assert len(rows) == 10 and rows[0]["inspector_score"] == 2.0
    assert store.add_reviews(rows) == (10, [])
    report = agreement_report(store)
    assert report["calls"] == 5
    by_item = {item["item_id"]: item for item in report["items"]}
    assert by_item["7b"]["n"] == 5
    assert by_item["7b"]["exact"] == pytest.approx(1 / 5)
    # bands 0-2 | 3-5 | 6-8 | 9-12 | 13-15: (4, 12) is two bands off, (6, 3) one, the rest the same band
    assert by_item["7b"]["within_one_band"] == pytest.approx(4 / 5)
    assert by_item["7b"]["kappa"] is not None and -1 <= by_item["7b"]["kappa"] < 1
    assert by_item["1b"]["exact"] == 1.0 and by_item["1b"]["kappa"] is None  # one class only: undefined
    assert [r["review_reason"] for r in export_rows(store, ExportOptions(status="reviewed", sample=9))]


def test_bad_review_sheets(tmp_path):
    sheet = tmp_path / "s.jsonl"
    sheet.write_text('{"call_id": "a", "item_id": "7b"}\n', encoding="utf-8")
    with pytest.raises(ReviewSheetError, match=r"s.jsonl:1: missing inspector_score"):
        read_reviews(sheet)
    sheet.write_text('{"call_id": "a", "item_id": "7b", "inspector_score": "high"}\n', encoding="utf-8")
    with pytest.raises(ReviewSheetError, match="not a number"):
        read_reviews(sheet)
    sheet.write_text("{oops\n", encoding="utf-8")
    with pytest.raises(ReviewSheetError, match="not JSON"):
        read_reviews(sheet)
