"""Decoding a call recording into 16 kHz float channels, or saying exactly what is wrong with it.

Call-centre archives hold WAV (PCM, float, G.711 mu-law/A-law), FLAC, MP3 and OGG at 8 to 48 kHz,
mono or stereo (one party per channel). Everything is decoded with libsndfile (the ``soundfile``
wheel bundles a build with MP3 and Vorbis) and resampled with soxr to the 16 kHz the models want.

Bad input is the normal case in a nightly batch, so every failure is an :class:`AudioError` whose
message is one line naming the file and the problem.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile
import soxr

MODEL_SAMPLE_RATE = 16_000
MIN_SAMPLE_RATE = 8_000
MAX_SAMPLE_RATE = 48_000
SUPPORTED_FORMATS = {"WAV": "WAV", "WAVEX": "WAV", "FLAC": "FLAC", "MP3": "MP3", "OGG": "OGG"}
# -60 dBFS: below the quietest line noise of a real telephone channel, far below any speech.
SILENT_PEAK = 10 ** (-60 / 20)
# Shorter than this cannot hold a greeting; it is a broken or empty recording.
MIN_DURATION_S = 0.5


class AudioError(ValueError):
    """A recording that cannot be analysed; ``str()`` is one line naming the file and the problem."""

    def __init__(self, path: Path | str, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")


@dataclass(frozen=True)
class Audio:
    """A decoded recording. ``channels`` holds one 16 kHz float32 array per original channel."""

    path: str
    format: str
    encoding: str
    sample_rate: int
    """the file's own sample rate"""
    duration: float
    channels: tuple[np.ndarray, ...]

    @property
    def channel_count(self) -> int:
        return len(self.channels)

    def mono(self) -> np.ndarray:
        """All channels mixed down, for a mono model or a bare-ASR comparison."""
        if len(self.channels) == 1:
            return self.channels[0]
        return np.mean(np.stack(self.channels), axis=0).astype(np.float32)

    def describe(self) -> dict:
        return {
            "path": self.path,
            "duration": round(self.duration, 3),
            "sample_rate": self.sample_rate,
            "channels": self.channel_count,
            "format": self.format,
            "encoding": self.encoding,
        }


def load_audio(path: Path | str) -> Audio:
    """Decode ``path``; raise :class:`AudioError` for anything that is not a usable recording."""
    path = Path(path)
    if not path.exists():
        raise AudioError(path, "no such file")
    if path.is_dir():
        raise AudioError(path, "is a directory, not an audio file")
    size = path.stat().st_size
    if size == 0:
        raise AudioError(path, "empty file (0 bytes)")
    try:
        info = soundfile.info(str(path))
    except soundfile.LibsndfileError as exc:
        raise AudioError(path, _describe_open_error(exc)) from exc
    except OSError as exc:
        raise AudioError(path, f"cannot read: {exc.strerror or exc}") from exc
    if info.format not in SUPPORTED_FORMATS:
        raise AudioError(
            path, f"unsupported audio format {info.format} (qa-audio reads WAV, FLAC, MP3 and OGG)"
        )
    if not MIN_SAMPLE_RATE <= info.samplerate <= MAX_SAMPLE_RATE:
        raise AudioError(
            path,
            f"unsupported sample rate {info.samplerate} Hz (qa-audio reads {MIN_SAMPLE_RATE}-{MAX_SAMPLE_RATE} Hz)",
        )
    if info.channels not in (1, 2):
        raise AudioError(path, f"{info.channels} channels; qa-audio reads mono or stereo (one party per channel)")
    if info.format in ("WAV", "WAVEX"):
        problem = _wav_truncation(path)
        if problem:
            raise AudioError(path, problem)
    try:
        data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except soundfile.LibsndfileError as exc:
        raise AudioError(path, f"truncated or corrupt {info.format} data ({_short(exc)})") from exc
    if data.shape[0] == 0:
        raise AudioError(path, "contains no audio (0 samples)")
    # MP3 has no exact length in its header; libsndfile estimates it from the bitrate. Decoding far
    # less than the estimate means the stream was cut off.
    if info.format == "MP3" and info.frames > 0 and data.shape[0] < 0.95 * info.frames:
        raise AudioError(
            path,
            f"truncated MP3: decoded {data.shape[0] / rate:.1f} s of an expected {info.frames / rate:.1f} s",
        )
    duration = data.shape[0] / rate
    if duration < MIN_DURATION_S:
        raise AudioError(path, f"too short to be a call ({duration:.2f} s)")
    peak = float(np.max(np.abs(data)))
    if not np.isfinite(peak):
        raise AudioError(path, "corrupt samples (NaN or infinite values)")
    if peak < SILENT_PEAK:
        level = "digital silence" if peak == 0 else f"peak {20 * np.log10(peak):.0f} dBFS"
        raise AudioError(path, f"all silent ({level}); nothing to analyse")
    channels = tuple(_to_model_rate(data[:, c], rate) for c in range(data.shape[1]))
    return Audio(
        path=str(path),
        format=SUPPORTED_FORMATS[info.format],
        encoding=info.subtype,
        sample_rate=int(rate),
        duration=duration,
        channels=channels,
    )


def _to_model_rate(samples: np.ndarray, rate: int) -> np.ndarray:
    if rate == MODEL_SAMPLE_RATE:
        return np.ascontiguousarray(samples, dtype=np.float32)
    return soxr.resample(samples, rate, MODEL_SAMPLE_RATE, quality="HQ").astype(np.float32)


def _describe_open_error(exc: soundfile.LibsndfileError) -> str:
    text = _short(exc)
    if "Format not recognised" in text or "unknown format" in text.lower():
        return "not a recognised audio file (qa-audio reads WAV, FLAC, MP3 and OGG)"
    if "malformed" in text:
        return "corrupt or truncated audio file (libsndfile: file is malformed)"
    return f"cannot decode ({text})"


def _short(exc: Exception) -> str:
    text = str(exc).strip()
    # libsndfile repeats the path ("Error opening '/x.wav': Format not recognised."): keep the reason.
    if ": " in text:
        text = text.rsplit(": ", 1)[-1]
    return text.rstrip(".")


def _wav_truncation(path: Path) -> str | None:
    """The reason a RIFF/WAVE file is cut short, or None when its data chunk is complete.

    libsndfile silently decodes whatever bytes are present, so a recording cut off by a crashed
    recorder or a failed copy would otherwise look like a shorter, valid call.
    """
    size = path.stat().st_size
    with path.open("rb") as handle:
        header = handle.read(12)
        if len(header) < 12 or header[:4] not in (b"RIFF", b"RF64") or header[8:12] != b"WAVE":
            return None
        if header[:4] == b"RF64":
            return None  # 64-bit sizes live in a ds64 chunk; libsndfile checks those itself
        offset = 12
        while offset + 8 <= size:
            handle.seek(offset)
            chunk_id, chunk_size = struct.unpack("<4sI", handle.read(8))
            if chunk_id == b"data":
                available = size - offset - 8
                # 0 and 0xFFFFFFFF mean "unknown length" (a recorder that never closed the file).
                if chunk_size in (0, 0xFFFFFFFF):
                    return None
                if available < chunk_size:
                    return (
                        f"truncated WAV: the header declares {chunk_size} bytes of audio "
                        f"but only {available} are present"
                    )
                return None
            offset += 8 + chunk_size + (chunk_size & 1)
    return "truncated WAV: no audio data chunk"
