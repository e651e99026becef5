"""Finding and reading the rule files (``qa_audio/rules/*.yaml``) so that every mistake names its file and line.

A QA lead edits these files by hand; an error that says only "KeyError: 'phrases'" is useless to
them. Mappings and lists loaded here remember the line they start on (1-based), and each mapping
remembers the line of each key, so validators can say exactly where the problem is.

The shipped rules are package data (``qa_audio/rules/``), so a wheel or a plain ``pip install .``
carries them, the way faster-whisper ships its VAD model in ``faster_whisper/assets/``. Every
loader finds its file through :func:`rule_file`, which has the one policy for a deployment's own
folder (``--rules DIR``): it must hold every rule file, and a missing one is an error naming the
folder and the file, never a silent fall-back to the shipped copy (a QA lead who forgot a file
would otherwise be judged by rules they never saw).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

DEFAULT_RULES_DIR = Path(__file__).resolve().parent / "rules"
"""The rules shipped with qa-audio (package data)."""


class RuleFileError(ValueError):
    """A rule file is malformed or holds a value the engine cannot use."""

    def __init__(self, path: Path | str, line: int | None, reason: str):
        self.path = Path(path)
        self.line = line
        self.reason = reason
        where = f"{self.path}:{line}" if line else str(self.path)
        super().__init__(f"{where}: {reason}")


class LineDict(dict):
    """A mapping from a rule file, with the line it starts on and the line of each key."""

    line: int = 0
    key_lines: dict[str, int]

    def line_of(self, key: str) -> int:
        return self.key_lines.get(key, self.line)


class LineList(list):
    """A list from a rule file, with the line it starts on and the line of each item."""

    line: int = 0
    item_lines: list[int]


class _LineLoader(yaml.SafeLoader):
    pass


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> LineDict:
    loader.flatten_mapping(node)
    result = LineDict()
    result.line = node.start_mark.line + 1
    result.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, str | int | float | bool):
            raise yaml.constructor.ConstructorError(
                None, None, "a key must be plain text", key_node.start_mark
            )
        if key in result:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        result[key] = loader.construct_object(value_node, deep=True)
        result.key_lines[str(key)] = key_node.start_mark.line + 1
    return result


def _construct_sequence(loader: _LineLoader, node: yaml.SequenceNode) -> LineList:
    result = LineList(loader.construct_object(child, deep=True) for child in node.value)
    result.line = node.start_mark.line + 1
    result.item_lines = [child.start_mark.line + 1 for child in node.value]
    return result


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)


def rules_folder(rules_dir: Path | str | None) -> Path:
    """The deployment's rules folder, or the shipped one; a folder that is not there is an error."""
    directory = Path(rules_dir) if rules_dir is not None else DEFAULT_RULES_DIR
    if not directory.is_dir():
        raise RuleFileError(directory, None, "rules folder not found")
    return directory


def rule_file(rules_dir: Path | str | None, name: str) -> Path:
    """The rule file ``name`` of the deployment's folder (default: the shipped rules)."""
    directory = rules_folder(rules_dir)
    path = directory / name
    if not path.is_file():
        raise RuleFileError(directory, None, f"{name} is missing: a rules folder holds every rule file "
                                             f"(copy the shipped one from {DEFAULT_RULES_DIR / name})")
    return path


def load_rule_file(path: Path | str) -> Any:
    """Parse one YAML rule file; syntax errors become :class:`RuleFileError` with the line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RuleFileError(path, None, f"cannot read: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise RuleFileError(path, None, "not UTF-8 text") from exc
    try:
        data = yaml.load(text, Loader=_LineLoader)  # noqa: S506 - SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        raise RuleFileError(path, line, f"invalid YAML: {exc.problem or exc}") from exc
    except yaml.YAMLError as exc:
        raise RuleFileError(path, None, f"invalid YAML: {exc}") from exc
    if data is None:
        raise RuleFileError(path, 1, "the file is empty")
    return data


def only_keys(mapping: Any, allowed: set[str], path: Path | str, what: str) -> None:
    """A :class:`RuleFileError` at the line of the first key of ``mapping`` not in ``allowed``.

    A misspelt key (``pitch_fmin_Hz``) would otherwise be ignored and its default used silently.
    """
    if not isinstance(mapping, dict):
        return  # the caller's require() says what is wrong with it
    for key in mapping:
        if str(key) not in allowed:
            line = mapping.line_of(str(key)) if isinstance(mapping, LineDict) else None
            raise RuleFileError(path, line, f"unknown key {key!r} in {what}; expected one of "
                                            f"{', '.join(sorted(allowed))}")


def require(mapping: Any, key: str, kind: type | tuple[type, ...], path: Path | str) -> Any:
    """``mapping[key]`` checked for presence and type, or a :class:`RuleFileError` at its line."""
    line = getattr(mapping, "line", None)
    if not isinstance(mapping, dict):
        raise RuleFileError(path, line, f"expected a mapping with {key!r}, found {type(mapping).__name__}")
    if key not in mapping:
        raise RuleFileError(path, line, f"missing {key!r}")
    value = mapping[key]
    if isinstance(value, bool) and kind in (int, float, (int, float)):
        raise RuleFileError(path, mapping.line_of(key), f"{key!r} must be a number, not {value!r}")
    if not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise RuleFileError(path, mapping.line_of(key), f"{key!r} must be {names}, not {value!r}")
    return value


def number_between(mapping: Any, key: str, lo: float, hi: float, path: Path | str, *, lo_open: bool = False) -> float:
    """``mapping[key]`` as a number in [``lo``, ``hi``] (``(lo, hi]`` with ``lo_open``), or a
    :class:`RuleFileError` at its line."""
    value = float(require(mapping, key, (int, float), path))
    if not (lo < value if lo_open else lo <= value) or value > hi:
        bracket = "(" if lo_open else "["
        raise RuleFileError(path, mapping.line_of(key), f"{key!r} must be in {bracket}{lo:g}, {hi:g}], not {value:g}")
    return value
