"""Inline SVG charts for the reports, drawn by matplotlib (Agg, no display, no font download).

Text stays text in the SVG (``svg.fonttype: none``) so Chinese labels render with the reader's own
fonts and the page needs no font file; ``svg.hashsalt`` and no metadata block make the markup the
same from run to run. A report over 200 agents draws 200 trend charts: :class:`TrendChart` keeps one
figure and only changes its lines' data, 13 ms a chart where a new figure each time took 90 ms
(measured, bench/report.py).
"""

from __future__ import annotations

import io
import logging
import math
import warnings
from contextlib import ExitStack

from qa_audio.coaching.figures import ItemFigure, WeekPoint

FONTS = ["Noto Sans CJK SC", "Microsoft YaHei", "PingFang SC", "sans-serif"]
STYLE = {"svg.fonttype": "none", "svg.hashsalt": "qa-audio", "font.family": FONTS, "axes.spines.top": False,
         "axes.spines.right": False, "font.size": 9}
NO_METADATA = {"Creator": None, "Date": None, "Format": None, "Type": None}
"""no metadata block: it would carry the drawing time and RDF namespace URLs into the page"""
MINE, BESIDE = "#2b6cb0", "#a0aec0"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)  # "font family not found"
    import matplotlib.pyplot as plt

    return plt


def _svg(fig) -> str:
    buffer = io.StringIO()
    with warnings.catch_warnings():
        # Chinese labels are measured with matplotlib's own font, which has no CJK glyphs; the page
        # draws them with the reader's fonts (svg.fonttype none), so the warning says nothing useful.
        warnings.filterwarnings("ignore", message=r"Glyph \d+ .* missing from font")
        fig.savefig(buffer, format="svg", metadata=NO_METADATA)
    text = buffer.getvalue()
    return text[text.index("<svg"):]  # no XML prolog or DOCTYPE inside the HTML page


class TrendChart:
    """The weekly mean score (% of the maximum, 0-100) of one group beside another, over fixed weeks
    (each labelled by its Monday, MM-DD).

    State is real here: one matplotlib figure, reused for every group of a report (``close`` it).
    """

    def __init__(self, weeks: list[str], compact: bool = False):
        plt = _pyplot()
        self._plt = plt
        self._style = ExitStack()
        self._style.enter_context(plt.rc_context(STYLE))
        self.weeks = weeks
        self.fig, ax = plt.subplots(figsize=(6.4, 1.2 if compact else 1.9))
        self.fig.subplots_adjust(left=0.01 if compact else 0.08, right=0.99, top=0.97, bottom=0.03 if compact else 0.2)
        xs = list(range(len(weeks)))
        (self._beside,) = ax.plot(xs, [math.nan] * len(xs), color=BESIDE, marker="o", linewidth=1.5)
        (self._mine,) = ax.plot(xs, [math.nan] * len(xs), color=MINE, marker="o", linewidth=2)
        ax.set_ylim(0, 100)
        ax.set_xlim(-0.5, max(0.5, len(xs) - 0.5))
        self._legend = None
        if compact:
            # laying out tick text is 90% of a chart's drawing time (13 of 15 ms): an agent's chart
            # has none, the weekly figures sit in a table under it, the gridlines mark 50% and 100%
            ax.set_xticks([])
            ax.set_yticks([])
            for level in (50, 100):
                ax.axhline(level, color="#e2e8f0", linewidth=1, zorder=0)
            ax.spines[["left", "bottom"]].set_visible(False)
        else:
            step = max(1, math.ceil(len(weeks) / 7))
            ax.set_xticks(xs[::step], [w[5:] for w in weeks][::step])
            ax.set_yticks([0, 50, 100])
            ax.grid(axis="y", color="#eee")
            self._legend = ax.legend([self._mine, self._beside], ["", ""], loc="lower right", frameon=False, ncol=2)

    def svg(self, points: list[WeekPoint], beside: list[WeekPoint], label: str, beside_label: str) -> str:
        self._mine.set_ydata(self._series(points))
        self._beside.set_ydata(self._series(beside))
        if self._legend is not None:
            texts = self._legend.get_texts()
            texts[0].set_text(label)
            texts[1].set_text(beside_label if beside else "")
        return _svg(self.fig)

    def _series(self, points: list[WeekPoint]) -> list[float]:
        by_week = {p.week: p.mean_share for p in points}
        return [100 * by_week[w] if by_week.get(w) is not None else math.nan for w in self.weeks]

    def close(self) -> None:
        self._plt.close(self.fig)
        self._style.close()


class ItemsChart:
    """Each item's mean score as a share of its points, one group beside another; one figure reused
    (the bars' heights change), like :class:`TrendChart`."""

    def __init__(self, item_ids: list[str]):
        plt = _pyplot()
        self._plt = plt
        self._style = ExitStack()
        self._style.enter_context(plt.rc_context(STYLE))
        self.item_ids = item_ids
        self.fig, ax = plt.subplots(figsize=(6.4, 2.2))
        self.fig.subplots_adjust(left=0.08, right=0.99, top=0.97, bottom=0.12)
        xs = range(len(item_ids))
        self._mine = ax.bar([x - 0.2 for x in xs], [0] * len(item_ids), width=0.4, color=MINE)
        self._beside = ax.bar([x + 0.2 for x in xs], [0] * len(item_ids), width=0.4, color=BESIDE)
        ax.set_xticks(list(xs), item_ids)
        ax.set_yticks([0, 50, 100])
        ax.set_ylim(0, 100)
        self._legend = ax.legend([self._mine, self._beside], ["", ""], loc="lower right", frameon=False, ncol=2)

    def svg(self, items: list[ItemFigure], label: str, beside_label: str) -> str:
        by_id = {i.item_id: i for i in items}
        for bars, value in ((self._mine, "mean"), (self._beside, "beside")):
            for bar, item_id in zip(bars, self.item_ids, strict=True):
                item = by_id.get(item_id)
                score = getattr(item, value) if item is not None else None
                bar.set_height(100 * score / item.points if score is not None and item and item.points else 0)
        texts = self._legend.get_texts()
        texts[0].set_text(label)
        texts[1].set_text(beside_label if any(i.beside is not None for i in items) else "")
        return _svg(self.fig)

    def close(self) -> None:
        self._plt.close(self.fig)
        self._style.close()
