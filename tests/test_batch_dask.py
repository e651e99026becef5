"""The distributed path: the same batch on a Dask LocalCluster (workers analyse and return results,
this process alone writes the store). Skipped where ``dask[distributed]`` is not installed."""

from __future__ import annotations

import shutil

import pytest

from qa_audio.batch.run import BatchOptions, run_batch
from qa_audio.batch.store import Store
from tests.conftest import SAMPLE_CALLS

pytest.importorskip("distributed")

CALL = "call09_talkover_stereo.wav"


def test_dask_local_cluster_same_store_semantics(tmp_path):
    archive = tmp_path / "archive"
    archive.mkdir()
    shutil.copy(SAMPLE_CALLS / CALL, archive / CALL)
    (archive / "notes.wav").write_text("not audio\n", encoding="utf-8")
    store = Store(tmp_path / "qa.db")
    options = BatchOptions(engine="dask", workers=1, threads=2)
    summary = run_batch([archive], store, options)
    assert (summary.done, summary.failed, summary.engine) == (1, 1, "dask")
    assert "not a recognised audio file" in summary.failures[0][1]
    calls = store.calls()
    assert [c["path"] for c in calls] == [str(archive / CALL)]
    assert calls[0]["status"] == "pending_review" and calls[0]["duration"] > 40
    # the rename is known and nothing is redone, on either engine
    shutil.move(archive / CALL, archive / "moved.wav")
    again = run_batch([archive], store, options)
    assert (again.done, again.skipped_done, again.skipped_failed) == (0, 1, 1)
    assert store.counts() == {"calls": 1, "failures": 1, "reviewed": 0}
