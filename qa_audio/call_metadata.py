"""Who took the call and when: agent id, team, start time, queue, direction.

A recording alone does not say who the agent was, and per-agent coaching needs it. Three sources,
most trusted first:

1. ``csv``: the sidecar file the phone system exports (``qa-audio batch --metadata calls.csv``, or
   ``qa-audio metadata calls.csv`` for calls already analysed): a header row naming at least
   ``file`` (a path or a file name) and ``agent_id``, optionally ``team``, ``started_at`` (ISO
   8601), ``queue``, ``direction``; joined on the path, else on the file name.
2. ``file_name``: the pattern of ``rules/deployment.yaml`` ``recordings.file_pattern``, e.g.
   ``{date:%Y%m%d}_{agent_id}_{seq}.wav``.
3. ``heard``: the 工号 the agent said in the greeting, as a fallback, and as a cross-check: a call
   whose heard 工号 is not the end of its given agent id gets ``agent_id_mismatch``.
"""

from __future__ import annotations

import csv
import functools
import io
import re
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

FIELDS = ("agent_id", "team", "started_at", "queue", "direction")
"""what a call's metadata may say (besides where it came from and the heard 工号)"""
SOURCES = ("csv", "file_name", "heard", "none")
PATTERN_FIELDS = {"agent_id", "team", "queue", "direction", "seq", "date", "time", "started_at"}
"""names a file pattern may use; ``seq`` matches and is ignored, ``date``/``time``/``started_at``
take a strftime format ({date:%Y%m%d}) and make ``started_at``"""
STRFTIME_REGEX = {"%Y": r"\d{4}", "%m": r"\d{2}", "%d": r"\d{2}", "%H": r"\d{2}", "%M": r"\d{2}", "%S": r"\d{2}",
                  "%y": r"\d{2}", "%j": r"\d{3}"}
MAX_CSV_BYTES = 200 * 1024 * 1024


class MetadataError(ValueError):
    """A metadata file or pattern that cannot be used; ``str()`` names the file and line."""


@dataclass(frozen=True)
class CallMetadata:
    agent_id: str | None = None
    team: str | None = None
    started_at: str | None = None
    """ISO 8601, as given (a date alone where the file name has only the date)"""
    queue: str | None = None
    direction: str | None = None
    source: str = "none"
    """where ``agent_id`` and the rest came from: csv | file_name | heard | none"""
    heard_agent_id: str | None = None
    """the 工号 digits heard in full in the greeting, if any"""
    agent_id_mismatch: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"agent_id": self.agent_id, "team": self.team, "started_at": self.started_at, "queue": self.queue,
                "direction": self.direction, "source": self.source, "heard_agent_id": self.heard_agent_id,
                "agent_id_mismatch": self.agent_id_mismatch}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> CallMetadata:
        data = data or {}
        return cls(**{k: data.get(k) for k in FIELDS}, source=str(data.get("source") or "none"),
                   heard_agent_id=data.get("heard_agent_id"), agent_id_mismatch=bool(data.get("agent_id_mismatch")))


def combine(given: dict[str, str] | None, source: str, heard_agent_id: str | None) -> CallMetadata:
    """The call's metadata from one given source (or none) and the heard 工号, cross-checked."""
    if given and given.get("agent_id"):
        meta = CallMetadata(**{k: given.get(k) or None for k in FIELDS}, source=source, heard_agent_id=heard_agent_id)
        return replace(meta, agent_id_mismatch=mismatch(meta.agent_id, heard_agent_id))
    if heard_agent_id:
        extra = {k: given.get(k) or None for k in FIELDS if k != "agent_id"} if given else {}
        return CallMetadata(agent_id=heard_agent_id, source="heard", heard_agent_id=heard_agent_id, **extra)
    return CallMetadata(**({k: given.get(k) or None for k in FIELDS} if given else {}))


def mismatch(agent_id: str | None, heard_agent_id: str | None) -> bool:
    """A given agent id that does not end with the 工号 heard (A1024 and 1024 agree; 1024 and 1042 do not)."""
    if not agent_id or not heard_agent_id:
        return False
    return not re.sub(r"\D", "", agent_id).endswith(heard_agent_id)


# --------------------------------------------------------------------------- file names


@functools.lru_cache(maxsize=16)
def compile_file_pattern(pattern: str) -> re.Pattern[str]:
    """``{date:%Y%m%d}_{agent_id}_{seq}.wav`` as a regular expression with named groups."""
    out, position, seen = ["^"], 0, set()
    for match in re.finditer(r"\{(\w+)(?::([^}]*))?\}", pattern):
        out.append(re.escape(pattern[position:match.start()]))
        name, fmt = match.group(1), match.group(2)
        if name not in PATTERN_FIELDS:
            raise MetadataError(f"unknown field {{{name}}}; a file pattern may use "
                                f"{', '.join('{' + f + '}' for f in sorted(PATTERN_FIELDS))}")
        if name in seen:
            raise MetadataError(f"{{{name}}} appears twice")
        seen.add(name)
        if name in ("date", "time", "started_at"):
            if not fmt:
                raise MetadataError(f"{{{name}}} needs a strftime format, e.g. {{{name}:%Y%m%d}}")
            regex = re.escape(fmt)
            for code, digits in STRFTIME_REGEX.items():
                regex = regex.replace(re.escape(code), digits)
            if "%" in regex:
                raise MetadataError(f"{{{name}:{fmt}}}: only {' '.join(STRFTIME_REGEX)} are understood")
            out.append(f"(?P<{name}>{regex})")
        else:
            if fmt:
                raise MetadataError(f"{{{name}}} takes no format")
            out.append(rf"(?P<{name}>[^/\\]+?)")
        position = match.end()
    out.append(re.escape(pattern[position:]) + "$")
    if not seen:
        raise MetadataError("the pattern names no field, e.g. {agent_id}")
    return re.compile("".join(out))


def from_file_name(path: str | Path, pattern: str | None) -> dict[str, str] | None:
    """The metadata a recording's file name holds under ``pattern``, or None if it does not fit."""
    if not pattern:
        return None
    regex = compile_file_pattern(pattern)
    name = Path(path).name
    match = regex.match(name) or regex.match(Path(name).stem)
    if not match:
        return None
    fields = match.groupdict()
    out = {k: v for k, v in fields.items() if k in FIELDS and k != "started_at" and v}
    formats = _formats(pattern)
    try:
        if fields.get("started_at"):
            out["started_at"] = datetime.strptime(fields["started_at"], formats["started_at"]).isoformat()
        elif fields.get("date"):
            day = datetime.strptime(fields["date"], formats["date"])
            if fields.get("time"):
                clock = datetime.strptime(fields["time"], formats["time"])
                out["started_at"] = day.replace(hour=clock.hour, minute=clock.minute, second=clock.second).isoformat()
            else:
                out["started_at"] = day.date().isoformat()
    except ValueError:
        return None  # 20261345: fits the shape, not a date
    return out


def _formats(pattern: str) -> dict[str, str]:
    return {m.group(1): m.group(2) for m in re.finditer(r"\{(\w+):([^}]*)\}", pattern)}


# --------------------------------------------------------------------------- the sidecar CSV


def read_metadata_csv(path: Path | str) -> dict[str, dict[str, str]]:
    """Rows of the phone system's CSV keyed by ``file`` as written (path or name) and by file name.

    Every problem is a :class:`MetadataError` naming the file and line: a missing ``file`` or
    ``agent_id`` column, an empty ``file`` or ``agent_id``, a ``started_at`` that is not ISO 8601,
    one file given two different rows.
    """
    path = Path(path)
    try:
        if path.stat().st_size > MAX_CSV_BYTES:
            raise MetadataError(f"{path}: larger than {MAX_CSV_BYTES // (1024 * 1024)} MB; is it the metadata file?")
        text = path.read_bytes().decode("utf-8-sig")
    except OSError as exc:
        raise MetadataError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise MetadataError(f"{path}: not UTF-8 text") from exc
    reader = csv.reader(io.StringIO(text))
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise MetadataError(f"{path}:1: the file is empty; expected a header row with file,agent_id") from None
    except csv.Error as exc:
        raise MetadataError(f"{path}:1: not CSV: {exc}") from exc
    missing = [c for c in ("file", "agent_id") if c not in header]
    if missing:
        raise MetadataError(f"{path}:1: the header has no {' or '.join(missing)} column "
                            f"(it names: {', '.join(header) or 'nothing'})")
    rows: dict[str, dict[str, str]] = {}
    by_name: dict[str, dict[str, str]] = {}
    ambiguous: set[str] = set()
    try:
        for record in reader:
            line = reader.line_num
            if not any(cell.strip() for cell in record):
                continue
            if len(record) != len(header):
                raise MetadataError(f"{path}:{line}: {len(record)} fields, the header has {len(header)}")
            row = {h: cell.strip() for h, cell in zip(header, record, strict=True)}
            if not row["file"] or not row["agent_id"]:
                raise MetadataError(f"{path}:{line}: 'file' and 'agent_id' must not be empty")
            started = row.get("started_at")
            if started:
                try:
                    row["started_at"] = datetime.fromisoformat(started.replace("Z", "+00:00")).isoformat()
                except ValueError:
                    raise MetadataError(f"{path}:{line}: started_at {started!r} is not an ISO 8601 time "
                                        "(2026-11-30T09:15:00)") from None
            kept = {k: row[k] for k in FIELDS if row.get(k)}
            key = row["file"]
            if key in rows and rows[key] != kept:
                raise MetadataError(f"{path}:{line}: {key} is given twice, with different values")
            rows[key] = kept
            name = Path(key).name
            if name in by_name and by_name[name] != kept:
                ambiguous.add(name)
            by_name.setdefault(name, kept)
    except csv.Error as exc:
        raise MetadataError(f"{path}:{reader.line_num}: not CSV: {exc}") from exc
    for name, row in by_name.items():
        if name not in ambiguous:
            rows.setdefault(name, row)
    return rows


def lookup(rows: dict[str, dict[str, str]], *paths: str) -> dict[str, str] | None:
    """The CSV row of a recording seen at ``paths``: by the path as written, else by file name."""
    for path in paths:
        if path in rows:
            return rows[path]
    for path in paths:
        name = Path(path).name
        if name in rows:
            return rows[name]
    return None
