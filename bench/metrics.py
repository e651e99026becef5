"""Accuracy measures shared by the benchmarks: CER on normalised Chinese, DER with pyannote.metrics."""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
import unicodedata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_CALLS = ROOT / "sample_calls"
DIGIT_CHARS = dict(zip("0123456789", "零一二三四五六七八九", strict=True)) | {"幺": "一", "两": "二"}


def load_truths(folder: Path = SAMPLE_CALLS) -> list[dict]:
    truths = []
    for path in sorted(folder.glob("*.truth.json")):
        truth = json.loads(path.read_text(encoding="utf-8"))
        truth["audio_path"] = str(folder / truth["file"])
        truths.append(truth)
    return truths


def normalise_for_cer(text: str) -> str:
    """Characters only: no punctuation or spaces, digits read as the Chinese digits a caller says."""
    text = unicodedata.normalize("NFKC", text)
    out = []
    for ch in text:
        ch = DIGIT_CHARS.get(ch, ch)
        if ch.isalnum():
            out.append(ch.lower())
    return "".join(out)


def edit_distance(reference: str, hypothesis: str) -> int:
    previous = list(range(len(hypothesis) + 1))
    for i, r in enumerate(reference, 1):
        current = [i]
        for j, h in enumerate(hypothesis, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (r != h)))
        previous = current
    return previous[-1]


def cer(reference: str, hypothesis: str) -> float:
    ref, hyp = normalise_for_cer(reference), normalise_for_cer(hypothesis)
    return edit_distance(ref, hyp) / max(1, len(ref))


def der(reference: list[tuple[str, float, float]], hypothesis: list[tuple[str, float, float]],
        collar: float = 0.25) -> dict[str, float]:
    """DER with pyannote.metrics; ``collar`` is the total width around each reference boundary
    (pyannote's convention: collar/2 on each side is not scored)."""
    from pyannote.core import Annotation, Segment
    from pyannote.metrics.diarization import DiarizationErrorRate

    ref, hyp = Annotation(), Annotation()
    for i, (label, start, end) in enumerate(reference):
        ref[Segment(start, end), i] = label
    for i, (label, start, end) in enumerate(hypothesis):
        hyp[Segment(start, end), i] = label
    metric = DiarizationErrorRate(collar=collar, skip_overlap=False)
    parts = metric(ref, hyp, detailed=True)
    total = max(parts["total"], 1e-9)
    return {
        "der": parts["diarization error rate"],
        "missed": parts["missed detection"] / total,
        "false_alarm": parts["false alarm"] / total,
        "confusion": parts["confusion"] / total,
    }


def median(values: list[float]) -> float:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else float("nan")


# CTranslate2 picks Whisper's int8 kernels by CPU: the instruction set (AVX2, AVX-512) and the GEMM
# library (Intel MKL on Intel CPUs, oneDNN elsewhere), and oneDNN picks its own by CPU again: with
# VNNI (AVX-512 VNNI or AVX-VNNI) its int8 products add up in 32 bits, without it in 16 bits first,
# saturating. Whisper base then decodes some words differently. Measured over the 27 calls of
# bench/prescores.py (issue 14): an AMD EPYC without AVX-512 wrote h03's 我不清楚 as 我不警车; an
# AMD EPYC with AVX-512 VNNI (Zen 4) heard it, but lost h04's 谁 of 谁跟你讲的 and wrote 您好 as 您也好
# on h03 and h12 (its pre-scores hold since: speech/speech_joins.py gives 谁 back, and matching.yaml
# lets a doubted 也 through); the same Zen 4 with oneDNN held to AVX2 (ONEDNN_MAX_CPU_ISA=AVX2) gave a third
# transcript. float32 (--compute-type float32) gave the same figures on every call (each pre-score,
# each CER to the third decimal) with and without that cap and with MKL, at 1.46x the time
# (bench/compute_types.py; oneDNN's own account: "Nuances of int8 Computations" in its developer
# guide). So every figure of bench/ is a figure of one machine and one compute type, and says which.
_CT2_REPORT = re.compile(r"(Selected ISA|SGEMM backend|GEMM_S8 backend): (\w+)")
_LOAD_WHISPER = ("from faster_whisper import WhisperModel; from qa_audio import models; "
                 "WhisperModel('base', device='cpu', compute_type='int8', files=models.whisper_base_files())")
# the environment variables that move those choices (CTranslate2's and oneDNN's own)
KERNEL_OVERRIDES = ("CT2_FORCE_CPU_ISA", "CT2_USE_MKL", "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA")


def asr_machine() -> str:
    """The CPU and the kernels CTranslate2 chose for it, as CTranslate2 itself reports them when it
    loads the packaged Whisper base (in a child process: CT2_VERBOSE is read once per process)."""
    # every processor repeats the same fields: any one's will do
    cpu = {key.strip(): value.strip() for key, _, value in (line.partition(":") for line in _cpuinfo().splitlines())}
    model = cpu.get("model name", "unknown CPU")
    vnni = "VNNI" if set(cpu.get("flags", "").split()) & {"avx512_vnni", "avx_vnni"} else "no VNNI"
    run = subprocess.run([sys.executable, "-c", _LOAD_WHISPER], cwd=ROOT, capture_output=True, text=True,
                         env={**os.environ, "CT2_VERBOSE": "1"}, timeout=300, check=False)
    chosen = dict(_CT2_REPORT.findall(run.stderr))
    import ctranslate2

    kernels = (f"ISA {chosen.get('Selected ISA', '?')}, float32 GEMM {chosen.get('SGEMM backend', '?')}, "
               f"int8 GEMM {chosen.get('GEMM_S8 backend', '?')}"
               if chosen else f"kernels not reported ({run.stderr.strip().splitlines()[-1:]})")
    overrides = [f"{name}={os.environ[name]}" for name in KERNEL_OVERRIDES if name in os.environ]
    return (f"{model} ({vnni}), {os.cpu_count()} cores; CTranslate2 {ctranslate2.__version__}: {kernels}"
            + (f"; set: {' '.join(overrides)}" if overrides else ""))


def _cpuinfo() -> str:
    try:
        return Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:  # not Linux
        import platform

        return f"model name: {platform.processor() or platform.machine()}"
