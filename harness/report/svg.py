"""Inline SVG building blocks shared by report.html and the history's trend page: text measured and wrapped
before it is placed, round ticks, axes that name their unit, a legend. No script, no CDN.

No font is measured at render time, so text widths are estimated generously from classes of characters
(DejaVu Sans, Chromium's sans-serif on Debian, is the widest common one) and every margin is computed
from the text it holds: no label is cut off, and long names wrap instead of running out of the chart.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

COLOR = "#3b6ea8"
PALETTE = (COLOR, "#d9822b", "#2e8b57", "#8e44ad", "#7f8c8d")
INK, GRID, MUTED = "#444", "#e3e3e3", "#666"
FONT, SMALL, TITLE = 12, 11, 14  # px: labels, secondary labels, chart titles
LINE = 1.3  # line height, in font sizes
SAME = 1e-9  # values this close (relative) are one value: the axis spans 1 % around it
_NARROW, _SEMI, _WIDE = set("ijl.,:;'!|` "), set("ftrI()[]{}-/\\\""), set("mwMW@%")
_BREAK = r" _/.:-"


def _em(char: str) -> float:
    if char in _NARROW:
        return 0.34
    if char in _SEMI:
        return 0.45
    if char in _WIDE or not char.isascii():
        return 1.0
    return 0.8 if char.isupper() else 0.66


def text_width(text: str, size: float = FONT, *, bold: bool = False) -> float:
    """An upper bound of the text's width in px."""
    return sum(map(_em, text)) * size * (1.15 if bold else 1.0)


def wrap(text: str, width: float, size: float = FONT, *, bold: bool = False) -> list[str]:
    """Lines of at most `width` px, broken after a space or a separator of names (_ / . : -) where there is
    one, anywhere in a longer word."""
    lines, line = [], ""
    for token in re.findall(rf"[^{_BREAK}]+[{_BREAK}]*|[{_BREAK}]+", text):
        if line and text_width(line + token.rstrip(), size, bold=bold) > width:
            lines.append(line.rstrip())
            line = ""
        line += token
        while len(line) > 1 and text_width(line.rstrip(), size, bold=bold) > width:
            cut = max(n for n in range(1, len(line)) if n == 1 or text_width(line[:n], size, bold=bold) <= width)
            lines.append(line[:cut])
            line = line[cut:]
    if line.strip():
        lines.append(line.rstrip())
    return lines or [""]


def text(x: float, y: float, lines: str | Sequence[str], *, size: float = FONT, anchor: str = "start",
         bold: bool = False, fill: str = "", extra: str = "") -> str:
    """A <text> with its baseline at y, one <tspan> per further line; escaped."""
    lines = [lines] if isinstance(lines, str) else list(lines)
    style = (f' font-size="{size}"' + (' font-weight="bold"' if bold else "") + (f' fill="{fill}"' if fill else "")
             + (f' text-anchor="{anchor}"' if anchor != "start" else "") + (f" {extra}" if extra else ""))
    first, *more = [escape(line) for line in lines]
    spans = "".join(f'<tspan x="{x:.1f}" dy="{size * LINE:.1f}">{line}</tspan>' for line in more)
    return f'<text x="{x:.1f}" y="{y:.1f}"{style}>{first}{spans}</text>'


def lines_height(count: int, size: float = FONT) -> float:
    return count * size * LINE


def title_block(title: str, width: float) -> tuple[str, float]:
    """A chart's title at its top left, wrapped to `width`; returns it and the height it takes."""
    lines = wrap(title, width - 8, TITLE, bold=True)
    return text(4, TITLE + 3, lines, size=TITLE, bold=True), lines_height(len(lines), TITLE) + 6


def root(css_class: str, label: str, width: float, height: float, body: str) -> str:
    """The <svg> element: its viewBox is its size, so a page may scale it down without cutting anything."""
    return (f'<svg xmlns="http://www.w3.org/2000/svg" class="plot {css_class}" width="{width:.0f}" '
            f'height="{height:.0f}" viewBox="0 0 {width:.0f} {height:.0f}" role="img" '
            f'aria-label="{escape(label)}">{body}</svg>')


def ticks(low: float, high: float, *, count: int = 5, whole: bool = False) -> list[float]:
    """Round tick values (1, 2, 2.5, 5 × 10^k apart; whole numbers only when `whole`) covering low..high."""
    if high - low <= SAME * max(abs(low), abs(high)):  # one value, or float noise around one (cosine 1 - 2e-16)
        pad = 1.0 if whole else abs(high) * 0.01 or 1.0
        low, high = high - pad, high + pad
    raw = (high - low) / (count - 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    steps = (1, 2, 5, 10) if whole else (1, 2, 2.5, 5, 10)
    step = next(m * magnitude for m in steps if m * magnitude >= raw * (1 - 1e-9))
    step = max(step, 1) if whole else step
    start = math.floor(low / step + 1e-9) * step
    n = math.ceil((high - start) / step - 1e-9)
    return [start + i * step for i in range(n + 1)]


def tick_format(values: Sequence[float]) -> str:
    """The format that tells ticks apart, with no more digits than they need; powers of ten for ticks that
    are all tiny (errors of 1e-7) or huge, where fixed decimals would be long."""
    step = abs(values[1] - values[0]) if len(values) > 1 else 1.0
    digits = -math.floor(math.log10(step) + 1e-9)
    digits += 1 if round(step / 10 ** -digits, 6) == 2.5 else 0
    largest = max(abs(v) for v in values)
    if 0 < largest < 1e-3 or largest >= 1e6:
        return f"{{:.{max(0, math.floor(math.log10(largest)) + digits)}e}}"
    return f"{{:.{max(0, digits)}f}}"


@dataclass(frozen=True)
class Scale:
    """Values along one axis to pixels: ticks[0] is at `start`, ticks[-1] `length` px further (negative: up)."""

    ticks: tuple[float, ...]
    start: float
    length: float

    @classmethod
    def over(cls, values: Sequence[float], start: float, length: float, *, from_zero: bool = False,
             whole: bool = False) -> Scale:
        return cls(tuple(ticks(min(0.0, *values) if from_zero else min(values), max(values), whole=whole)),
                   start, length)

    def __call__(self, value: float) -> float:
        low, high = self.ticks[0], self.ticks[-1]
        return self.start + self.length * (value - low) / (high - low)

    @property
    def labels(self) -> list[str]:
        fmt = tick_format(self.ticks)
        return [fmt.format(t) for t in self.ticks]


def y_axis_width(scale: Scale, title: str, height: float) -> float:
    """The left margin a y axis needs: its turned title's lines and its widest tick label."""
    return lines_height(len(wrap(title, height))) + 10 + max(map(text_width, scale.labels))


def y_axis(scale: Scale, *, left: float, right: float, title: str) -> str:
    """Tick labels right-aligned left of `left`, grid lines across to `right`, the axis line, and the title
    (it names the unit) turned along the axis at the chart's left edge, wrapped to the axis' height."""
    parts = []
    for tick, label in zip(scale.ticks, scale.labels, strict=True):
        y = scale(tick)
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{right:.1f}" y2="{y:.1f}" stroke="{GRID}"/>'
                     + text(left - 6, y + 4, label, anchor="end"))
    top, bottom = scale(scale.ticks[-1]), scale(scale.ticks[0])
    lines = wrap(title, bottom - top)
    parts.append(f'<line x1="{left}" y1="{top:.1f}" x2="{left}" y2="{bottom:.1f}" stroke="{INK}"/>'
                 + text(-(top + bottom) / 2, FONT + 1, lines, anchor="middle", extra='transform="rotate(-90)"'))
    return "".join(parts)


def x_axis_overhang(scale: Scale) -> float:
    """How far the last tick label reaches right of the axis' end: the right margin it needs."""
    return text_width(scale.labels[-1]) / 2 + 4


def x_axis(scale: Scale, *, top: float, bottom: float, title: str, width: float) -> tuple[str, float]:
    """The axis line at `bottom`, faint grid lines up to `top`, tick labels below (every k-th, when all
    would touch) and the title (it names the unit) centred under them, wrapped to `width`. Returns the SVG
    and the height it takes below `bottom`."""
    labels = scale.labels
    spacing = abs(scale(scale.ticks[1]) - scale(scale.ticks[0])) if len(labels) > 1 else width
    every = math.ceil((max(map(text_width, labels)) + 8) / spacing)
    end = scale(scale.ticks[-1])
    parts = [f'<line x1="{scale.start:.1f}" y1="{bottom:.1f}" x2="{end:.1f}" y2="{bottom:.1f}" stroke="{INK}"/>']
    for i, (tick, label) in enumerate(zip(scale.ticks, labels, strict=True)):
        x = scale(tick)
        parts.append(f'<line x1="{x:.1f}" y1="{top:.1f}" x2="{x:.1f}" y2="{bottom + 4:.1f}" stroke="{GRID}"/>')
        if i % every == 0:
            parts.append(text(x, bottom + 20, label, anchor="middle"))
    lines = wrap(title, width)
    parts.append(text((scale.start + end) / 2, bottom + 40, lines, anchor="middle"))
    return "".join(parts), 32 + lines_height(len(lines))


@dataclass(frozen=True)
class Key:
    """One legend entry: what a colour (and shape) stands for."""

    label: str
    color: str
    shape: str = "box"  # box, dot, or line (dashed when `dash`)
    dash: bool = False


def _swatch(key: Key, x: float, y: float) -> str:
    if key.shape == "dot":
        return f'<circle cx="{x + 5}" cy="{y + 6}" r="4" fill="{key.color}"/>'
    if key.shape == "line":
        dash = ' stroke-dasharray="4 2"' if key.dash else ""
        return f'<line x1="{x}" y1="{y + 6}" x2="{x + 14}" y2="{y + 6}" stroke="{key.color}" stroke-width="2.5"{dash}/>'
    return f'<rect x="{x}" y="{y + 1}" width="10" height="10" fill="{key.color}"/>'


def legend(keys: Sequence[Key], *, x: float, y: float, width: float) -> tuple[str, float]:
    """The keys in rows from (x, y), a row wrapped before it would pass `width`; returns the SVG and the
    height it takes (0 without keys)."""
    parts, cx, cy = [], x, y
    for key in keys:
        size = 20 + text_width(key.label)
        if cx > x and cx + size > x + width:
            cx, cy = x, cy + 17
        parts.append(_swatch(key, cx, cy) + text(cx + 18, cy + 10, key.label))
        cx += size + 14
    return "".join(parts), (cy - y + 20 if keys else 0)
