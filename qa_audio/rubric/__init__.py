"""The rubric stage: the inspector's sheet (``rules/rubric.yaml``) pre-filled from one call's findings.

The names are loaded on first use: a reader of the sheet alone (``qa-audio report``) does not pay
for ``fill``'s imports (the acoustic layer and SciPy, a second at start-up).
"""

from __future__ import annotations

import importlib
from typing import Any

_HOME = {"fill_rubric": "fill", "fill_rubric_from_result": "fill", "RubricSheet": "sheet", "band_index": "sheet",
         "load_rubric": "sheet", "parse_rubric": "sheet"}

__all__ = ["RubricSheet", "band_index", "fill_rubric", "fill_rubric_from_result", "load_rubric", "parse_rubric"]


def __getattr__(name: str) -> Any:
    if name in _HOME:
        return getattr(importlib.import_module(f"qa_audio.rubric.{_HOME[name]}"), name)
    raise AttributeError(f"module 'qa_audio.rubric' has no attribute {name!r}")
