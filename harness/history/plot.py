"""A trend chart for the history's HTML page: figures of successive runs as inline SVG lines, with a
ticked y axis naming its unit, an x axis of the runs (time and commit) and a legend. No script, no CDN.

The title, legend, y axis and text measuring are harness.report.svg's, shared with report.html: margins are
computed from the labels they hold, so no label is cut off, and the x labels are thinned out to fit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from harness.report import svg
from harness.report.svg import PALETTE, Key, Scale

WIDTH, PLOT_HEIGHT, RIGHT = 760, 170, 44
X_LABEL_W = svg.text_width("12-31 23:59", svg.SMALL) + 12  # room for one x label
BAD = "#c0392b"  # a run that did not pass


@dataclass(frozen=True)
class Run:
    """One x position: the run's label lines and what its markers' tooltips say of it."""

    label: str  # e.g. "01-31 12:00"
    sublabel: str  # e.g. the commit
    note: str
    passed: bool


@dataclass(frozen=True)
class Line:
    name: str
    values: Sequence[float | None]  # one per run
    upper: Sequence[float | None] | None = None  # a whisker's top per run (e.g. p90)


def _polylines(xs: Sequence[float], ys: Sequence[float | None], color: str) -> str:
    """The line through the runs that have a value, broken where one has none."""
    out, segment = [], []
    for x, y in [*zip(xs, ys, strict=True), (0.0, None)]:
        if y is None:
            if len(segment) > 1:
                out.append(f'<polyline fill="none" stroke="{color}" stroke-width="1.5" points="{" ".join(segment)}"/>')
            segment = []
        else:
            segment.append(f"{x:.1f},{y:.1f}")
    return "".join(out)


def trend_chart(runs: Sequence[Run], lines: Sequence[Line], *, title: str, axis: str, unit: str, css_class: str,
                from_zero: bool = False, x_axis: str | None = None) -> str:
    """One chart of `lines` over `runs` (oldest first); "" when no line has a value. `x_axis` names the
    runs (default: the history's, by time and commit; report.html draws a job's measured runs)."""
    values = [v for line in lines for v in (*line.values, *(line.upper or ())) if v is not None]
    if not values or not runs:
        return ""
    shown = [(index, line, color) for index, (line, color) in enumerate(zip(lines, PALETTE, strict=False))
             if any(v is not None for v in line.values)]
    keys = [Key(line.name, color) for _, line, color in shown]
    keys += [] if all(run.passed for run in runs) else [Key("run did not pass", BAD, "dot")]
    head, head_h = svg.title_block(title, WIDTH)
    legend, legend_h = svg.legend(keys, x=8, y=head_h, width=WIDTH - 16)
    top = head_h + legend_h + 8
    bottom, y_title = top + PLOT_HEIGHT, f"{axis} ({unit})"
    y_of = Scale.over(values, bottom, -PLOT_HEIGHT, from_zero=from_zero)
    left = 4 + svg.y_axis_width(y_of, y_title, PLOT_HEIGHT)
    plot_w = WIDTH - left - RIGHT
    xs = [left + plot_w * (i + 0.5) / len(runs) for i in range(len(runs))]
    parts = [head, legend, svg.y_axis(y_of, left=left, right=left + plot_w, title=y_title),
             f'<line x1="{left}" y1="{bottom}" x2="{left + plot_w}" y2="{bottom}" stroke="{svg.INK}"/>']
    every = math.ceil(len(runs) / max(1, int(plot_w // X_LABEL_W)))
    for i in range(0, len(runs), every):
        parts.append(svg.text(xs[i], bottom + 20, runs[i].label, size=svg.SMALL, anchor="middle")
                     + svg.text(xs[i], bottom + 20 + svg.lines_height(1, svg.SMALL), runs[i].sublabel,
                                size=svg.SMALL, anchor="middle", fill=svg.MUTED))
    x_title = svg.wrap(x_axis or f"run ({len(runs)}, oldest first: UTC time, commit)", plot_w)
    parts.append(svg.text(left + plot_w / 2, bottom + 60, x_title, anchor="middle"))
    for index, line, color in shown:
        radius = 3.5 + 1.5 * (len(lines) - 1 - index)  # lines drawn first have larger markers: equal values show
        tops = line.upper or [None] * len(runs)
        parts.append(_polylines(xs, [None if v is None else y_of(v) for v in line.values], color))
        for x, run, v, top_value in zip(xs, runs, line.values, tops, strict=True):
            if v is None:
                continue
            if top_value is not None:
                parts.append(f'<line x1="{x:.1f}" y1="{y_of(v):.1f}" x2="{x:.1f}" y2="{y_of(top_value):.1f}" '
                             f'stroke="{color}" stroke-opacity="0.6"/>')
            tip = f"{run.note}: {line.name} {v:.4g} {unit}" + (f" (whisker {top_value:.4g})"
                                                                 if top_value is not None else "")
            parts.append(f'<circle cx="{x:.1f}" cy="{y_of(v):.1f}" r="{radius}" fill="{color if run.passed else BAD}">'
                         f'<title>{escape(tip)}</title></circle>')
    height = bottom + 66 + svg.lines_height(len(x_title))
    return svg.root(css_class, title, WIDTH, height, "".join(parts))
