"""Charts as inline SVG, written by hand: axes with round ticks, lines, dots, rules and a legend.

Every coordinate is printed with one decimal, so equal data give byte-equal charts."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape

Point = tuple[float, float]

# Tableau's twenty colours, the ten strong ones first: distinct, readable on white, and fine
# for most colour-blind readers; a report draws at most twelve personas.
PALETTE = (
    *("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f"),
    *("#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"),
    *("#a0cbe8", "#ffbe7d", "#8cd17d", "#b6992d", "#f1ce63"),
    *("#86bcb6", "#ff9d9a", "#79706e", "#d37295", "#d4a6c8"),
)
_MARGIN_LEFT, _MARGIN_RIGHT, _MARGIN_TOP, _MARGIN_BOTTOM = 46.0, 46.0, 34.0, 38.0
_NOTE_HEIGHT = 12.0  # a chart with a note under its title starts its plot this much lower
_DURATIONS = (  # steps of a time axis, in seconds: whole minutes, hours, days, weeks
    *(60 * m for m in (1, 2, 5, 10, 15, 30)),
    *(3600 * h for h in (1, 2, 3, 6, 12)),
    *(86_400 * d for d in (1, 2, 7, 14, 28, 56, 91, 182, 364)),
)


def colour(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


@dataclass(frozen=True)
class Axis:
    """A range of values and the ticks shown on it, with their labels."""

    low: float
    high: float
    ticks: tuple[tuple[float, str], ...]
    label: str = ""

    def share(self, value: float) -> float:
        """Where the value lies between low (0) and high (1)."""
        span = self.high - self.low
        return 0.5 if span <= 0 else (value - self.low) / span


def number_axis(low: float, high: float, label: str = "", count: int = 5) -> Axis:
    """An axis from low to high widened to round ticks (1, 2 or 5 times a power of ten)."""
    if not high > low:
        low, high = low - 0.5, high + 0.5
    raw = (high - low) / count
    power = 10.0 ** math.floor(math.log10(raw))
    step = next(k * power for k in (1, 2, 5, 10) if k * power >= raw)
    first, last = math.floor(low / step + 1e-9), math.ceil(high / step - 1e-9)
    ticks = tuple((i * step, _number(i * step, step)) for i in range(first, last + 1))
    return Axis(first * step, last * step, ticks, label)


def time_axis(start: float, end: float, label: str = "", count: int = 6) -> Axis:
    """Virtual time from start to end, ticked at round durations after the start (6h, 1d...)."""
    span = max(end - start, 1.0)
    step = next((d for d in _DURATIONS if d * count >= span), _DURATIONS[-1])
    ticks = tuple((start + i * step, duration(i * step)) for i in range(int(span // step) + 1))
    return Axis(start, start + span, ticks, label)


def duration(seconds: float) -> str:
    """A duration as a tick shows it: 0, 45m, 6h, 1d12h, 2w."""
    seconds = round(seconds)
    if seconds == 0:
        return "0"
    parts = []
    for unit, size in (("w", 604_800), ("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return "".join(parts[:2])


def _number(value: float, step: float) -> str:
    decimals = max(0, -math.floor(math.log10(step) + 1e-9))
    text = f"{value:.{decimals}f}"
    return "0" if text.strip("-0.") == "" else text


@dataclass(frozen=True)
class Series:
    """What a legend names: a colour, drawn as a line, a dashed line or a dot."""

    label: str
    colour: str
    mark: str  # line, dashed, dot, ring


@dataclass
class Chart:
    """One chart: marks added in drawing order, rendered to an <svg> element."""

    title: str
    x: Axis
    y: Axis
    right: Axis | None = None  # a second value axis on the right, for a second measure
    width: float = 380.0
    height: float = 220.0
    marks: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)  # drawn over the marks, to stay readable
    legend: list[Series] = field(default_factory=list)
    note: str = ""  # a line under the chart's title, in grey; it moves the plot: set it first

    @property
    def _top(self) -> float:
        return _MARGIN_TOP + (_NOTE_HEIGHT if self.note else 0.0)

    def _px(self, x: float) -> float:
        return _MARGIN_LEFT + self.x.share(x) * (self.width - _MARGIN_LEFT - _MARGIN_RIGHT)

    def _py(self, y: float, axis: Axis | None = None) -> float:
        inner = self.height - self._top - _MARGIN_BOTTOM
        return self.height - _MARGIN_BOTTOM - (axis or self.y).share(y) * inner

    def _xy(self, point: Point, right: bool = False) -> str:
        return f"{self._px(point[0]):.1f},{self._py(point[1], self.right if right else None):.1f}"

    def line(
        self,
        points: Sequence[Point],
        colour: str,
        label: str = "",
        dashed: bool = False,
        right: bool = False,
    ) -> None:
        """A polyline through the points, in order; on the right axis if `right`."""
        if points:
            dash = ' stroke-dasharray="5 3"' if dashed else ""
            path = " ".join(self._xy(p, right) for p in points)
            self.marks.append(
                f'<polyline points="{path}" fill="none" stroke="{colour}" '
                f'stroke-width="1.6"{dash}/>'
            )
        if label:
            self.legend.append(Series(label, colour, "dashed" if dashed else "line"))

    def dots(
        self,
        points: Sequence[Point],
        colour: str,
        label: str = "",
        filled: bool = True,
        faint: bool = False,
    ) -> None:
        """A circle at each point: filled, or a ring; faint ones show a cloud behind a line."""
        paint = f'fill="{colour}"' if filled else f'fill="white" stroke="{colour}"'
        if faint:
            paint += ' opacity="0.3"'
        for point in points:
            x, y = self._xy(point).split(",")
            self.marks.append(f'<circle cx="{x}" cy="{y}" r="2.6" {paint}/>')
        if label:
            self.legend.append(Series(label, colour, "dot" if filled else "ring"))

    def span(self, x: float, low: float, high: float, colour: str) -> None:
        """A vertical bar from low to high at x: a spread."""
        top, bottom = self._py(high), self._py(low)
        px = self._px(x)
        self.marks.append(
            f'<line x1="{px:.1f}" y1="{top:.1f}" x2="{px:.1f}" y2="{bottom:.1f}" '
            f'stroke="{colour}" stroke-width="1"/>'
        )

    def rule_x(self, x: float, label: str) -> None:
        """A grey dashed vertical rule at x (an intervention), labelled at its top."""
        px = self._px(x)
        top, bottom = self._top, self.height - _MARGIN_BOTTOM
        self.marks.append(
            f'<line x1="{px:.1f}" y1="{top:.1f}" x2="{px:.1f}" y2="{bottom:.1f}" '
            f'stroke="#888" stroke-dasharray="3 3"/>'
        )
        self.labels.append(
            f'<text x="{px + 3:.1f}" y="{top + 9:.1f}" class="rule">{escape(label)}</text>'
        )

    def rule_y(self, y: float, label: str) -> None:
        """A grey dashed horizontal rule at y (a threshold), labelled at its right end."""
        py = self._py(y)
        left, right = _MARGIN_LEFT, self.width - _MARGIN_RIGHT
        self.marks.append(
            f'<line x1="{left:.1f}" y1="{py:.1f}" x2="{right:.1f}" y2="{py:.1f}" '
            f'stroke="#888" stroke-dasharray="3 3"/>'
        )
        if label:
            self.labels.append(
                f'<text x="{right - 2:.1f}" y="{py - 3:.1f}" class="rule" '
                f'text-anchor="end">{escape(label)}</text>'
            )

    def render(self) -> str:
        parts = [
            f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{self.width:.0f}" '
            f'height="{self.height:.0f}" viewBox="0 0 {self.width:.0f} {self.height:.0f}" '
            f'role="img" aria-label="{escape(self.title)}">',
            f'<text x="{_MARGIN_LEFT:.1f}" y="14" class="title">{escape(self.title)}</text>',
        ]
        if self.note:
            parts.append(
                f'<text x="{_MARGIN_LEFT:.1f}" y="26" class="note">{escape(self.note)}</text>'
            )
        parts += [self._frame(), *self._ticks(), *self.marks, *self.labels, *self._legend()]
        return "".join([*parts, "</svg>"])

    def _frame(self) -> str:
        left, top = _MARGIN_LEFT, self._top
        inner_w = self.width - _MARGIN_LEFT - _MARGIN_RIGHT
        inner_h = self.height - top - _MARGIN_BOTTOM
        return (
            f'<rect x="{left:.1f}" y="{top:.1f}" width="{inner_w:.1f}" height="{inner_h:.1f}" '
            f'fill="#fafafa" stroke="#ccc"/>'
        )

    def _ticks(self) -> list[str]:
        left, right = _MARGIN_LEFT, self.width - _MARGIN_RIGHT
        bottom = self.height - _MARGIN_BOTTOM
        found = []
        for value, text in self.x.ticks:
            px = self._px(value)
            found.append(
                f'<line x1="{px:.1f}" y1="{bottom:.1f}" x2="{px:.1f}" y2="{bottom + 4:.1f}" '
                f'stroke="#999"/><text x="{px:.1f}" y="{bottom + 15:.1f}" class="tick" '
                f'text-anchor="middle">{escape(text)}</text>'
            )
        for value, text in self.y.ticks:
            py = self._py(value)
            found.append(
                f'<line x1="{left:.1f}" y1="{py:.1f}" x2="{right:.1f}" y2="{py:.1f}" '
                f'stroke="#eee"/><text x="{left - 4:.1f}" y="{py + 3.5:.1f}" class="tick" '
                f'text-anchor="end">{escape(text)}</text>'
            )
        for value, text in self.right.ticks if self.right else ():
            py = self._py(value, self.right)
            found.append(
                f'<text x="{right + 4:.1f}" y="{py + 3.5:.1f}" class="tick">{escape(text)}</text>'
            )
        found += self._axis_labels(bottom)
        return found

    def _axis_labels(self, bottom: float) -> list[str]:
        middle = (self.height - _MARGIN_BOTTOM + self._top) / 2
        found = [
            f'<text x="{(self.width + _MARGIN_LEFT - _MARGIN_RIGHT) / 2:.1f}" '
            f'y="{bottom + 30:.1f}" class="axis" text-anchor="middle">'
            f"{escape(self.x.label)}</text>",
            f'<text transform="translate(11 {middle:.1f}) rotate(-90)" class="axis" '
            f'text-anchor="middle">{escape(self.y.label)}</text>',
        ]
        if self.right is not None:
            found.append(
                f'<text transform="translate({self.width - 6:.1f} {middle:.1f}) rotate(90)" '
                f'class="axis" text-anchor="middle">{escape(self.right.label)}</text>'
            )
        return found

    def _legend(self) -> list[str]:
        """The series' names in a row above the plot, right-aligned in reading order."""
        found, x = [], self.width - _MARGIN_RIGHT
        y = self._top - 6
        for series in reversed(self.legend):
            x -= 7.0 * len(series.label) + 4
            found.append(
                f'<text x="{x:.1f}" y="{y + 3.5:.1f}" class="legend">{escape(series.label)}</text>'
            )
            x -= 18
            found.append(_swatch(series, x, y))
            x -= 8
        return found


def _swatch(series: Series, x: float, y: float) -> str:
    if series.mark in ("dot", "ring"):
        paint = (
            f'fill="{series.colour}"'
            if series.mark == "dot"
            else f'fill="white" stroke="{series.colour}"'
        )
        return f'<circle cx="{x + 7:.1f}" cy="{y:.1f}" r="3" {paint}/>'
    dash = ' stroke-dasharray="4 2"' if series.mark == "dashed" else ""
    return (
        f'<line x1="{x:.1f}" y1="{y:.1f}" x2="{x + 14:.1f}" y2="{y:.1f}" '
        f'stroke="{series.colour}" stroke-width="2"{dash}/>'
    )


def rolling_mean(points: Sequence[Point], width: int) -> list[Point]:
    """Each point's value averaged with the `width` - 1 before it (fewer at the start): the
    trend of a noisy series."""
    found, total = [], 0.0
    for i, (x, y) in enumerate(points):
        total += y
        if i >= width:
            total -= points[i - width][1]
        found.append((x, total / min(i + 1, width)))
    return found


def thinned(points: Sequence[Point], most: int) -> list[Point]:
    """At most `most` of the points, evenly spaced, first and last kept: a long run's chart
    stays a few hundred kilobytes."""
    if len(points) <= most:
        return list(points)
    last = len(points) - 1
    return [points[round(i * last / (most - 1))] for i in range(most)]
