"""Accuracy measures shared by the benchmarks: CER on normalised Chinese, DER with pyannote.metrics."""

from __future__ import annotations

import json
import statistics
import unicodedata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_CALLS = ROOT / "sample_calls"
DIGIT_CHARS = dict(zip("0123456789", "零一二三四五六七八九", strict=True)) | {"幺": "一", "两": "二"}


def load_truths(folder: Path = SAMPLE_CALLS) -> list[dict]:
    truths = []
    for path in sorted(folder.glob("*.truth.json")):
        truth = json.loads(path.read_text(encoding="utf-8"))
        truth["audio_path"] = str(folder / truth["file"])
        truths.append(truth)
    return truths


def normalise_for_cer(text: str) -> str:
    """Characters only: no punctuation or spaces, digits read as the Chinese digits a caller says."""
    text = unicodedata.normalize("NFKC", text)
    out = []
    for ch in text:
        ch = DIGIT_CHARS.get(ch, ch)
        if ch.isalnum():
            out.append(ch.lower())
    return "".join(out)


def edit_distance(reference: str, hypothesis: str) -> int:
    previous = list(range(len(hypothesis) + 1))
    for i, r in enumerate(reference, 1):
        current = [i]
        for j, h in enumerate(hypothesis, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (r != h)))
        previous = current
    return previous[-1]


def cer(reference: str, hypothesis: str) -> float:
    ref, hyp = normalise_for_cer(reference), normalise_for_cer(hypothesis)
    return edit_distance(ref, hyp) / max(1, len(ref))


def der(reference: list[tuple[str, float, float]], hypothesis: list[tuple[str, float, float]],
        collar: float = 0.25) -> dict[str, float]:
    """DER with pyannote.metrics; ``collar`` is the total width around each reference boundary
    (pyannote's convention: collar/2 on each side is not scored)."""
    from pyannote.core import Annotation, Segment
    from pyannote.metrics.diarization import DiarizationErrorRate

    ref, hyp = Annotation(), Annotation()
    for i, (label, start, end) in enumerate(reference):
        ref[Segment(start, end), i] = label
    for i, (label, start, end) in enumerate(hypothesis):
        hyp[Segment(start, end), i] = label
    metric = DiarizationErrorRate(collar=collar, skip_overlap=False)
    parts = metric(ref, hyp, detailed=True)
    total = max(parts["total"], 1e-9)
    return {
        "der": parts["diarization error rate"],
        "missed": parts["missed detection"] / total,
        "false_alarm": parts["false alarm"] / total,
        "confusion": parts["confusion"] / total,
    }


def median(values: list[float]) -> float:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else float("nan")
