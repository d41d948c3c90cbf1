"""Tiny inline SVG charts for the HTML report: no CDN, no script, readable in any browser offline."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

import numpy as np

WIDTH, BAR_HEIGHT, PLOT_HEIGHT, MARGIN = 560, 18, 160, 40
COLOR = "#3b6ea8"


def _fmt(value: float) -> str:
    return f"{value:.3g}"


def histogram_from_counts(edges: Sequence[float], counts: Sequence[int], *, title: str, unit: str,
                          css_class: str) -> str:
    """Vertical bars, one per bin; the x axis shows the first and last edge."""
    if not counts:
        return ""
    peak = max(max(counts), 1)
    step = (WIDTH - 2 * MARGIN) / len(counts)
    bars = []
    for i, count in enumerate(counts):
        h = PLOT_HEIGHT * count / peak
        label = f"{_fmt(edges[i])}–{_fmt(edges[i + 1])} {unit}: {count}"
        bars.append(f'<rect x="{MARGIN + i * step:.1f}" y="{20 + PLOT_HEIGHT - h:.1f}" width="{max(step - 1, 1):.1f}" '
                    f'height="{h:.1f}" fill="{COLOR}"><title>{escape(label)}</title></rect>')
    bottom = 20 + PLOT_HEIGHT
    return (f'<svg xmlns="http://www.w3.org/2000/svg" class="plot {css_class}" width="{WIDTH}" '
            f'height="{bottom + 30}" role="img" aria-label="{escape(title)}">'
            f'<text x="{MARGIN}" y="14" font-size="12">{escape(title)}</text>{"".join(bars)}'
            f'<line x1="{MARGIN}" y1="{bottom}" x2="{WIDTH - MARGIN}" y2="{bottom}" stroke="#444"/>'
            f'<text x="{MARGIN}" y="{bottom + 16}" font-size="11">{escape(_fmt(edges[0]))} {escape(unit)}</text>'
            f'<text x="{WIDTH - MARGIN}" y="{bottom + 16}" font-size="11" text-anchor="end">'
            f'{escape(_fmt(edges[-1]))} {escape(unit)}</text>'
            f'<text x="{MARGIN - 4}" y="28" font-size="11" text-anchor="end">{peak}</text></svg>')


def histogram(values: Sequence[float], *, title: str, unit: str, css_class: str, bins: int = 20) -> str:
    if not len(values):
        return ""
    counts, edges = np.histogram(np.asarray(values, dtype=np.float64), bins=min(bins, max(len(values), 1)))
    return histogram_from_counts([float(e) for e in edges], [int(c) for c in counts], title=title, unit=unit,
                                 css_class=css_class)


def horizontal_bars(items: Sequence[tuple[str, float]], *, title: str, unit: str, css_class: str) -> str:
    """One labelled bar per item, longest first as given: for per-layer times."""
    if not items:
        return ""
    peak = max(max(v for _, v in items), 1e-12)
    label_w, plot_w = 200, WIDTH - 200 - MARGIN
    rows = []
    for i, (name, value) in enumerate(items):
        y = 24 + i * (BAR_HEIGHT + 4)
        w = plot_w * value / peak
        short = name if len(name) <= 30 else name[:14] + "…" + name[-14:]
        rows.append(f'<text x="{label_w - 6}" y="{y + 13}" font-size="11" text-anchor="end">{escape(short)}</text>'
                    f'<rect x="{label_w}" y="{y}" width="{max(w, 1):.1f}" height="{BAR_HEIGHT}" fill="{COLOR}">'
                    f'<title>{escape(name)}: {_fmt(value)} {escape(unit)}</title></rect>'
                    f'<text x="{label_w + w + 4:.1f}" y="{y + 13}" font-size="11">{_fmt(value)} {escape(unit)}</text>')
    height = 24 + len(items) * (BAR_HEIGHT + 4) + 8
    return (f'<svg xmlns="http://www.w3.org/2000/svg" class="plot {css_class}" width="{WIDTH}" height="{height}" '
            f'role="img" aria-label="{escape(title)}"><text x="4" y="14" font-size="12">{escape(title)}</text>'
            f'{"".join(rows)}</svg>')
