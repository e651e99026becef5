"""``qa-audio report -o report.html``: one self-contained page per agent or team report (Chinese).

Everything is inline (CSS, the SVG charts); a strict Content-Security-Policy means the page loads
nothing from anywhere. Every value from the store (paths, agent ids, notes) is escaped. A coaching
line links to the recordings behind it at the moment of the evidence (``file://…#t=12.3``: the
browser's own player seeks there).
"""

from __future__ import annotations

import html
from collections.abc import Callable
from pathlib import Path
from typing import Any

from qa_audio.coaching.charts import ItemsChart, TrendChart
from qa_audio.coaching.figures import GroupFigures, Moment, Report
from qa_audio.labels import format_time

GROUP_NAMES = {"agent": "坐席", "team": "班组"}


def file_link(m: Moment) -> str:
    """A moment as the recording on this machine at that second (the report opened as a file)."""
    return Path(m.path).resolve().as_uri() + (f"#t={m.start:.2f}" if m.start is not None else "")


def render_report_html(report: Report, link: Callable[[Moment], str] = file_link) -> str:
    """The report page; ``link`` gives the address a moment links to (the workbench: its call page)."""
    what = GROUP_NAMES[report.by]
    beside = "班组" if report.by == "agent" else "全中心"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="zh-CN"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; "
        "img-src data:\">",
        f"<title>{_e(what)}质检报告</title><style>{CSS}</style></head><body>",
        f"<h1>{_e(what)}质检报告 · {_e(report.sheet_title)}</h1>",
        f'<p class="facts">{_period(report)} · 通话 {report.calls} 通 · {_basis(report.centre)}'
        + (f" · 其中 {report.undated} 通无通话开始时间，按分析日期计" if report.undated else "") + "</p>",
        _overview(report, what),
    ]
    weeks = sorted({p.week for g in [*report.groups, report.centre] for p in g.trend})
    # agents: compact charts with the weekly figures in a table (200 of them must draw in seconds);
    # teams and the centre: charts with their axes
    compact, full = TrendChart(weeks, compact=True), TrendChart(weeks)
    bars = ItemsChart([i.item_id for i in report.centre.items if i.points])
    try:
        for group in report.groups:
            parts.append(_section(group, report, what, beside, compact if report.by == "agent" else full, bars,
                                  link=link))
        parts.append(_section(report.centre, report, "全中心", beside, full, bars, centre=True, link=link))
    finally:
        for chart in (compact, full, bars):
            chart.close()
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _period(report: Report) -> str:
    if not report.since and not report.until:
        return "全部时间"
    return f"{_e(report.since or '…')} 至 {_e(report.until or '…')}"


def _basis(group: GroupFigures) -> str:
    return (f"评分口径：质检员已复核的 {group.inspector_scores} 个项目分用质检员评分，"
            f"其余 {group.item_scores - group.inspector_scores} 个用系统预评分")


def _number(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _anchor(key: str) -> str:
    return "g-" + "".join(ch if ch.isalnum() else f"_{ord(ch):x}" for ch in key)


def _overview(report: Report, what: str) -> str:
    rows = []
    for g in report.groups:
        top = g.problems[0] if g.problems else None
        rows.append(
            f'<tr><td><a href="#{_anchor(g.key)}">{_e(g.key)}</a></td>'
            + (f"<td>{_e(g.team or '')}</td>" if report.by == "agent" else "")
            + f"<td>{g.calls}</td><td>{g.reviewed}</td><td>{_number(g.mean_total)} / {_number(g.max_total, 0)}</td>"
            f"<td>{g.fatal}</td><td>{g.needs_review}</td><td>{g.agent_id_mismatch}</td>"
            f"<td>{_e(f'{top.item_id} {top.item_name}（{top.calls} 通，{top.severity}）') if top else '—'}</td></tr>")
    team_head = "<th>班组</th>" if report.by == "agent" else ""
    return (f'<table class="overview"><tr><th>{_e(what)}</th>{team_head}<th>通话</th><th>已复核</th><th>平均总分</th>'
            "<th>致命</th><th>待复核</th><th>工号不符</th><th>最主要的问题</th></tr>" + "".join(rows) + "</table>")


def _section(g: GroupFigures, report: Report, what: str, beside: str, chart: TrendChart, bars: ItemsChart,
             centre: bool = False, link: Callable[[Moment], str] = file_link) -> str:
    team = f"（班组 {g.team}）" if report.by == "agent" and g.team else ""
    title = "全中心" if centre else f"{what} {g.key}{team}"
    label = "全中心" if centre else f"{what} {g.key}"
    beside_points = [] if centre else report.centre.trend
    out = [f'<section id="{_anchor(g.key if not centre else "全部")}"><h2>{_e(title)}</h2>',
           f'<p class="facts">通话 {g.calls} 通 · 已复核 {g.reviewed} 通 · 平均总分 {_number(g.mean_total)} / '
           f"{_number(g.max_total, 0)} · 致命 {g.fatal} 通 · 待复核 {g.needs_review} 通 · "
           f"工号与坐席不符 {g.agent_id_mismatch} 通 · {_basis(g)}</p>",
           _item_table(g, "" if centre else beside)]
    # the items chart only where it compares few groups (teams, the centre); an agent's table above
    # marks the items below the team's, and 200 agents' charts would double the report's time
    if (centre or report.by == "team") and any(i.mean is not None for i in g.items):
        out.append(f'<div class="chart items">{bars.svg(g.items, label, beside)}</div>')
    if g.trend:
        drawn = chart.svg(g.trend, beside_points, label, "全中心")
        out.append(f'<h3>每周趋势（平均得分率 %，按周一；蓝：{_e(label)}，灰：全中心）</h3>'
                   f'<div class="chart trend">{drawn}</div>{_week_table(g, beside_points)}')
    out.append(_problems(g))
    out.append(_coaching(g, link))
    if g.rule_rates:
        out.append(_rule_rates(g))
    if g.listen_first:
        out.append(_listen_first(g, link))
    out.append("</section>")
    return "\n".join(out)


def _item_table(g: GroupFigures, beside: str) -> str:
    head = f"<th>{_e(beside)}平均</th>" if beside else ""
    rows = []
    for i in g.items:
        low = i.mean is not None and i.beside is not None and i.mean < i.beside
        rows.append(f'<tr class="{"low" if low else ""}"><td>{_e(i.item_id)}</td><td>{_e(i.name)}</td>'
                    f"<td>{i.points:g}</td><td>{_number(i.mean, 2)}</td>"
                    + (f"<td>{_number(i.beside, 2)}</td>" if beside else "")
                    + f"<td>{i.scored}</td><td>{i.by_inspector}</td></tr>")
    return ("<table class=\"items\"><tr><th>项目</th><th>名称</th><th>分值</th><th>平均得分</th>" + head
            + "<th>评分通数</th><th>其中质检员评分</th></tr>" + "".join(rows) + "</table>")


def _week_table(g: GroupFigures, beside: list) -> str:
    centre = {p.week: p for p in beside}
    head = "".join(f"<th>{_e(p.week[5:])}</th>" for p in g.trend)
    mine = "".join(f"<td>{_share(p.mean_share)}（{p.calls}）</td>" for p in g.trend)
    other = "".join(f"<td>{_share(centre[p.week].mean_share) if p.week in centre else '—'}</td>" for p in g.trend)
    return (f'<table class="weeks"><tr><th>周</th>{head}</tr><tr><th>得分率（通话）</th>{mine}</tr>'
            + (f"<tr><th>全中心</th>{other}</tr>" if beside else "") + "</table>")


def _problems(g: GroupFigures) -> str:
    if not g.problems:
        return "<h3>主要问题</h3><p>未发现失分项目。</p>"
    by_category: dict[str, list] = {}
    for p in g.problems:
        by_category.setdefault(p.category, []).append(p)
    parts = ["<h3>主要问题（按严重程度与频次排序）</h3>"]
    for category, problems in by_category.items():
        items = "".join(
            f'<li><span class="sev {_e(p.severity)}">{_e(p.severity)}</span> {_e(p.item_id)} {_e(p.item_name)}：'
            f"{p.calls} 通（{p.share:.0%}，{_e(p.frequency)}）</li>" for p in problems)
        parts.append(f"<h4>{_e(category)}</h4><ul>{items}</ul>")
    return "".join(parts)


def _moment_link(m: Moment, link: Callable[[Moment], str]) -> str:
    target = link(m)
    when = format_time(m.start) if m.start is not None else "—"
    return (f'<a class="moment" href="{_e(target)}">{_e(Path(m.path).name)} @ {_e(when)}</a>'
            + (f" {_e(m.note)}" if m.note else ""))


def _coaching(g: GroupFigures, link: Callable[[Moment], str]) -> str:
    if not g.coaching:
        return ""
    lines = "".join(f"<li><b>{_e(c.advice)}</b>（{c.calls} 通）<ul>"
                    + "".join(f"<li>{_moment_link(m, link)}</li>" for m in c.moments) + "</ul></li>"
                    for c in g.coaching)
    return f'<h3>辅导要点（改善建议）</h3><ol class="coaching">{lines}</ol>'


def _rule_rates(g: GroupFigures) -> str:
    r = g.rule_rates
    phrases = "".join(f"<li>“{_e(p['phrase'])}”：{p['calls']} 通（{p['share']:.1%}）</li>"
                      for p in r["forbidden_phrases"]) or "<li>无</li>"
    return ("<h3>规则命中率</h3><ul class=\"rates\">"
            f"<li>服务忌语（坐席）：<ul>{phrases}</ul></li>"
            f"<li>冷场（无等待提示的静默）：{r['dead_air_calls']} 通（{_share(r['dead_air_share'])}）</li>"
            f"<li>接听时长：平均 {_number(r['answer_delay_mean_s'])} 秒，超时 {r['answer_delay_over_limit']} 通</li>"
            f"<li>语速异常：{r['speech_rate_outlier_calls']} 通（{_share(r['speech_rate_outlier_share'])}）</li></ul>")


def _share(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"


def _listen_first(g: GroupFigures, link: Callable[[Moment], str]) -> str:
    rows = "".join(
        f"<tr><td>{_moment_link(Moment(c['call_id'], c['path'], None, ''), link)}</td><td>{_e(c['day'])}</td>"
        f"<td>{'致命' if c['fatal'] else ''}{' 待复核' if c['needs_review'] else ''}</td>"
        f"<td>{_number(c['total'])} / {_number(c['max_total'], 0)}</td></tr>" for c in g.listen_first)
    return ("<h3>优先听取的通话</h3><table class=\"listen\"><tr><th>录音</th><th>日期</th><th>标记</th>"
            f"<th>总分</th></tr>{rows}</table>")


CSS = """
body{font-family:"Noto Sans CJK SC","Microsoft YaHei","PingFang SC",sans-serif;margin:0 auto;max-width:1100px;
padding:16px;color:#222;background:#fafafa}h1{font-size:20px}h2{font-size:17px;border-left:4px solid #2b6cb0;
padding-left:8px;margin-top:28px}h3{font-size:15px;margin:14px 0 6px}h4{font-size:14px;margin:8px 0 2px}
.facts{color:#555}table{border-collapse:collapse;margin:6px 0;background:#fff}td,th{border:1px solid #ddd;
padding:3px 8px;font-size:13px;text-align:left}tr.low td{background:#fff5f5}.chart svg{max-width:100%;height:auto}
.sev{display:inline-block;padding:0 6px;border-radius:8px;color:#fff;font-size:12px;background:#718096}
.sev.严重{background:#c53030}.sev.一般{background:#dd6b20}.sev.轻微{background:#a0aec0}.moment{font-size:13px}
"""
