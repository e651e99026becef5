"""``rules/workbench.yaml``: the workbench's queue, calibration share, sign-in limits and who sees originals.

Checked when ``qa-audio serve`` starts, so a typo names its file and line instead of surfacing as a
500 on the first page.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qa_audio.rule_files import RuleFileError, load_rule_file, only_keys, require, rule_file

WORKBENCH_FILE = "workbench.yaml"
ROLES = ("inspector", "lead")


@dataclass(frozen=True)
class WorkbenchSettings:
    path: Path
    low_confidence: float
    low_total: float
    random_sample: int
    sample_seed: int | str
    page_size: int
    calibration_share: float
    max_failures: int
    max_failures_per_address: int
    window_minutes: float
    session_hours: float
    min_password_length: int
    show_originals_to: frozenset[str]


def load_workbench_settings(rules_dir: Path | str | None = None) -> WorkbenchSettings:
    path = rule_file(rules_dir, WORKBENCH_FILE)
    data = load_rule_file(path)
    if not isinstance(data, dict):
        raise RuleFileError(path, getattr(data, "line", 1), "the file must be a mapping")
    only_keys(data, {"queue", "calibration", "sign_in", "show_originals_to"}, path, WORKBENCH_FILE)
    queue = require(data, "queue", dict, path)
    only_keys(queue, {"low_confidence", "low_total", "random_sample", "sample_seed", "page_size"}, path, "queue")
    calibration = require(data, "calibration", dict, path)
    only_keys(calibration, {"share"}, path, "calibration")
    sign_in = require(data, "sign_in", dict, path)
    only_keys(sign_in, {"max_failures", "max_failures_per_address", "window_minutes", "session_hours",
                        "min_password_length"}, path, "sign_in")
    roles = require(data, "show_originals_to", list, path)
    for role in roles:
        if role not in ROLES:
            raise RuleFileError(path, data.line_of("show_originals_to"),
                                f"show_originals_to: {role!r} is not a role ({', '.join(ROLES)})")
    seed = require(queue, "sample_seed", (int, str), path)
    return WorkbenchSettings(
        path=path,
        low_confidence=_number(queue, "low_confidence", path, 0, 1),
        low_total=_number(queue, "low_total", path, 0, 1),
        random_sample=int(_number(queue, "random_sample", path, 0, 100_000, whole=True)),
        sample_seed=seed,
        page_size=int(_number(queue, "page_size", path, 1, 500, whole=True)),
        calibration_share=_number(calibration, "share", path, 0, 1),
        max_failures=int(_number(sign_in, "max_failures", path, 1, 1000, whole=True)),
        max_failures_per_address=int(_number(sign_in, "max_failures_per_address", path, 1, 100_000, whole=True)),
        window_minutes=_number(sign_in, "window_minutes", path, 0.1, 10_000),
        session_hours=_number(sign_in, "session_hours", path, 0.1, 24 * 30),
        min_password_length=int(_number(sign_in, "min_password_length", path, 8, 200, whole=True)),
        show_originals_to=frozenset(roles),
    )


def _number(mapping: Any, key: str, path: Path, low: float, high: float, whole: bool = False) -> float:
    value = require(mapping, key, (int, float), path)
    if isinstance(value, bool) or not low <= value <= high or (whole and value != int(value)):
        kind = "a whole number" if whole else "a number"
        raise RuleFileError(path, mapping.line_of(key), f"{key}: {value!r} must be {kind} from {low:g} to {high:g}")
    return float(value)
