"""qa-audio: offline speech-analytics auto-QA for Mandarin call centres.

The public API (everything else is internal and may move)::

    from qa_audio import Analyzer, AnalyzeOptions, to_json

    analysis = Analyzer(AnalyzeOptions()).analyze("call.wav")   # a CallAnalysis
    analysis.rubric.total, analysis.findings, analysis.transcript.turns
    print(to_json(analysis))                                     # the QA queue's JSON contract

The names are imported on first use, so ``import qa_audio`` (and ``qa-audio --help``) stays cheap:
the models' libraries load only when an Analyzer is made.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "Analyzer": "qa_audio.pipeline",
    "AnalyzeOptions": "qa_audio.pipeline",
    "CallAnalysis": "qa_audio.pipeline",
    "AsrOptions": "qa_audio.speech.asr",
    "Audio": "qa_audio.audio",
    "AudioError": "qa_audio.audio",
    "load_audio": "qa_audio.audio",
    "Finding": "qa_audio.schema",
    "RubricResult": "qa_audio.schema",
    "ProgressHook": "qa_audio.schema",
    "SCHEMA_VERSION": "qa_audio.schema",
    "RuleFileError": "qa_audio.rule_files",
    "to_json": "qa_audio.report.json_output",
    "to_json_dict": "qa_audio.report.json_output",
}

__all__ = [
    "SCHEMA_VERSION", "AnalyzeOptions", "Analyzer", "AsrOptions", "Audio", "AudioError", "CallAnalysis", "Finding",
    "ProgressHook", "RubricResult", "RuleFileError", "__version__", "load_audio", "to_json", "to_json_dict",
]

if TYPE_CHECKING:
    from qa_audio.audio import Audio, AudioError, load_audio
    from qa_audio.pipeline import AnalyzeOptions, Analyzer, CallAnalysis
    from qa_audio.report.json_output import to_json, to_json_dict
    from qa_audio.rule_files import RuleFileError
    from qa_audio.schema import SCHEMA_VERSION, Finding, ProgressHook, RubricResult
    from qa_audio.speech.asr import AsrOptions


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'qa_audio' has no attribute {name!r}")
