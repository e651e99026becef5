"""The distributed path: the same batch on a Dask LocalCluster (workers analyse and return results,
this process alone writes the store). Skipped where ``dask[distributed]`` is not installed."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import pytest

from qa_audio.batch.run import BatchOptions, run_batch
from qa_audio.batch.store import Store
from tests.helpers import SAMPLE_CALLS

pytestmark = pytest.mark.slow  # a Dask cluster analysing real calls

pytest.importorskip("distributed")

CALL = "call03_minimal_script.wav"  # 27 s: the shortest sample call


def test_dask_local_cluster_same_store_semantics(tmp_path):
    """A LocalCluster of one worker process: the bad files are failed with their reasons, the good call
    is stored; a rerun redoes nothing."""
    archive = tmp_path / "archive"
    archive.mkdir()
    shutil.copy(SAMPLE_CALLS / CALL, archive / CALL)
    (archive / "notes.wav").write_text("not audio\n", encoding="utf-8")
    (archive / "garbage.wav").write_bytes(random.Random(7).randbytes(50_000))  # binary junk
    store = Store(tmp_path / "qa.db")
    options = BatchOptions(engine="dask", workers=1, threads=2)
    summary = run_batch([archive], store, options)
    assert (summary.done, summary.failed, summary.engine) == (1, 2, "dask")
    assert sorted(Path(path).name for path, _ in summary.failures) == ["garbage.wav", "notes.wav"]
    for path, reason in summary.failures:
        assert reason == f"{path}: not a recognised audio file (qa-audio reads WAV, FLAC, MP3 and OGG)"
    assert {f["kind"] for f in store.failures()} == {"bad_input"}
    calls = store.calls()
    assert [c["path"] for c in calls] == [str(archive / CALL)]
    assert calls[0]["status"] == "pending_review" and calls[0]["duration"] > 25
    # the rename is known and nothing is redone, on either engine
    shutil.move(archive / CALL, archive / "moved.wav")
    again = run_batch([archive], store, options)
    assert (again.done, again.skipped_done, again.skipped_failed) == (0, 1, 2)
    assert store.counts() == {"calls": 1, "failures": 2, "reviewed": 0}
