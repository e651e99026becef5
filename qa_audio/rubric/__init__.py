"""The rubric stage: the inspector's sheet (``rules/rubric.yaml``) pre-filled from one call's findings."""

from qa_audio.rubric.fill import fill_rubric, fill_rubric_from_result
from qa_audio.rubric.sheet import RubricSheet, band_index, load_rubric, parse_rubric

__all__ = ["RubricSheet", "band_index", "fill_rubric", "fill_rubric_from_result", "load_rubric", "parse_rubric"]
