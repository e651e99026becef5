"""Inline SVG charts for the reports, drawn by matplotlib (Agg, no display, no font download).

Text stays text in the SVG (``svg.fonttype: none``) so Chinese labels render with the reader's own
fonts and the page needs no font file; ``svg.hashsalt`` makes the markup the same from run to run.
"""

from __future__ import annotations

import io
import logging
import warnings

from qa_audio.coaching.figures import ItemFigure, WeekPoint

FONTS = ["Noto Sans CJK SC", "Microsoft YaHei", "PingFang SC", "sans-serif"]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)  # "font family not found"
    import matplotlib.pyplot as plt

    return plt


def _svg(fig) -> str:
    plt = _pyplot()
    buffer = io.StringIO()
    with warnings.catch_warnings():
        # Chinese labels are measured with matplotlib's own font, which has no CJK glyphs; the page
        # draws them with the reader's fonts (svg.fonttype none), so the warning says nothing useful.
        warnings.filterwarnings("ignore", message=r"Glyph \d+ .* missing from font")
        # no metadata block: it would carry the drawing time and RDF namespace URLs into the page
        fig.savefig(buffer, format="svg", bbox_inches="tight",
                    metadata={"Creator": None, "Date": None, "Format": None, "Type": None})
    plt.close(fig)
    text = buffer.getvalue()
    return text[text.index("<svg"):]  # no XML prolog or DOCTYPE inside the HTML page


def _style():
    plt = _pyplot()
    return plt.rc_context({"svg.fonttype": "none", "svg.hashsalt": "qa-audio", "font.family": FONTS,
                           "axes.spines.top": False, "axes.spines.right": False, "font.size": 9})


def trend_svg(points: list[WeekPoint], beside: list[WeekPoint], label: str, beside_label: str) -> str:
    """The weekly mean total (share of the maximum, %) of a group beside its team or the centre."""
    plt = _pyplot()
    with _style():
        fig, ax = plt.subplots(figsize=(6.4, 2.4))
        if beside:
            ax.plot([p.week[5:] for p in beside], [100 * (p.mean_share or 0) for p in beside], color="#a0aec0",
                    marker="o", linewidth=1.5, label=beside_label)
        ax.plot([p.week[5:] for p in points], [100 * (p.mean_share or 0) for p in points], color="#2b6cb0",
                marker="o", linewidth=2, label=label)
        ax.set_ylabel("平均得分率 %")
        ax.set_xlabel("周（周一）")
        ax.set_ylim(0, 100)
        ax.grid(axis="y", color="#eee")
        ax.legend(loc="lower right", frameon=False)
        return _svg(fig)


def items_svg(items: list[ItemFigure], label: str, beside_label: str) -> str:
    """Each item's mean score as a share of its points, the group beside its team or the centre."""
    plt = _pyplot()
    shown = [i for i in items if i.mean is not None and i.points]
    with _style():
        fig, ax = plt.subplots(figsize=(6.4, 2.6))
        xs = range(len(shown))
        ax.bar([x - 0.2 for x in xs], [100 * (i.mean or 0) / i.points for i in shown], width=0.4, color="#2b6cb0",
               label=label)
        if any(i.beside is not None for i in shown):
            ax.bar([x + 0.2 for x in xs], [100 * (i.beside or 0) / i.points for i in shown], width=0.4,
                   color="#a0aec0", label=beside_label)
        ax.set_xticks(list(xs), [i.item_id for i in shown])
        ax.set_ylabel("得分率 %")
        ax.set_ylim(0, 100)
        ax.legend(loc="lower right", frameon=False)
        return _svg(fig)
