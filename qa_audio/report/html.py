"""``--format html``: one self-contained page an inspector reads (Chinese).

The page holds the pre-filled sheet with its evidence, a timeline picture of the call (who speaks
when, dead air, talk-over, 服务忌语), the transcript by role, and the recording itself. Every time
in it is a link that seeks the player. Everything is inline (CSS, JS, SVG, the audio as a base64
``data:`` URI): the page makes no request, so no call data leaves the machine when it is opened.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any

from qa_audio.labels import (
    FLAG_NAMES,
    ROLE_NAMES,
    STATUS_NAMES,
    UNINTELLIGIBLE,
    describe_opening,
    describe_personal_data,
    describe_vocabulary,
    format_time,
)
from qa_audio.pipeline import CallAnalysis
from qa_audio.redact.audio import BROWSER_WAV_SUBTYPES, redacted_audio_bytes
from qa_audio.redact.rules import ToneSettings
from qa_audio.schema import (
    Finding,
    ForbiddenPhraseDetails,
    InterruptionDetails,
    RubricResult,
    SilenceDetails,
    Transcript,
)

MIME_BY_SUFFIX = {".wav": "audio/wav", ".flac": "audio/flac", ".mp3": "audio/mpeg", ".ogg": "audio/ogg"}
MIME_BY_FORMAT = {"WAV": "audio/wav", "WAVEX": "audio/wav", "FLAC": "audio/flac", "MP3": "audio/mpeg",
                  "OGG": "audio/ogg"}
# Timeline geometry (SVG user units): lanes for agent, customer, events.
TL_WIDTH, TL_LEFT, TL_RIGHT = 1000, 56, 12
LANE = {"agent": 22, "customer": 52, "events": 82}
LANE_H = 20


def render_html(analysis: CallAnalysis, audio_path: Path) -> str:
    """The report page for one analysed call, with the recording at ``audio_path`` embedded."""
    rubric = analysis.rubric
    duration = round(float(analysis.audio.duration or _last_time(analysis) or 1.0), 3)
    mime, payload = _audio_payload(Path(audio_path), analysis)
    title = f"通话质检报告 · {Path(audio_path).name}"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="zh-CN"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        # no external resource may load: a strict CSP makes that a guarantee, not a habit
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
        "style-src 'unsafe-inline'; script-src 'unsafe-inline'; media-src data:; img-src data:\">",
        f"<title>{_e(title)}</title><style>{CSS}</style></head><body>",
        f"<header><h1>{_e(title)}</h1>{_header_facts(analysis, duration)}</header>",
        f'<section class="player"><audio id="player" controls preload="auto" src="data:{mime};base64,{payload}">'
        "</audio></section>",
        f"<section><h2>通话时间轴</h2>{timeline_svg(analysis.transcript, analysis.findings, duration)}"
        f"{LEGEND}</section>",
        f"<section><h2>{_e(rubric.title)}（预填）</h2>{_sheet_table(rubric)}{_footer(rubric)}</section>",
        f"<section><h2>对话转写</h2>{_transcript(analysis)}</section>",
        f"<script>{PLAYER_JS.read_text(encoding='utf-8')}</script></body></html>",
    ]
    return "\n".join(parts) + "\n"


def _audio_payload(path: Path, analysis: CallAnalysis) -> tuple[str, str]:
    """(MIME type, base64) of the recording: the file's own bytes, or PCM16 WAV where browsers balk;
    with every masked span of personal data covered by the tone of ``rules/personal_data.yaml``."""
    mime = MIME_BY_SUFFIX.get(path.suffix.lower(), "audio/wav")
    spans = analysis.personal_data
    if not spans and not _browser_cannot_play(path):
        return mime, base64.b64encode(path.read_bytes()).decode("ascii")
    tone = ToneSettings(**analysis.settings["personal_data"]["audio"]) if spans else None
    data, fmt = redacted_audio_bytes(path, spans, tone, for_browser=True)
    return MIME_BY_FORMAT.get(fmt, mime), base64.b64encode(data).decode("ascii")


def _browser_cannot_play(path: Path) -> bool:
    if path.suffix.lower() != ".wav":
        return False
    import soundfile as sf

    return sf.info(str(path)).subtype not in BROWSER_WAV_SUBTYPES


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def seek_link(seconds: float, label: str | None = None) -> str:
    """A link that jumps the player to ``seconds`` (the JS reads data-t)."""
    t = round(float(seconds), 2)
    return f'<a class="seek" href="#t={t}" data-t="{t}">{_e(label or format_time(t))}</a>'


def _last_time(analysis: CallAnalysis) -> float:
    transcript = analysis.transcript
    return max([s.end for s in transcript.speech] + [t.end for t in transcript.turns], default=0.0)


def _header_facts(analysis: CallAnalysis, duration: float) -> str:
    audio, roles, rubric = analysis.audio, analysis.roles, analysis.rubric
    flags = "".join(f'<span class="flag {_e(f)}">{_e(FLAG_NAMES.get(f, f))}</span>' for f in rubric.flags)
    total = f"{rubric.total}/{rubric.max_total}"
    return (f'<p class="facts">时长 {format_time(duration)} · {_e(audio.format)} {_e(audio.encoding)} · '
            f'{_e(audio.channel_count)} 声道 · 角色判定 {_e(roles.method)} '
            f'（置信度 {roles.confidence:.2f}）</p>{_masked_note(analysis)}{_vocabulary_note(analysis)}'
            f'<p class="total"><b>合计 {_e(total)}</b> {flags}</p>'
            f'<p class="summary">{_e(rubric.summary)}</p>')


def _masked_note(analysis: CallAnalysis) -> str:
    if not analysis.personal_data:
        return ""
    names = analysis.settings.get("personal_data", {}).get("types", {})
    return (f'<p class="facts masked">已遮蔽客户信息：{_e(describe_personal_data(analysis.personal_data, names))}'
            "（转写中以 * 显示，录音中以提示音替换）</p>")


def _vocabulary_note(analysis: CallAnalysis) -> str:
    note = ""
    if analysis.vocabulary_corrections:
        note += (f'<p class="facts vocabulary">热词更正（识别结果按热词表改写）：'
                 f'{_e(describe_vocabulary(analysis.vocabulary_corrections))}</p>')
    opening = describe_opening(analysis.opening)
    if opening:
        note += f'<p class="facts vocabulary">{_e(opening)}</p>'
    return note


def timeline_svg(transcript: Transcript, findings: list[Finding], duration: float) -> str:
    """Who speaks when, dead air, talk-over and 服务忌语, drawn to scale; every mark seeks the player.

    Also the workbench's call page (``qa_audio/workbench``), from the stored JSON."""
    span = TL_WIDTH - TL_LEFT - TL_RIGHT
    scale = span / max(duration, 0.001)

    def x(t: float) -> float:
        return round(TL_LEFT + max(0.0, min(duration, float(t))) * scale, 2)

    out = [f'<svg id="timeline" viewBox="0 0 {TL_WIDTH} 130" role="img" aria-label="通话时间轴">']
    for role, y in (("agent", LANE["agent"]), ("customer", LANE["customer"])):
        out.append(f'<text x="4" y="{y + 14}" class="lane">{ROLE_NAMES[role]}</text>')
        out.append(f'<rect x="{TL_LEFT}" y="{y}" width="{span}" height="{LANE_H}" class="track"/>')
    out.append(f'<text x="4" y="{LANE["events"] + 14}" class="lane">事件</text>')
    roles = transcript.roles
    for s in transcript.speech:
        role = roles.get(s.speaker, "customer")
        y = LANE.get(role, LANE["customer"])
        w = max(1.0, x(s.end) - x(s.start))
        out.append(f'<rect class="speech {_e(role)} seekable" data-t="{round(float(s.start), 2)}" x="{x(s.start)}" '
                   f'y="{y}" width="{round(w, 2)}" height="{LANE_H}"><title>{ROLE_NAMES.get(role, role)} '
                   f'{format_time(s.start)}–{format_time(s.end)}</title></rect>')
    for f in findings:
        start, end = round(float(f.start), 3), round(float(f.end), 3)
        w = round(max(2.0, x(end) - x(start)), 2)
        details = f.details
        if isinstance(details, SilenceDetails):
            kind = "hold" if details.hold_notice else "deadair"
            label = f"{'等待（有提示）' if details.hold_notice else '冷场'} {details.duration} 秒"
            out.append(f'<rect class="{kind} seekable" data-t="{round(start, 2)}" x="{x(start)}" y="{LANE["agent"]}" '
                       f'width="{w}" height="{LANE["customer"] + LANE_H - LANE["agent"]}"><title>{_e(label)} '
                       f'{format_time(start)}</title></rect>')
            out.append(f'<rect class="{kind} seekable" data-t="{round(start, 2)}" x="{x(start)}" y="{LANE["events"]}" '
                       f'width="{w}" height="{LANE_H}"><title>{_e(label)}</title></rect>')
        elif isinstance(details, InterruptionDetails):
            out.append(f'<rect class="overlap seekable" data-t="{round(start, 2)}" x="{x(start)}" y="{LANE["events"]}" '
                       f'width="{w}" height="{LANE_H}"><title>抢话 {details.overlap_s} 秒 {format_time(start)}</title>'
                       "</rect>")
        elif isinstance(details, ForbiddenPhraseDetails):
            cx, top = x(start), LANE["events"]
            # the severe band is the one the sheet treats as fatal: the lowest band of 7b
            sev = "severe" if details.severity == "0-2" else "minor"
            out.append(f'<path class="forbidden {sev} seekable" data-t="{round(start, 2)}" '
                       f'd="M{cx} {top + LANE_H} l-7 -{LANE_H} h14 z"><title>服务忌语“{_e(details.phrase)}”'
                       f'（{_e(details.severity)} 档）{format_time(start)}</title></path>')
    # time axis: a tick every "nice" interval
    step = next((s for s in (5, 10, 15, 30, 60, 120, 300) if duration / s <= 12), 600)
    t = 0.0
    while t <= duration + 1e-6:
        axis = LANE["events"] + LANE_H
        out.append(f'<line x1="{x(t)}" x2="{x(t)}" y1="{axis + 4}" y2="{axis + 9}" class="tick"/>'
                   f'<text x="{x(t)}" y="{axis + 21}" class="tick">{format_time(t)[:-2]}</text>')
        t += step
    out.append(f'<line id="playhead" x1="{TL_LEFT}" x2="{TL_LEFT}" y1="14" y2="{LANE["events"] + LANE_H + 4}"/>')
    out.append("</svg>")
    # the script needs the geometry to move the playhead and map clicks on the track
    geometry = json.dumps({"left": TL_LEFT, "span": span, "duration": duration, "width": TL_WIDTH})
    out.append(f'<script type="application/json" id="tl-geom">{geometry}</script>')
    return "".join(out)


LEGEND = ('<p class="legend"><span class="sw agent"></span>坐席说话 <span class="sw customer"></span>客户说话 '
          '<span class="sw deadair"></span>冷场（无提示）<span class="sw hold"></span>等待（有提示）'
          '<span class="sw overlap"></span>抢话 <span class="sw forbidden"></span>服务忌语 · 点击任意标记跳转播放</p>')


def _sheet_table(rubric: RubricResult, low_confidence: float = 0.6) -> str:
    rows = ['<table class="sheet"><thead><tr><th>序号</th><th>项目</th><th>分值</th><th>得分</th><th>状态</th>'
            "<th>置信度</th><th>档位 / 依据</th><th>证据</th></tr></thead><tbody>"]
    for item in rubric.items:
        score = "—" if item.score is None else f"{item.score:g}"
        conf = "—" if item.confidence is None else f"{item.confidence:.2f}"
        status = item.status
        low = " low" if item.confidence is not None and item.confidence < low_confidence else ""
        basis = "<br>".join(_e(b) for b in item.basis)
        band = f"<div>{_e(item.band)}</div>" if item.band else ""
        evidence = "".join(f"<li>{seek_link(e.start)} {_e(who_and_note(e.role, e.note))}"
                           + (f"：<q>{_e(e.text)}</q>" if e.text else "") + "</li>"
                           for e in item.evidence)
        rows.append(f'<tr class="{_e(status)}"><td>{_e(item.id)}</td><td>{_e(item.name)}</td>'
                    f'<td>{item.points:g}</td><td class="score">{score}</td>'
                    f'<td><span class="status {_e(status)}">{_e(STATUS_NAMES.get(status, status))}</span></td>'
                    f'<td class="conf{low}">{conf}</td><td>{band}<div class="basis">{basis}</div></td>'
                    f'<td><ul class="ev">{evidence or "<li>—</li>"}</ul></td></tr>')
    rows.append(f'<tr class="total"><td colspan="3">合计</td><td class="score">{rubric.total}</td>'
                f'<td colspan="4">{_e(rubric.summary)}</td></tr></tbody></table>')
    return "".join(rows)


def who_and_note(role: str, note: str) -> str:
    """The evidence note, led by who said it unless the note already names them."""
    who = ROLE_NAMES.get(role, "") if role != "none" else ""
    return note if not who or note.startswith(who) else f"{who} {note}"


def _footer(rubric: RubricResult) -> str:
    problems = "".join(f"<li>{_e(p)}</li>" for p in rubric.problems)
    advice = "".join(f"<li>{_e(s)}</li>" for s in rubric.suggestions)
    reasons = "".join(f"<li>{_e(r)}</li>" for r in rubric.review_reasons)
    review = f"<h3>复核原因</h3><ul>{reasons}</ul>" if reasons else ""
    return (f'<div class="footer"><div><h3>该坐席存在的主要问题</h3><ul>{problems}</ul></div>'
            f"<div><h3>改善建议</h3><ul>{advice}</ul>{review}</div>"
            "<div><h3>综合评价</h3><p class=\"todo\">（由质检员填写）</p></div></div>")


def _transcript(analysis: CallAnalysis) -> str:
    rows = []
    for turn in analysis.transcript.turns:
        role = turn.role
        rows.append(f'<div class="turn {_e(role)}"><span class="who">{_e(ROLE_NAMES.get(role, role))}</span>'
                    f'{seek_link(turn.start)}<span class="text">{_e(turn.text or UNINTELLIGIBLE)}</span></div>')
    return f'<div class="transcript">{"".join(rows) or "<p>（无转写）</p>"}</div>'


CSS = """
body{font-family:"Noto Sans CJK SC","Microsoft YaHei","PingFang SC",sans-serif;margin:0 auto;max-width:1100px;
padding:16px;color:#222;background:#fafafa}
h1{font-size:20px;margin:4px 0}h2{font-size:17px;border-left:4px solid #2b6cb0;padding-left:8px;margin-top:24px}
h3{font-size:15px;margin:8px 0}.facts{color:#555;margin:4px 0}.total{font-size:16px}.summary{color:#444;margin:2px 0}
.flag{display:inline-block;padding:2px 8px;border-radius:10px;margin-left:8px;font-size:13px;color:#fff}
.flag.fatal{background:#c53030}.flag.needs_review{background:#d69e2e}
.player{position:sticky;top:0;background:#fafafa;padding:8px 0;z-index:2}audio{width:100%}
svg#timeline{width:100%;height:auto;background:#fff;border:1px solid #ddd}
.track{fill:#f1f1f1}.speech.agent{fill:#3182ce}.speech.customer{fill:#38a169}.lane{font-size:13px;fill:#333}
.deadair{fill:#e53e3e;fill-opacity:.35}.hold{fill:#a0aec0;fill-opacity:.45}.overlap{fill:#dd6b20}
.forbidden.severe{fill:#9b2c2c}.forbidden.minor{fill:#ed8936}.tick{stroke:#888;font-size:11px;fill:#666;text-anchor:middle}
#playhead{stroke:#000;stroke-width:2}.seekable{cursor:pointer}
.legend{font-size:13px;color:#555}
.sw{display:inline-block;width:12px;height:12px;margin:0 4px 0 10px;vertical-align:middle}
.sw.agent{background:#3182ce}.sw.customer{background:#38a169}.sw.deadair{background:#f3a5a5}.sw.hold{background:#cbd2db}
.sw.overlap{background:#dd6b20}.sw.forbidden{background:#9b2c2c}
table.sheet{border-collapse:collapse;width:100%;background:#fff;font-size:13px}
.sheet th,.sheet td{border:1px solid #ddd;padding:5px 6px;vertical-align:top}.sheet th{background:#edf2f7}
.score{font-weight:bold;font-size:15px;text-align:center}.status{padding:1px 6px;border-radius:8px;font-size:12px}
.status.auto{background:#c6f6d5}.status.suggested{background:#feebc8}.status.inspector{background:#e2e8f0}
tr.inspector .score{color:#999}.conf.low{color:#c53030;font-weight:bold}.basis{color:#777;font-size:12px}
ul.ev{margin:0;padding-left:16px}q{color:#444}a.seek{color:#2b6cb0;font-family:monospace;text-decoration:none}
a.seek:hover{text-decoration:underline}tr.total td{background:#f7fafc;font-weight:bold}
.footer{display:grid;grid-template-columns:1fr 1fr 1fr;gap:12px}.footer>div{background:#fff;border:1px solid #ddd;
padding:8px}.todo{color:#999}
.transcript .turn{padding:4px 8px;margin:3px 0;border-radius:6px;background:#fff;border:1px solid #e2e8f0}
.turn.agent{border-left:4px solid #3182ce}.turn.customer{border-left:4px solid #38a169;margin-left:40px}
.who{font-weight:bold;margin-right:8px}.turn .seek{margin-right:8px}.playing{background:#fffbea!important}
"""

PLAYER_JS = Path(__file__).with_name("player.js")
"""the player's and timeline's script, inlined here and served by the workbench"""
