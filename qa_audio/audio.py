"""Decoding a call recording into 16 kHz float channels, or saying exactly what is wrong with it.

Call-centre archives hold WAV (PCM, float, G.711 mu-law/A-law), FLAC, MP3 and OGG at 8 to 48 kHz,
mono or stereo (one party per channel). Everything is decoded with libsndfile (the ``soundfile``
wheel bundles a build with MP3 and Vorbis) and resampled with soxr to the 16 kHz the models want.

Bad input is the normal case in a nightly batch, so every failure is an :class:`AudioError` whose
message is one line naming the file and the problem.
"""

from __future__ import annotations

import os
import stat
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
# Longer than this is not one call (a whole shift, a recorder left running): analysed, with a warning.
LONG_RECORDING_S = 3600.0
# Seconds of analysis per second of audio on 2 CPU cores: the median over the sample calls, mono
# and stereo (README, "7.9x real time (median RTF 0.133)").
ANALYSIS_RTF = 0.133


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
    size = _regular_file_size(path)
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
    if info.format == "OGG":
        problem = _ogg_truncation(path, 48_000 if info.subtype == "OPUS" else info.samplerate)
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


def long_recording_warning(path: Path | str, duration_s: float) -> str | None:
    """One line saying a recording is far longer than a call and how long it will take, or None."""
    if duration_s <= LONG_RECORDING_S:
        return None
    minutes = duration_s * ANALYSIS_RTF / 60
    return (f"{path}: a long recording ({duration_s / 3600:.1f} h, not one call?); analysing it takes "
            f"about {minutes:.0f} min on 2 CPU cores")


def probe_long_recording(path: Path | str) -> str | None:
    """:func:`long_recording_warning` from the file's header alone (nothing decoded), or None.

    Anything wrong with the file is left to :func:`load_audio`, which says what it is; a path that
    is not a regular file is not opened (a FIFO would block).
    """
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return None
        info = soundfile.info(str(path))
    except Exception:  # noqa: BLE001 - load_audio reports the problem properly
        return None
    if info.samplerate <= 0 or info.frames <= 0:
        return None
    return long_recording_warning(path, info.frames / info.samplerate)


def _regular_file_size(path: Path) -> int:
    """The size of ``path``, or :class:`AudioError` when it is missing or not a regular file.

    Checked with ``stat`` before anything opens the path: opening a FIFO blocks until a writer
    comes, and a socket or device would otherwise be reported as an empty file.
    """
    try:
        status = os.stat(path)
    except (FileNotFoundError, NotADirectoryError) as exc:
        raise AudioError(path, "no such file") from exc
    except OSError as exc:
        raise AudioError(path, f"cannot read: {exc.strerror or exc}") from exc
    mode = status.st_mode
    if stat.S_ISREG(mode):
        return status.st_size
    if stat.S_ISDIR(mode):
        raise AudioError(path, "is a directory, not an audio file")
    if stat.S_ISFIFO(mode):
        kind = "a FIFO/named pipe"
    elif stat.S_ISSOCK(mode):
        kind = "a socket"
    elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        kind = "a device"
    else:
        kind = "not a file"
    raise AudioError(path, f"not a regular file ({kind}); qa-audio reads recordings saved as files")


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


_OGG_PAGE_HEADER = struct.Struct("<4sBBqIIIB")
"""capture pattern, version, header type, granule position, serial, page number, CRC, segment count"""
_OGG_EOS = 0x04


def _ogg_truncation(path: Path, granule_rate: int) -> str | None:
    """The reason an Ogg file is cut short, or None when every logical stream ends with its last page.

    libsndfile decodes the complete pages and stops without an error, so a cut OGG/Vorbis file
    would pass for a shorter call. Each Ogg page starts with "OggS" and a 27-byte header whose
    segment table gives the page's length, so the pages can be walked without decoding; the last
    page of a stream carries the end-of-stream flag. ``granule_rate`` converts the granule position
    (samples decoded so far) to seconds for the message.
    """
    size = path.stat().st_size
    open_streams: set[int] = set()
    heard_s = 0.0
    offset = 0
    with path.open("rb") as handle:
        while offset < size:
            handle.seek(offset)
            header = handle.read(_OGG_PAGE_HEADER.size)
            if len(header) < _OGG_PAGE_HEADER.size:
                if header and not b"OggS".startswith(header[:4]):
                    break  # trailing bytes that are not an Ogg page: not ours to judge
                return _ogg_cut(heard_s)
            capture, _version, flags, granule, serial, _page, _crc, segments = _OGG_PAGE_HEADER.unpack(header)
            if capture != b"OggS":
                if offset == 0:
                    return None  # not an Ogg container; libsndfile decides what it is
                break  # trailing bytes that are not an Ogg page: judged by the pages before them
            table = handle.read(segments)
            if len(table) < segments:
                return _ogg_cut(heard_s)
            end = offset + _OGG_PAGE_HEADER.size + segments + sum(table)
            if end > size:
                return _ogg_cut(heard_s)  # the file ends inside this page's body
            open_streams.add(serial)  # a stream begins on its BOS page; any page of it keeps it open
            if granule >= 0 and granule_rate > 0:  # -1: no packet ends on this page
                heard_s = max(heard_s, granule / granule_rate)
            if flags & _OGG_EOS:
                open_streams.discard(serial)
            offset = end
    if open_streams:
        return _ogg_cut(heard_s)
    return None


def _ogg_cut(heard_s: float) -> str:
    return f"truncated OGG: the stream ends without its last page (cut at {heard_s:.1f} s of the audio)"
