"""Customers' personal data: found however Whisper writes it, masked everywhere, never 工号 or amounts.

The texts below are written the way faster-whisper base writes numbers read on a telephone line
(seen on the sample calls and sample_calls/personal_data/): numerals, 幺, digits, groups with
pauses, dashes, a digit heard as a character, a number over two turns, corrections.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

from qa_audio.redact import load_personal_data_rules, redact_call, redact_text
from qa_audio.redact.audio import cover_with_tone, tone_intervals, write_redacted_audio
from qa_audio.redact.detect import id_card_valid, luhn_valid
from qa_audio.redact.rules import ToneSettings
from qa_audio.rule_files import RuleFileError
from qa_audio.schema import PersonalDataPart, PersonalDataSpan, Transcript, Turn, Word
from qa_audio.speech.asr import DroppedText
from tests.helpers import ROOT, SAMPLE_CALLS, edit


@pytest.fixture(scope="module")
def shipped():
    return load_personal_data_rules()


@pytest.mark.parametrize(("heard", "masked", "kind"), [
    ("正好就是我的手机号，一三七一二三四五六七八，", "正好就是我的手机号，137****5678，", "mobile"),
    ("我的号码是幺三七 一二三四 五六七八", "我的号码是137 **** 5678", "mobile"),
    ("一三七，一二三四，五六七八。", "137，****，5678。", "mobile"),
    ("手机13712345678", "手机137****5678", "mobile"),
    ("一三七散二三四五六七八", "137****5678", "mobile"),  # 散 heard for 三 between digits
    ("身份证号是11010519491231002X", "身份证号是**************002X", "id_card"),
    ("身份证一一零一零五一九四九一二三一零零二叉", "身份证**************002X", "id_card"),
    ("卡号6222 0212 3456 7890 128", "卡号**** **** **** ***0 128", "bank_card"),
    ("座机是零五七一八八二三四五六七", "座机是********4567", "landline"),
    ("后码是139-127-583。", "后码是***-***-***。", "number"),  # digits lost: still a long number
    ("订单号是二零二六一二零一零零一二三", "订单号是*************", "number"),
    ("我的邮箱是zhangwei88@qq.com", "我的邮箱是z*********@qq.com", "email"),
    ("我叫王建国，", "我叫***，", "name"),
    ("免贵姓李", "免贵姓*", "name"),
    ("地址是杭州市西湖区文三路一百号。", "地址是************。", "address"),
    ("地指示航中室西湖区闻三步一百八十八号，", "地指示***************，", "address"),  # 地址是 as heard
    ("请问您的手机号码是177-065", "请问您的手机号码是***-***", "mobile"),  # digits lost, after a cue
    ("卡号尾号2386的那张", "卡号尾号****的那张", "bank_card"),
    ("身份证最后四位是零一三叉", "身份证最后四位是****", "id_card"),
])
def test_found_and_masked_as_whisper_writes_it(shipped, heard, masked, kind):
    text, spans = redact_text(heard, shipped)
    assert text == masked
    assert [s.type for s in spans] == [kind]
    assert len(text) == len(heard)  # masks keep every character's place


@pytest.mark.parametrize("ordinary", [
    "您好！星河通信，工号一零二四为您服务，请问有什么可以帮您？",
    "您好，心和通信，功耗五一七三位您服务",
    "您这个月的话费是二百九十八元，套餐是一百二十八元的",
    "二零二六年十二月一日生效，下午三点之前",
    "这个星期已经断了三次了，两笔订单",
    "费用是12800000元",
    "五G套餐每个月送三十G流量",
    "我一三七的号段",  # three digits are not a number worth hiding
])
def test_ordinary_numbers_are_never_masked(shipped, ordinary):
    text, spans = redact_text(ordinary, shipped)
    assert (text, spans) == (ordinary, [])


def test_a_correction_is_masked_with_the_number_it_corrects(shipped):
    text, spans = redact_text("一三七一二三四五六七九，不对，是五六七八", shipped)
    assert text == "137****5679，不对，是****"
    assert [(s.type, s.basis) for s in spans] == [("mobile", "pattern"), ("mobile", "correction")]


def test_a_correction_of_the_last_digits(shipped):
    # as heard on pd08: a digit of the mobile number lost, so it is only a long number
    text, spans = redact_text("136-712-0883，不对，最后四位是0889", shipped)
    assert text == "***-***-****，不对，最后四位是****"  # 四 of 四位 is a count, not a digit of it
    assert [(s.type, s.basis) for s in spans] == [("number", "length"), ("number", "correction")]


@pytest.mark.parametrize(("heard", "masked"), [("我姓王，三横一竖王。", "我姓*，*****。"),
                                               ("免贵信城，耳东城，", "免贵信*，***，"),  # 免贵姓陈 as heard
                                               ("我姓王，今天打电话", "我姓*，今天打电话")])
def test_a_surname_spelled_out_is_masked_with_it(shipped, heard, masked):
    assert redact_text(heard, shipped)[0] == masked


def test_two_numbers_in_one_breath_are_two_spans(shipped):
    text, spans = redact_text("手机号13712345678，身份证11010519491231002X", shipped)
    assert text == "手机号137****5678，身份证**************002X"
    assert [s.type for s in spans] == ["mobile", "id_card"]


def test_names_and_addresses_only_in_the_customers_words(shipped):
    assert redact_text("我叫小王，很高兴为您服务", shipped, role="agent") == ("我叫小王，很高兴为您服务", [])


def test_checksums():
    assert id_card_valid("11010519491231002X")
    assert not id_card_valid("110105194912310021")
    assert luhn_valid("4111111111111111") and luhn_valid("6222021234567890128")
    assert not luhn_valid("6222021234567890127")


def _words(text: str, start: float, step: float = 0.25) -> list[Word]:
    return [Word(round(start + i * step, 3), round(start + (i + 1) * step, 3), ch, 0.9) for i, ch in enumerate(text)]


def _turn(speaker: str, role: str, text: str, start: float) -> Turn:
    words = _words(text, start)
    return Turn(speaker, role, words[0].start, words[-1].end, text, words)


def test_a_number_read_over_two_turns_is_one_span_and_every_word_is_masked(shipped):
    turns = [_turn("CH1", "customer", "号码是一三七一二三四", 10.0),
             _turn("CH0", "agent", "嗯", 13.0),
             _turn("CH1", "customer", "五六七八。", 14.0)]
    transcript = Transcript(duration=20.0, turns=turns, speech=[], roles={"CH0": "agent", "CH1": "customer"})
    masked, _, spans = redact_call(transcript, [], shipped)
    # read over two turns, so no digit is kept: which digits are whose would be a guess
    assert [t.text for t in masked.turns] == ["号码是*******", "嗯", "****。"]
    assert ["".join(w.text for w in t.words) for t in masked.turns] == [t.text for t in masked.turns]
    [span] = spans
    assert (span.type, span.mask, span.role) == ("mobile", "*" * 11, "customer")
    assert [(p.index, p.char_start, p.char_end) for p in span.parts] == [(0, 3, 10), (2, 0, 4)]
    # the times are the words': 一 is the 4th character (10.75 s), 八 the 4th of the last turn (15.0 s)
    assert (span.parts[0].start, span.parts[1].end) == (10.75, 15.0)
    assert all(p.text is None for p in span.parts)  # originals kept nowhere by default


def test_digits_the_diarizer_gave_to_the_other_speaker_go_with_the_number(shipped):
    # pd05 as heard: the customer's first digits in the agent's turn, the rest after the agent's 好的
    turns = [_turn("SPEAKER_00", "agent", "请问您的手机号码是177-065案", 12.0),
             _turn("SPEAKER_01", "customer", "好的，1384您", 19.0),
             _turn("SPEAKER_00", "agent", "这个月多了三笔业务", 22.0)]
    transcript = Transcript(duration=30.0, turns=turns, speech=[],
                            roles={"SPEAKER_00": "agent", "SPEAKER_01": "customer"})
    masked, _, spans = redact_call(transcript, [], shipped)
    assert [t.text for t in masked.turns] == ["请问您的手机号码是***-***案", "好的，****您", "这个月多了三笔业务"]
    assert [(s.type, s.basis) for s in spans] == [("mobile", "cue+length"), ("mobile", "read with a number")]


def test_a_turn_that_starts_with_one_is_not_a_continuation(shipped):
    # pd08 as heard: 移机 written 一拘 right after the customer's correction
    turns = [_turn("CH1", "customer", "最后四位是0889", 23.0), _turn("CH1", "customer", "一拘要多少钱？", 30.0)]
    transcript = Transcript(duration=40.0, turns=turns, speech=[], roles={"CH1": "customer"})
    masked, _, _ = redact_call(transcript, [], shipped)
    assert [t.text for t in masked.turns] == ["最后四位是****", "一拘要多少钱？"]


def test_dropped_texts_are_masked_too(shipped):
    transcript = Transcript(duration=20.0, turns=[], speech=[], roles={"CH1": "customer"})
    dropped = [("CH1", DroppedText(2.0, 4.0, "一三七一二三四五六七八一三七一二三四五六七八", "repetition"))]
    _, masked, spans = redact_call(transcript, dropped, shipped)
    assert masked[0][1].text == "*" * 22  # two numbers run together: no type fits, all of it is hidden
    assert (spans[0].type, spans[0].parts[0].where) == ("number", "dropped")


def test_keep_originals_keeps_them_only_in_the_spans(rules):
    edit(rules / "personal_data.yaml", "keep_originals: false", "keep_originals: true")
    kept = load_personal_data_rules(rules)
    text, [span] = redact_text("手机号一三七一二三四五六七八", kept)
    assert text == "手机号137****5678"
    assert span.parts[0].text == "一三七一二三四五六七八"


@pytest.mark.parametrize(("old", "new", "says"), [
    ("pattern: '^0\\d{9,11}$'", "pattern: '^0\\d{9,11$('", "not a valid regular expression"),
    ("    check: luhn", "    check: crc32", "'check' must be one of"),
    ('mask_char: "*"', 'mask_char: "**"', "one character"),
    ("max_separator_chars: 2", "max_separator_chars: 2\nmax_separators: 3", "unknown key 'max_separators'"),
    ('  "9": [九, 勾]', '  9: [九, 勾]', 'in quotes'),
    ("  \"2\": [尔, 而, 耳, 贰]", "  \"2\": [尔, 而, 耳, 二]", "both as a digit and as misheard"),
    ("    roles: [customer]\n    cues: [我叫", "    roles: [caller]\n    cues: [我叫", "agent and/or customer"),
])
def test_a_malformed_rules_file_is_refused_with_file_and_line(rules, old, new, says):
    line = edit(rules / "personal_data.yaml", old, new)
    with pytest.raises(RuleFileError) as caught:
        load_personal_data_rules(rules)
    assert caught.value.path.name == "personal_data.yaml" and says in caught.value.reason
    if "both as a digit" not in says:
        assert caught.value.line in (line, line + 1)


def test_the_tone_covers_the_padded_parts_and_nothing_else():
    spans = [_span([(1.0, 2.0), (2.1, 2.5)]), _span([(5.0, 5.5)])]
    assert tone_intervals(spans, 0.15, 10.0) == [(0.85, 2.65), (4.85, 5.65)]
    rate = 8000
    samples = np.full((rate * 10, 2), 0.3, dtype=np.float32)
    out = cover_with_tone(samples, rate, [(1.0, 2.0)], ToneSettings(1000.0, -20.0, 0.15))
    assert np.all(out[: rate] == 0.3) and np.all(out[2 * rate + 1:] == 0.3)
    middle = out[int(1.2 * rate):int(1.8 * rate), 0]
    spectrum = np.abs(np.fft.rfft(middle))
    assert abs(np.argmax(spectrum) * rate / len(middle) - 1000) < 5
    assert np.allclose(out[int(1.2 * rate):int(1.8 * rate), 0], out[int(1.2 * rate):int(1.8 * rate), 1])


def _span(parts: list[tuple[float, float]]) -> PersonalDataSpan:
    return PersonalDataSpan("mobile", "customer", "CH1", parts[0][0], parts[-1][1], "137****5678", 1.0, "pattern",
                            tuple(PersonalDataPart("turns", 0, 0, 11, s, e) for s, e in parts))


@pytest.mark.parametrize(("name", "suffix"), [("call05_forbidden_severe_stereo.wav", ".wav"),
                                              ("call06_customer_unsure.flac", ".flac")])
def test_a_redacted_copy_keeps_the_input_format(tmp_path, name, suffix):
    source = SAMPLE_CALLS / name
    target = tmp_path / f"copy{suffix}"
    write_redacted_audio(source, target, [_span([(10.0, 12.0)])], ToneSettings(1000.0, -20.0, 0.15))
    before, after = soundfile.info(str(source)), soundfile.info(str(target))
    assert (after.format, after.subtype, after.samplerate, after.channels, after.frames) == \
        (before.format, before.subtype, before.samplerate, before.channels, before.frames)
    a, rate = soundfile.read(str(source), always_2d=True)
    b, _ = soundfile.read(str(target), always_2d=True)
    changed = np.flatnonzero(np.abs(a - b).max(axis=1) > 0.02) / rate
    assert changed.min() >= 9.84 and changed.max() <= 12.16 and changed.size > rate
    assert not list(tmp_path.glob(".copy*"))  # no temporary file left behind


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "qa_audio", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=120)


def test_redact_audio_refuses_what_it_cannot_write_in_the_input_format(tmp_path):
    source = tmp_path / "call.wav"
    shutil.copy(SAMPLE_CALLS / "call05_forbidden_severe_stereo.wav", source)
    other = _cli("redact-audio", str(source), str(tmp_path / "out.flac"), cwd=ROOT)
    assert other.returncode == 3 and "extension .wav" in other.stderr and len(other.stderr.splitlines()) == 1
    same = _cli("redact-audio", str(source), str(source), cwd=ROOT)
    assert same.returncode == 3 and "is the input recording" in same.stderr
    wrong = tmp_path / "other.json"
    wrong.write_text(json.dumps({"audio": {"duration": 12.0}, "personal_data": []}), encoding="utf-8")
    mismatch = _cli("redact-audio", str(source), str(tmp_path / "out.wav"), "--from-json", str(wrong), cwd=ROOT)
    assert mismatch.returncode == 2 and "not of this 58.07-s one" in mismatch.stderr
    assert not (tmp_path / "out.wav").exists()


def test_redact_audio_from_a_saved_analysis(tmp_path):
    source = SAMPLE_CALLS / "call05_forbidden_severe_stereo.wav"
    saved = tmp_path / "call05.json"
    span = _span([(19.1, 21.2)]).to_dict()
    saved.write_text(json.dumps({"audio": {"duration": 58.07}, "personal_data": [span]}), encoding="utf-8")
    done = _cli("redact-audio", str(source), str(tmp_path / "out.wav"), "--from-json", str(saved), cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert "手机号 1 处" in done.stderr
    a, rate = soundfile.read(str(source), always_2d=True)
    b, _ = soundfile.read(str(tmp_path / "out.wav"), always_2d=True)
    changed = np.flatnonzero(np.abs(a - b).max(axis=1) > 0.02) / rate
    assert changed.min() >= 18.9 and changed.max() <= 21.4
