"""A trend chart for the history's HTML page: figures of successive runs as inline SVG lines, with a
ticked y axis naming its unit, an x axis of the runs (time and commit) and a legend. No script, no CDN.

Margins are computed from the labels they hold (glyph widths estimated generously), so no label is cut
off: the y tick labels set the left margin, and the x labels are thinned out to fit their spacing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from harness.report.svg import COLOR

WIDTH, PLOT_HEIGHT = 760, 170
TOP, RIGHT, BOTTOM = 46, 44, 62  # title and legend above; x labels (two lines) and the axis title below
CHAR_W = 7.0  # an upper bound of a glyph's width at 11 px, for margins
X_LABEL_W = 78  # room for one x label ("12-31 23:59")
BAD = "#c0392b"  # a run that did not pass
PALETTE = (COLOR, "#d9822b", "#2e8b57")
SAME = 1e-9  # values this close (relative) are one value: the axis spans 1 % around it


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


def ticks(low: float, high: float, *, count: int = 5) -> list[float]:
    """Round tick values (1, 2, 2.5, 5 × 10^k apart) covering low..high."""
    if high - low <= SAME * max(abs(low), abs(high)):  # one value, or float noise around one (cosine 1 - 2e-16)
        pad = abs(high) * 0.01 or 1.0
        low, high = high - pad, high + pad
    raw = (high - low) / (count - 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw * (1 - 1e-9))
    start = math.floor(low / step + 1e-9) * step
    n = math.ceil((high - start) / step - 1e-9)
    return [start + i * step for i in range(n + 1)]


def tick_format(values: Sequence[float]) -> str:
    """The format that tells ticks apart, with no more decimals than they need."""
    step = abs(values[1] - values[0]) if len(values) > 1 else 1.0
    decimals = max(0, -math.floor(math.log10(step) + 1e-9))
    decimals += 1 if round(step / 10 ** math.floor(math.log10(step) + 1e-9), 6) == 2.5 else 0
    return f"{{:.{decimals}f}}"


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
                from_zero: bool = False) -> str:
    """One chart of `lines` over `runs` (oldest first); "" when no line has a value."""
    values = [v for line in lines for v in (*line.values, *(line.upper or ())) if v is not None]
    if not values or not runs:
        return ""
    grid = ticks(min(0.0, *values) if from_zero else min(values), max(values))
    fmt = tick_format(grid)
    labels = [fmt.format(t) for t in grid]
    left = 30 + CHAR_W * max(len(label) for label in labels)
    plot_w, bottom = WIDTH - left - RIGHT, TOP + PLOT_HEIGHT
    low, span = grid[0], grid[-1] - grid[0]

    def y_of(v: float) -> float:
        return bottom - PLOT_HEIGHT * (v - low) / span

    xs = [left + plot_w * (i + 0.5) / len(runs) for i in range(len(runs))]
    parts = [f'<text x="4" y="16" font-size="13" font-weight="bold">{escape(title)}</text>']
    for tick, label in zip(grid, labels, strict=True):
        y = y_of(tick)
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" stroke="#e3e3e3"/>'
                     f'<text x="{left - 6}" y="{y + 4:.1f}" font-size="11" text-anchor="end">{label}</text>')
    parts.append(f'<line x1="{left}" y1="{TOP}" x2="{left}" y2="{bottom}" stroke="#444"/>'
                 f'<line x1="{left}" y1="{bottom}" x2="{left + plot_w}" y2="{bottom}" stroke="#444"/>'
                 f'<text transform="rotate(-90)" x="{-(TOP + PLOT_HEIGHT / 2):.1f}" y="14" font-size="11" '
                 f'text-anchor="middle">{escape(axis)} ({escape(unit)})</text>')
    every = math.ceil(len(runs) / max(1, int(plot_w // X_LABEL_W)))
    for i in range(0, len(runs), every):
        parts.append(f'<text x="{xs[i]:.1f}" y="{bottom + 19}" font-size="10" text-anchor="middle">'
                     f'{escape(runs[i].label)}</text><text x="{xs[i]:.1f}" y="{bottom + 31}" font-size="10" '
                     f'fill="#666" text-anchor="middle">{escape(runs[i].sublabel)}</text>')
    parts.append(f'<text x="{left + plot_w / 2:.1f}" y="{bottom + 51}" font-size="11" text-anchor="middle">'
                 f'run ({len(runs)}, oldest first: UTC time, commit)</text>')
    legend_x = left
    for index, (line, color) in enumerate(zip(lines, PALETTE, strict=False)):
        radius = 3.5 + 1.5 * (len(lines) - 1 - index)  # lines drawn first have larger markers: equal values show
        if not any(v is not None for v in line.values):
            continue
        tops = line.upper or [None] * len(runs)
        parts.append(_polylines(xs, [None if v is None else y_of(v) for v in line.values], color))
        for x, run, v, top in zip(xs, runs, line.values, tops, strict=True):
            if v is None:
                continue
            if top is not None:
                parts.append(f'<line x1="{x:.1f}" y1="{y_of(v):.1f}" x2="{x:.1f}" y2="{y_of(top):.1f}" '
                             f'stroke="{color}" stroke-opacity="0.6"/>')
            tip = f"{run.note}: {line.name} {v:.4g} {unit}" + (f" (whisker {top:.4g})" if top is not None else "")
            parts.append(f'<circle cx="{x:.1f}" cy="{y_of(v):.1f}" r="{radius}" fill="{color if run.passed else BAD}">'
                         f'<title>{escape(tip)}</title></circle>')
        parts.append(f'<rect x="{legend_x}" y="26" width="10" height="10" fill="{color}"/>'
                     f'<text x="{legend_x + 14}" y="35" font-size="11">{escape(line.name)}</text>')
        legend_x += 30 + CHAR_W * len(line.name)
    if not all(run.passed for run in runs):
        parts.append(f'<circle cx="{legend_x + 5}" cy="31" r="4" fill="{BAD}"/>'
                     f'<text x="{legend_x + 14}" y="35" font-size="11">run did not pass</text>')
    height = bottom + BOTTOM
    return (f'<svg xmlns="http://www.w3.org/2000/svg" class="plot {css_class}" width="{WIDTH}" height="{height}" '
            f'viewBox="0 0 {WIDTH} {height}" role="img" aria-label="{escape(title)}">{"".join(parts)}</svg>')
