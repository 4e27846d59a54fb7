"""Charts drawn on the server as inline SVG: no script, no style attribute, nothing to load.

Colours come from classes the page's one stylesheet defines (`s0`..`s3` for series,
`h0`..`h5` for heatmap levels), so the page's CSP needs no `unsafe-inline` and dark mode
is a media query. Each chart is `role="img"` with a sentence that says what it shows;
each bar and cell carries a `<title>` with its exact figure (a browser shows it on hover).
Labels are escaped here: they can be visitors' text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from cookie_gate.terminal import printable

WIDTH = 720
HEIGHT = 220
LEFT = 48  # room for the y axis labels
BOTTOM = 22  # room for the x axis labels
TOP = 8
MAX_X_LABELS = 8  # on a full-width chart; fewer on a narrower one
NARROW = 360
HEAT_LEVELS = 6


@dataclass(frozen=True, slots=True)
class Series:
    """One named row of figures, drawn in colour `index` (0..3)."""

    name: str
    values: Sequence[float]
    index: int = 0


def _text(value: object) -> str:
    return escape(printable(str(value)))


def _number(value: float, percent: bool) -> str:
    return f"{value:.0%}" if percent else f"{value:,.0f}"


def _nice_ceiling(value: float) -> float:
    """The smallest 1, 2 or 5 times a power of ten at or above `value`, so axis labels are round."""
    if value <= 0:
        return 1
    step = 1.0
    while step * 10 <= value:
        step *= 10
    for factor in (1, 2, 5, 10):
        if step * factor >= value:
            return step * factor
    return step * 10


def columns(
    labels: Sequence[str],
    bars: Sequence[Series],
    lines: Sequence[Series] = (),
    *,
    summary: str,
    percent: bool = False,
    width: int = WIDTH,
) -> str:
    """Stacked columns per label and lines over them, on one y axis from zero; a narrow `width`
    draws the same in fewer units, so its text stays legible in a small box."""
    count = max(len(labels), 1)
    stacked = [sum(s.values[i] for s in bars) for i in range(len(labels))]
    peak = max([*stacked, *(v for s in lines for v in s.values), 0.0])
    top = 1.0 if percent else _nice_ceiling(peak)
    plot_w, plot_h = width - LEFT - 4, HEIGHT - TOP - BOTTOM
    slot = plot_w / count
    parts = [_svg_open(summary, HEIGHT, width)]
    for tick in (0.0, top / 2, top):
        y = TOP + plot_h - plot_h * tick / top
        parts.append(f'<line class="grid" x1="{LEFT}" x2="{width - 4}" y1="{y:.1f}" y2="{y:.1f}"/>')
        parts.append(
            f'<text class="axis" x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{_number(tick, percent)}</text>'
        )
    for i, label in enumerate(labels):
        base = 0.0
        x = LEFT + i * slot + slot * 0.12
        for series in bars:
            value = series.values[i]
            if value:
                h = plot_h * value / top
                y = TOP + plot_h - plot_h * base / top - h
                parts.append(
                    f'<rect class="s{series.index}" x="{x:.1f}" y="{y:.1f}" width="{slot * 0.76:.1f}" height="{h:.1f}">'
                    f"<title>{_text(label)}: {_text(series.name)} {_number(value, percent)}</title></rect>"
                )
            base += value
    for series in lines:
        points = " ".join(
            f"{LEFT + (i + 0.5) * slot:.1f},{TOP + plot_h - plot_h * v / top:.1f}" for i, v in enumerate(series.values)
        )
        parts.append(
            f'<polyline class="line s{series.index}" points="{points}"><title>{_text(series.name)}</title></polyline>'
        )
    every = max(1, -(-len(labels) // (MAX_X_LABELS * width // WIDTH)))
    for i in range(0, len(labels), every):
        x = LEFT + (i + 0.5) * slot
        parts.append(f'<text class="axis" x="{x:.1f}" y="{HEIGHT - 6}" text-anchor="middle">{_text(labels[i])}</text>')
    parts.append("</svg>")
    return "".join(parts) + legend([*bars, *lines])


def heatmap(rows: Sequence[str], values: Sequence[Sequence[int]], *, summary: str) -> str:
    """A grid of rows (weekdays) by 24 hours, shaded in `HEAT_LEVELS` steps of the busiest cell."""
    peak = max((n for row in values for n in row), default=0)
    cell_w, cell_h = (WIDTH - LEFT - 4) / 24, 22
    height = TOP + cell_h * len(rows) + BOTTOM
    parts = [_svg_open(summary, height)]
    for r, (name, row) in enumerate(zip(rows, values, strict=True)):
        y = TOP + r * cell_h
        parts.append(
            f'<text class="axis" x="{LEFT - 6}" y="{y + cell_h * 0.7:.1f}" text-anchor="end">{_text(name)}</text>'
        )
        for hour, n in enumerate(row):
            level = 0 if not n else 1 + min(HEAT_LEVELS - 2, int((HEAT_LEVELS - 1) * n / (peak + 1)))
            parts.append(
                f'<rect class="h{level}" x="{LEFT + hour * cell_w:.1f}" y="{y:.1f}" width="{cell_w - 2:.1f}" '
                f'height="{cell_h - 2}"><title>{_text(name)} {hour:02d}:00: {n:,}</title></rect>'
            )
    for hour in range(0, 24, 3):
        x = LEFT + (hour + 0.5) * cell_w
        parts.append(f'<text class="axis" x="{x:.1f}" y="{height - 6}" text-anchor="middle">{hour:02d}</text>')
    parts.append("</svg>")
    return "".join(parts)


def legend(series: Sequence[Series]) -> str:
    if len(series) < 2:
        return ""
    keys = "".join(f'<li><span class="key s{s.index}"></span>{_text(s.name)}</li>' for s in series)
    return f'<ul class="legend">{keys}</ul>'


def _svg_open(summary: str, height: float = HEIGHT, width: int = WIDTH) -> str:
    return (
        f'<svg class="chart" viewBox="0 0 {width} {height:.0f}" role="img" aria-label="{_text(summary)}" '
        'xmlns="http://www.w3.org/2000/svg">'
    )
