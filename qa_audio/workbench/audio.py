"""The recording a call page plays: the archive's file with every masked span toned over, as a browser plays it.

The store holds no audio: the recording is read from the path it was analysed from (or another path
the same bytes were seen at), checked to be the same size, and redacted in memory with the tone of
the analysis's own settings (``qa_audio/redact/audio.py``). Nothing is written to disk. The last few
recordings are kept in memory, because a player seeking in a long call asks for many ranges of it.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

from qa_audio.redact.audio import redacted_audio_bytes
from qa_audio.redact.rules import ToneSettings
from qa_audio.report.html import MIME_BY_FORMAT
from qa_audio.schema import personal_data_from_dict


class RecordingMissing(LookupError):
    """No file holding the analysed bytes at any path the call was seen at (the message says where)."""


class RecordingCache:
    """Redacted recordings by call, the most recent ``size`` kept (a lock: the server runs threads)."""

    def __init__(self, size: int = 4):
        self.size = size
        self._items: OrderedDict[str, tuple[bytes, str]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, call_id: str, paths: list[str], size: int, result: dict[str, Any]) -> tuple[bytes, str]:
        """(bytes, MIME type) of the call's recording, redacted."""
        with self._lock:
            if call_id in self._items:
                self._items.move_to_end(call_id)
                return self._items[call_id]
        found = recording_bytes(paths, size, result)
        with self._lock:
            self._items[call_id] = found
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return found


def recording_bytes(paths: list[str], size: int, result: dict[str, Any]) -> tuple[bytes, str]:
    tried = []
    for path in paths:
        file = Path(path)
        if not file.is_file():
            tried.append(f"{file.name}: not found")
            continue
        if size and file.stat().st_size != size:
            tried.append(f"{file.name}: changed since it was analysed")
            continue
        spans = [personal_data_from_dict(span) for span in result.get("personal_data") or []]
        audio_settings = ((result.get("settings") or {}).get("personal_data") or {}).get("audio")
        tone = ToneSettings(**audio_settings) if spans and audio_settings else None
        if spans and tone is None:
            raise RecordingMissing("the analysis names masked spans but not their tone: it cannot be played safely")
        data, fmt = redacted_audio_bytes(file, spans if tone else [], tone, for_browser=True)
        return data, MIME_BY_FORMAT.get(fmt, "application/octet-stream")
    raise RecordingMissing("the recording is not where it was analysed (" + "; ".join(tried or ["no path"]) + ")")
