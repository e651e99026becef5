"""Hostile or careless input: each gets one line naming the file and the problem, and a documented exit
code, and nothing is written outside the paths the user gave."""

from __future__ import annotations

import os
import shutil
import socket
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import soundfile
from typer.testing import CliRunner

from qa_audio.audio import AudioError, load_audio, long_recording_warning, probe_long_recording
from qa_audio.cli.common import EXIT_BAD_INPUT, EXIT_BAD_SETUP, one_line
from qa_audio.cli.main import app, output_problem
from qa_audio.rule_files import DEFAULT_RULES_DIR, RuleFileError
from tests.helpers import REAL_SPEECH, ROOT, edit

SPEECH = REAL_SPEECH / "rapidasr_asr_example_zh.wav"


@pytest.fixture
def recording(tmp_path: Path) -> Path:
    """A short real call, as a WAV the user would pass to ``analyze``."""
    path = tmp_path / "v.wav"
    shutil.copyfile(SPEECH, path)
    return path


@pytest.fixture
def no_analysis(monkeypatch):
    """``analyze`` must refuse before the models load: building the Analyzer fails the test."""
    import qa_audio.pipeline

    def refuse(*args, **kwargs):
        raise AssertionError("the Analyzer was built: the refusal came too late")

    monkeypatch.setattr(qa_audio.pipeline, "Analyzer", refuse)


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip()]


# -- 1. -o that would overwrite the recording, is a folder, or lies in a missing folder ------------


def test_output_problem_names_each_bad_output_path(tmp_path: Path, recording: Path) -> None:
    link = tmp_path / "hard.wav"
    os.link(recording, link)
    symlink = tmp_path / "sym.wav"
    symlink.symlink_to(recording)
    assert "input recording" in output_problem(recording, recording)
    assert "input recording" in output_problem(link, recording)  # same inode, other name
    assert "input recording" in output_problem(symlink, recording)
    assert "input recording" in output_problem(tmp_path / "x" / ".." / "v.wav", recording)
    missing = tmp_path / "missing.wav"
    assert "input recording" in output_problem(missing, missing)  # same resolved path, not there yet
    assert "is a directory" in output_problem(tmp_path, recording)
    assert "does not exist" in output_problem(tmp_path / "no_such_folder" / "out.json", recording)
    assert output_problem(tmp_path / "out.json", recording) is None
    assert output_problem(Path("relative-out.json"), recording) is None  # the working folder


@pytest.mark.parametrize("case", ["same", "relative", "directory", "missing_folder"])
def test_analyze_refuses_a_bad_output_before_anything_is_decoded(tmp_path, recording, no_analysis, monkeypatch,
                                                                 case) -> None:
    monkeypatch.chdir(tmp_path)
    output = {"same": str(recording), "relative": "./v.wav", "directory": str(tmp_path),
              "missing_folder": str(tmp_path / "reports" / "v.json")}[case]
    before = recording.read_bytes()
    result = CliRunner().invoke(app, ["analyze", str(recording), "-o", output, "-q"])
    assert result.exit_code == EXIT_BAD_SETUP, (result.output, result.exception)
    lines = _error_lines(result.stderr)
    assert len(lines) == 1 and lines[0].startswith(f"qa-audio: error: {Path(output)}: "), lines
    assert recording.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.wav"]


def test_analyze_o_input_leaves_the_recording_intact(recording: Path) -> None:
    """The reported case, through the installed entry point: ``qa-audio analyze v.wav -o v.wav``."""
    before = recording.read_bytes()
    result = subprocess.run([sys.executable, "-m", "qa_audio", "analyze", str(recording), "-o", str(recording)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == EXIT_BAD_SETUP, result.stderr
    assert _error_lines(result.stderr) == [f"qa-audio: error: {recording}: is the input recording; "
                                           "give another path for the report"]
    assert recording.read_bytes() == before


# -- 2. FIFOs, sockets and devices are not recordings, and are never opened ----------------------


def test_fifo_is_reported_not_opened(tmp_path: Path) -> None:
    fifo = tmp_path / "call.wav"
    os.mkfifo(fifo)
    with pytest.raises(AudioError) as caught:
        load_audio(fifo)  # opening it would block until a writer came
    assert str(caught.value) == f"{fifo}: not a regular file (a FIFO/named pipe); qa-audio reads recordings " \
                                "saved as files"
    assert probe_long_recording(fifo) is None  # the warning probe does not open it either


def test_socket_is_reported_as_a_socket(tmp_path: Path) -> None:
    path = tmp_path / "call.wav"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        server.bind(str(path))
        with pytest.raises(AudioError, match=r"not a regular file \(a socket\)"):
            load_audio(path)
    finally:
        server.close()


def test_device_is_reported_as_a_device() -> None:
    with pytest.raises(AudioError, match=r"^/dev/null: not a regular file \(a device\)"):
        load_audio("/dev/null")


# -- 3. a cut OGG/Vorbis is truncated, not a shorter call ----------------------------------------


@pytest.fixture(scope="module")
def whole_ogg(tmp_path_factory) -> Path:
    samples, rate = soundfile.read(SPEECH, dtype="float32")
    path = tmp_path_factory.mktemp("ogg") / "call.ogg"
    soundfile.write(path, samples[: 4 * rate], rate, format="OGG", subtype="VORBIS")
    return path


def test_whole_ogg_still_loads(whole_ogg: Path) -> None:
    assert abs(load_audio(whole_ogg).duration - 4.0) < 0.01


@pytest.mark.parametrize("fraction", [0.2, 0.5, 0.97])
def test_cut_ogg_is_reported_truncated(tmp_path: Path, whole_ogg: Path, fraction: float) -> None:
    data = whole_ogg.read_bytes()
    cut = tmp_path / "cut.ogg"
    cut.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(AudioError) as caught:
        load_audio(cut)
    message = str(caught.value)
    assert message.startswith(f"{cut}: truncated OGG: the stream ends without its last page (cut at "), message
    heard = float(message.rsplit("cut at ", 1)[1].split(" s")[0])
    assert heard < 4.0 * fraction + 0.5


def test_ogg_cut_at_a_page_boundary_is_truncated(tmp_path: Path, whole_ogg: Path) -> None:
    """Cut between two pages (no page ends mid-way): only the missing end-of-stream flag tells."""
    data = whole_ogg.read_bytes()
    last_page = data.rindex(b"OggS")
    cut = tmp_path / "cut.ogg"
    cut.write_bytes(data[:last_page])
    with pytest.raises(AudioError, match="truncated OGG"):
        load_audio(cut)


# -- 4. jieba's cache stays in qa-audio's private folder -----------------------------------------

_MATCH_SCRIPT = textwrap.dedent("""
    from qa_audio.phrase_match import Heard, MatchSettings, PhraseIndex, compile_phrase
    settings = MatchSettings()
    index = PhraseIndex([compile_phrase("请", "politeness", settings)], settings)
    inside = index.find(Heard.from_pieces("agent", [("我想申请退款", 0.0, 2.0)]))
    start = index.find(Heard.from_pieces("agent", [("请稍等", 0.0, 1.0)]))
    print(len(inside), len(start))
""")


def _run_matching(tmpdir: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QA_AUDIO_")}
    env["TMPDIR"] = str(tmpdir)
    return subprocess.run([sys.executable, "-c", _MATCH_SCRIPT], capture_output=True, text=True, timeout=120,
                          cwd=ROOT, env=env)


def test_jieba_leaves_nothing_in_tmpdir(tmp_path: Path) -> None:
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    result = _run_matching(tmpdir)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["0", "1"]  # jieba ran: 请 inside 申请 is not a word start
    assert list(tmpdir.iterdir()) == []


@pytest.mark.parametrize("planted", ["garbage", "poisoned"])
def test_jieba_never_reads_a_cache_planted_in_tmpdir(tmp_path: Path, planted: str) -> None:
    import marshal

    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    # "poisoned": a well-formed cache whose dictionary splits every text into single characters,
    # which would put a word start on 请 inside 申请.
    content = b"\x00garbage\xff" * 100 if planted == "garbage" else marshal.dumps(({"x": 1}, 1))
    (tmpdir / "jieba.cache").write_bytes(content)
    result = _run_matching(tmpdir)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["0", "1"]
    assert [p.name for p in tmpdir.iterdir()] == ["jieba.cache"]
    assert (tmpdir / "jieba.cache").read_bytes() == content  # neither read (and replaced) nor added to


def test_private_folder_is_private_and_shared_with_workers(tmp_path: Path) -> None:
    script = textwrap.dedent("""
        import os, stat, subprocess, sys
        from qa_audio.privacy import private_folder
        folder = private_folder()
        assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700
        child = subprocess.run([sys.executable, "-c",
                                "from qa_audio.privacy import private_folder; print(private_folder())"],
                               capture_output=True, text=True, check=True).stdout.strip()
        print(folder == child == private_folder())
    """)
    env = {k: v for k, v in os.environ.items() if not k.startswith("QA_AUDIO_")}
    env["TMPDIR"] = str(tmp_path)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                            cwd=ROOT, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True"
    assert list(tmp_path.iterdir()) == []  # removed when the process that made it ended


# -- 5. rule files: one-character forbidden phrases, unknown keys ---------------------------------


@pytest.mark.parametrize("entry", ["好", "{phrase: 好}", "好！"])
def test_one_character_forbidden_phrase_is_refused(rules: Path, entry: str) -> None:
    from qa_audio.checks.rulebook import load_rulebook

    line = edit(rules / "forbidden_phrases.yaml", "    - 我不清楚\n", f"    - 我不清楚\n    - {entry}\n") + 1
    with pytest.raises(RuleFileError) as caught:
        load_rulebook(rules)
    err = caught.value
    assert (err.path.name, err.line) == ("forbidden_phrases.yaml", line)
    assert "at least 2 characters" in err.reason and "single syllable" in err.reason
    assert f"forbidden_phrases.yaml:{line}: " in str(err)


def test_shipped_forbidden_file_states_the_minimum() -> None:
    header = (DEFAULT_RULES_DIR / "forbidden_phrases.yaml").read_text(encoding="utf-8").split("type:")[0]
    assert "at least 2 characters" in header


@pytest.mark.parametrize(
    ("old", "new", "key"),
    [
        ("speech_rate:\n", "speech_rates:\n  min_chars: 6\nspeech_rate:\n", "speech_rates"),  # top level
        ("  pitch_fmin_hz: 65", "  pitch_fmin_Hz: 65", "pitch_fmin_Hz"),  # in a section
        ("  min_arousal: 1.0", "  min_arousal: 1.0\n  max_arousal: 3.0", "max_arousal"),
    ],
)
def test_unknown_key_in_acoustic_yaml(rules: Path, old: str, new: str, key: str) -> None:
    from qa_audio.acoustic.bands import load_acoustic_bands

    line = edit(rules / "acoustic.yaml", old, new)
    if key == "max_arousal":
        line += 1
    with pytest.raises(RuleFileError) as caught:
        load_acoustic_bands(rules)
    assert (caught.value.path.name, caught.value.line) == ("acoustic.yaml", line)
    assert f"unknown key {key!r}" in caught.value.reason


def test_unknown_top_level_key_in_rubric_yaml(rules: Path) -> None:
    from qa_audio.rubric.sheet import load_rubric

    line = edit(rules / "rubric.yaml", "needs_review_below: 0.7\n", "needs_review_bellow: 0.7\n")
    with pytest.raises(RuleFileError) as caught:
        load_rubric(rules)
    assert (caught.value.path.name, caught.value.line) == ("rubric.yaml", line)
    assert "unknown key 'needs_review_bellow'" in caught.value.reason


@pytest.mark.parametrize(
    ("old", "new", "key"),
    [
        ("saturation: 6\n", "saturaton: 6\nsaturation: 6\n", "saturaton"),
        ("  - phrase: 为您服务\n    weight: 3\n", "  - phrase: 为您服务\n    wieght: 3\n    weight: 3\n", "wieght"),
    ],
)
def test_unknown_key_in_roles_yaml(rules: Path, old: str, new: str, key: str) -> None:
    from qa_audio.speech.roles import load_role_cues

    line = edit(rules / "roles.yaml", old, new) + (1 if key == "wieght" else 0)
    with pytest.raises(RuleFileError) as caught:
        load_role_cues(rules)
    assert (caught.value.path.name, caught.value.line) == ("roles.yaml", line)
    assert f"unknown key {key!r}" in caught.value.reason


def test_shipped_acoustic_rubric_and_roles_still_load() -> None:
    from qa_audio.acoustic.bands import load_acoustic_bands
    from qa_audio.rubric.sheet import load_rubric
    from qa_audio.speech.roles import load_role_cues

    load_acoustic_bands()
    load_rubric()
    load_role_cues()


# -- 6. control characters in a file name never reach the terminal raw ----------------------------


def test_one_line_escapes_control_characters() -> None:
    assert one_line("a\nb\x1b[31m.wav\r\t\u2028\u202e: 没有") == "a\\nb\\x1b[31m.wav\\r\\t\\u2028\\u202e: 没有"
    assert one_line("calls/0612.wav: truncated WAV") == "calls/0612.wav: truncated WAV"


def test_missing_file_with_newline_and_escape_codes_in_its_name(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["analyze", "a\nb\x1b[31m.wav", "-q"])
    assert result.exit_code == EXIT_BAD_INPUT, (result.output, result.exception)
    assert result.stderr == "qa-audio: error: a\\nb\\x1b[31m.wav: no such file\n"
    assert "\x1b" not in result.output


# -- 7. a recording far longer than a call is analysed, with a warning ----------------------------


def test_long_recording_warning_threshold() -> None:
    assert long_recording_warning("shift.wav", 3600.0) is None
    assert long_recording_warning("call.wav", 180.0) is None
    warning = long_recording_warning("shift.wav", 2 * 3600.0)
    assert warning.startswith("shift.wav: a long recording (2.0 h") and "\n" not in warning
    assert "about 16 min" in warning  # 7200 s at the measured RTF 0.133


def _sparse_wav(path: Path, seconds: int, rate: int = 8000) -> Path:
    """A 16-bit mono WAV whose header declares ``seconds`` of audio; the data is a sparse hole."""
    data_bytes = seconds * rate * 2
    header = struct.pack("<4sI4s4sIHHIIHH4sI", b"RIFF", 36 + data_bytes, b"WAVE", b"fmt ", 16, 1, 1, rate,
                         rate * 2, 2, 16, b"data", data_bytes)
    with path.open("wb") as handle:
        handle.write(header)
        handle.truncate(len(header) + data_bytes)
    return path


def test_long_recording_is_warned_about_from_the_header(tmp_path: Path) -> None:
    long_file = _sparse_wav(tmp_path / "shift.wav", 61 * 60)
    short_file = _sparse_wav(tmp_path / "call.wav", 3 * 60)
    warning = probe_long_recording(long_file)
    assert warning is not None and "a long recording (1.0 h" in warning
    assert probe_long_recording(short_file) is None
    assert probe_long_recording(tmp_path / "missing.wav") is None  # load_audio reports that


def test_analyze_warns_before_analysing_a_long_recording(tmp_path: Path, monkeypatch) -> None:
    import qa_audio.pipeline

    class Stop(qa_audio.pipeline.Analyzer):
        def analyze(self, path, progress=None):
            raise AudioError(path, "stopped by the test")

    monkeypatch.setattr(qa_audio.pipeline, "Analyzer", Stop)
    long_file = _sparse_wav(tmp_path / "shift.wav", 61 * 60)
    result = CliRunner().invoke(app, ["analyze", str(long_file), "-q"])
    assert result.exit_code == EXIT_BAD_INPUT
    lines = _error_lines(result.stderr)
    assert lines[0].startswith(f"qa-audio: warning: {long_file}: a long recording (1.0 h"), lines
    assert lines[1] == f"qa-audio: error: {long_file}: stopped by the test"

