"""The versioned JSON the QA queue imports: one :class:`CallAnalysis` serialised, nothing computed.

The layout is documented in ``docs/schema.md``; ``SCHEMA_VERSION`` (in :mod:`qa_audio.schema`) is
bumped on any change a consumer could notice (minor: fields added; major: fields removed, renamed
or re-typed).
"""

from __future__ import annotations

import json
from typing import Any

from qa_audio import __version__
from qa_audio.pipeline import CallAnalysis
from qa_audio.schema import SCHEMA_VERSION


def to_json_dict(analysis: CallAnalysis, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    transcript = analysis.transcript
    result: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "tool": {"name": "qa-audio", "version": __version__},
        "audio": analysis.audio.describe(),
        "call": analysis.metadata.to_dict(),
        "settings": analysis.settings,
        "roles": analysis.roles.to_dict(),
        "speech": [
            {"speaker": s.speaker, "role": transcript.roles.get(s.speaker, "customer"),
             "start": s.start, "end": s.end}
            for s in transcript.speech
        ],
        "turns": [t.to_dict() for t in transcript.turns],
        "dropped": [
            {"speaker": speaker, "start": d.start, "end": d.end, "text": d.text, "reason": d.reason}
            for speaker, d in analysis.dropped
        ],
        "personal_data": [span.to_dict() for span in analysis.personal_data],
        "vocabulary_corrections": [c.to_dict() for c in analysis.vocabulary_corrections],
        "vocabulary_opening": analysis.opening.to_dict() if analysis.opening else None,
        "findings": [f.to_dict() for f in analysis.findings],
        "acoustics": analysis.acoustics.to_dict() if analysis.acoustics else None,
        "timings": analysis.timings,
        "rubric": analysis.rubric.to_dict(),
    }
    if extra:
        result.update(extra)
    return result


def to_json(analysis: CallAnalysis, extra: dict[str, Any] | None = None) -> str:
    """The JSON text of one analysed call, as ``qa-audio analyze`` prints it."""
    return json.dumps(to_json_dict(analysis, extra), ensure_ascii=False, indent=2) + "\n"
