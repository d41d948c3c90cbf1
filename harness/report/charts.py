"""report.html's charts, from harness.report.svg's parts: histograms (latency per inference with its p50 and
p90 marked, output errors), labelled horizontal bars (slowest layers, speed-ups) and a strip chart of every
inference of each runtime of a model. Every axis names its unit; where colours stand for something a
legend says what; latencies timed on the host CPU (the emulated device) are coloured and named so.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

import numpy as np

from harness.report import svg
from harness.report.svg import COLOR, Key, Scale

WIDTH, PLOT_HEIGHT, MIN_PLOT = 680, 150, 340
LABEL_MAX = 190  # widest column of row labels (runtimes, layers): longer ones wrap
BAR = 14
HOST_COLOR, P50_COLOR, P90_COLOR = "#8e44ad", "#222222", "#d9822b"
ERROR_COLOR = "#7f8c8d"  # neither timing's colour: error counts are not latencies
WHERE = {False: "timed on the device", True: "timed on the host CPU (emulated device)"}


def sample_color(host: bool) -> str:
    """Latency samples are coloured by where they were timed."""
    return HOST_COLOR if host else COLOR


@dataclass(frozen=True)
class Marker:
    """A vertical line across the plot at a value (p50, p90); `name` is its CSS class."""

    name: str
    label: str
    value: float
    color: str
    dash: bool = False

    @property
    def key(self) -> Key:
        return Key(self.label, self.color, "line", self.dash)

    def line(self, x: float, top: float, bottom: float) -> str:
        dash = ' stroke-dasharray="5 3"' if self.dash else ""
        return (f'<line class="{self.name}" x1="{x:.1f}" y1="{top:.1f}" x2="{x:.1f}" y2="{bottom:.1f}" '
                f'stroke="{self.color}" stroke-width="2.5"{dash}><title>{escape(self.label)}</title></line>')


_PERCENTILES = {"p50": ("p50 (median)", P50_COLOR, False), "p90": ("p90", P90_COLOR, True)}


def percentile_keys() -> list[Key]:
    """The legend's entries of the p50 and p90 lines, when every row shows its own figures."""
    return [Key(label, color, "line", dash) for label, color, dash in _PERCENTILES.values()]


def percentiles(p50: float, p90: float) -> list[Marker]:
    """The p50 and p90 lines of a latency (ms), each named with its figure."""
    return [Marker(name, f"{label} {value:.3g} ms", value, color, dash)
            for (name, (label, color, dash)), value in zip(_PERCENTILES.items(), (p50, p90), strict=True)]


def histogram(edges: Sequence[float], counts: Sequence[int], *, title: str, axis: str, count_axis: str,
              css_class: str, bar_label: str = "", color: str = COLOR, markers: Sequence[Marker] = ()) -> str:
    """Vertical bars, one per bin between its edges, with the markers across them; "" without bins. A legend
    names the markers, and the bars' colour when `bar_label` says what it stands for."""
    if not counts:
        return ""
    head, head_h = svg.title_block(title, WIDTH)
    named = [Key(bar_label, color)] if bar_label else []
    keys, key_h = svg.legend([*named, *(m.key for m in markers)], x=8, y=head_h, width=WIDTH - 16)
    top = head_h + key_h + 8
    bottom = top + PLOT_HEIGHT
    ys = Scale.over([0, max(counts)], bottom, -PLOT_HEIGHT, whole=True)
    left = 4 + svg.y_axis_width(ys, count_axis, PLOT_HEIGHT)
    grid = Scale.over([edges[0], edges[-1], *(m.value for m in markers)], 0, 1).ticks
    plot_w = WIDTH - left - 8 - svg.x_axis_overhang(Scale(grid, 0, 1))
    xs = Scale(grid, left, plot_w)
    below, below_h = svg.x_axis(xs, top=top, bottom=bottom, title=axis, width=plot_w)
    parts = [head, keys, svg.y_axis(ys, left=left, right=left + plot_w, title=count_axis), below]
    for low, high, count in zip(edges, edges[1:], counts, strict=False):
        x, y = xs(low), ys(count)
        parts.append(f'<rect class="bar" x="{x:.1f}" y="{y:.1f}" width="{max(xs(high) - x - 1, 1):.1f}" '
                     f'height="{bottom - y:.1f}" fill="{color}"><title>{low:.4g} to {high:.4g}: {count}</title></rect>')
    parts += [m.line(xs(m.value), top, bottom) for m in markers]
    return svg.root(css_class, title, WIDTH, bottom + below_h + 6, "".join(parts))


def bins(values: Sequence[float], count: int = 20) -> tuple[list[float], list[int]]:
    """Edges and counts of up to `count` equal bins over the values, for `histogram`."""
    counts, edges = np.histogram(np.asarray(values, dtype=np.float64), bins=max(1, min(count, len(values))))
    return [float(e) for e in edges], [int(c) for c in counts]


@dataclass(frozen=True)
class _RowChart:
    """The layout bars and strips share: a row per item, its name wrapped in a column at the left under that
    column's title, a value axis from 0 across the middle, room at the right for each row's figures."""

    labels: list[list[str]]
    heights: list[float]
    xs: Scale
    width: float
    top: float  # of the column's title; the rows follow it
    column: str

    @classmethod
    def of(cls, names: Sequence[str], figures: Sequence[str], values: Sequence[float], *, top: float,
           minimum: float, column: str) -> _RowChart:
        wide = min(LABEL_MAX, max(svg.text_width(n) for n in [*names, column]))
        labels = [svg.wrap(n, wide) for n in names]
        heights = [max(minimum, svg.lines_height(len(lines)) + 8) for lines in labels]
        grid = Scale.over(values, 0, 1, from_zero=True).ticks
        right = max(max(map(svg.text_width, figures)) + 12, svg.x_axis_overhang(Scale(grid, 0, 1))) + 8
        left = wide + 16
        width = max(WIDTH, left + MIN_PLOT + right)
        return cls(labels, heights, Scale(grid, left, width - left - right), width, top, column)

    @property
    def rows_top(self) -> float:
        return self.top + svg.lines_height(1)

    @property
    def bottom(self) -> float:
        return self.rows_top + sum(self.heights)

    def row_tops(self) -> list[float]:
        return [self.rows_top + sum(self.heights[:i]) for i in range(len(self.heights))]

    def frame(self, axis: str) -> tuple[str, float]:
        """The column's title, a faint line between rows, the x axis; and the height taken under the rows."""
        end = self.xs.start + self.xs.length
        parts = [svg.text(self.xs.start - 8, self.top + svg.FONT, self.column, anchor="end", fill=svg.MUTED)]
        parts += [f'<line x1="{self.xs.start:.1f}" y1="{y:.1f}" x2="{end:.1f}" y2="{y:.1f}" stroke="{svg.GRID}"/>'
                  for y in self.row_tops()[1:]]
        below, below_h = svg.x_axis(self.xs, top=self.rows_top, bottom=self.bottom, title=axis, width=self.xs.length)
        return "".join(parts) + below, below_h

    def label(self, i: int, top: float) -> str:
        middle = top + self.heights[i] / 2 - svg.lines_height(len(self.labels[i]) - 1) / 2
        return svg.text(self.xs.start - 8, middle + svg.FONT * 0.35, self.labels[i], anchor="end")


def bars(items: Sequence[tuple[str, float]], *, title: str, axis: str, column: str, suffix: str, css_class: str,
         host: bool) -> str:
    """One horizontal bar per (name, value), in the order given, its value written after it; the bars are
    coloured by where the figures were timed (`host`), which the legend says."""
    if not items:
        return ""
    figures = [f"{v:.3g}{suffix}" for _, v in items]
    head, head_h = svg.title_block(title, WIDTH)
    color = sample_color(host)
    key, key_h = svg.legend([Key(WHERE[host], color)], x=8, y=head_h, width=WIDTH - 16)
    chart = _RowChart.of([name for name, _ in items], figures, [v for _, v in items], top=head_h + key_h,
                         minimum=BAR + 8, column=column)
    xs = chart.xs
    frame, below_h = chart.frame(axis)
    parts = [head, key, frame]
    for i, ((name, value), shown, top) in enumerate(zip(items, figures, chart.row_tops(), strict=True)):
        y = top + (chart.heights[i] - BAR) / 2
        parts.append(chart.label(i, top)
                     + f'<rect class="bar" x="{min(xs(0.0), xs(value)):.1f}" y="{y:.1f}" '
                     f'width="{max(abs(xs(value) - xs(0.0)), 1):.1f}" height="{BAR}" fill="{color}">'
                     f'<title>{escape(name)}: {escape(shown)}</title></rect>'
                     + svg.text(xs(value) + 4, y + BAR - 3, shown))
    return svg.root(css_class, title, chart.width, chart.bottom + below_h + 6, "".join(parts))


@dataclass(frozen=True)
class Strip:
    """One runtime's row of the strip chart: every inference, and its p50 and p90."""

    label: str
    samples: Sequence[float]
    p50: float
    p90: float
    host: bool


def strips(rows: Sequence[Strip], *, title: str, axis: str, css_class: str) -> str:
    """A row per runtime: a dot per inference, coloured by where it was timed, over the p50 and p90 as
    lines across the row; the two figures are written at its right end."""
    if not rows:
        return ""
    figures = [f"p50 {row.p50:.3g} · p90 {row.p90:.3g} ms" for row in rows]
    head, head_h = svg.title_block(title, WIDTH)
    keys = [Key(f"one inference, {WHERE[host]}", sample_color(host), "dot") for host in sorted({r.host for r in rows})]
    key_svg, key_h = svg.legend([*keys, *percentile_keys()], x=8, y=head_h, width=WIDTH - 16)
    chart = _RowChart.of([row.label for row in rows], figures, [v for row in rows for v in row.samples],
                         top=head_h + key_h + 4, minimum=30, column="runtime")
    xs = chart.xs
    frame, below_h = chart.frame(axis)
    parts = [head, key_svg, frame]
    for i, (row, shown, top) in enumerate(zip(rows, figures, chart.row_tops(), strict=True)):
        height, color = chart.heights[i], sample_color(row.host)
        middle, spread = top + height / 2, height / 2 - 6
        parts.append(chart.label(i, top))
        parts += [m.line(xs(m.value), top + 2, top + height - 2) for m in percentiles(row.p50, row.p90)]
        parts += [f'<circle class="sample" cx="{xs(v):.1f}" cy="{middle + spread * ((k * 37) % 13 - 6) / 6:.1f}" '
                  f'r="2.5" fill="{color}" fill-opacity="0.55"><title>{v:.4g} ms</title></circle>'
                  for k, v in enumerate(row.samples)]
        parts.append(svg.text(xs.start + xs.length + 12, middle + 4, shown))
    return svg.root(css_class, title, chart.width, chart.bottom + below_h + 6, "".join(parts))
