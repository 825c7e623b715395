"""Inline SVG bar charts of deliveries, succeeded vs failed (the customer portal).

Pure and deterministic: the same buckets give the same bytes. The SVG has no script, no
style sheet, no external reference (it works offline and under a strict
Content-Security-Policy, ``style-src`` included: colours are presentation attributes),
``role="img"`` with an ``aria-label`` summing it up, and a ``<title>`` per bar with its
numbers (a screen reader and a mouse-over both get them). Every text is escaped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol
from xml.sax.saxutils import escape, quoteattr

SUCCEEDED_COLOUR = "#2e7d32"
FAILED_COLOUR = "#c62828"
AXIS_COLOUR = "#555555"


@dataclass(frozen=True)
class Bar:
    """One bucket: its axis label (``"14h"``), the longer text of its tooltip
    (``"2026-12-02 14:00 UTC"``), and its counts."""

    label: str
    title: str
    succeeded: int
    failed: int


def _fmt(value: float) -> str:
    """Coordinates with at most one decimal, no trailing zeros (deterministic)."""
    text = f"{value:.1f}"
    return text[:-2] if text.endswith(".0") else text


def _nice_max(value: int) -> int:
    """The top of the y axis: 1, 2 or 5 times a power of ten, at least ``value``."""
    if value <= 0:
        return 1
    step = 1
    while True:
        for factor in (1, 2, 5):
            if step * factor >= value:
                return step * factor
        step *= 10


def bar_chart(bars: Sequence[Bar], *, label: str, stacked: bool = True,
              width: int = 480, height: int = 160, label_every: int = 1,
              small: bool = False) -> str:
    """An ``<svg>`` of ``bars``: succeeded (green) and failed (red), stacked in one
    column per bucket or side by side (``stacked=False``). ``label`` names the chart
    (its ``aria-label`` adds the totals). ``label_every``: label every n-th bucket on
    the x axis. ``small``: a sparkline for a table cell (no axes, no labels; the bars
    keep their titles)."""
    total_ok = sum(b.succeeded for b in bars)
    total_failed = sum(b.failed for b in bars)
    summary = f"{label}: {total_ok} succeeded, {total_failed} failed"
    left, right, top, bottom = (0, 0, 2, 2) if small else (36, 6, 8, 22)
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = max([b.succeeded + b.failed if stacked else max(b.succeeded, b.failed)
                for b in bars] or [0])
    y_max = _nice_max(peak)
    count = max(len(bars), 1)
    slot = plot_w / count
    gap = min(2.0, slot * 0.2)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" role="img" '
             f'aria-label={quoteattr(summary)} width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="10">',
             f"<title>{escape(summary)}</title>"]

    def y_of(value: float) -> float:
        return top + plot_h - plot_h * value / y_max

    if not small:
        for value in (0, y_max // 2 if y_max >= 2 else None, y_max):
            if value is None:
                continue
            y = y_of(value)
            parts.append(f'<line x1="{left}" y1="{_fmt(y)}" x2="{width - right}" '
                         f'y2="{_fmt(y)}" stroke="#dddddd" stroke-width="1"/>')
            parts.append(f'<text x="{left - 4}" y="{_fmt(y + 3)}" text-anchor="end" '
                         f'fill="{AXIS_COLOUR}">{value}</text>')
    for index, bar in enumerate(bars):
        x = left + index * slot + gap / 2
        w = slot - gap
        tip = (f"{bar.title}: {bar.succeeded} succeeded, {bar.failed} failed")
        parts.append(f"<g><title>{escape(tip)}</title>")
        # An invisible full-height target, so even an empty bucket has its tooltip.
        parts.append(f'<rect x="{_fmt(x)}" y="{top}" width="{_fmt(w)}" height="{plot_h}" '
                     f'fill="transparent"/>')
        if stacked:
            segments = [(bar.succeeded, 0, SUCCEEDED_COLOUR, x, w),
                        (bar.failed, bar.succeeded, FAILED_COLOUR, x, w)]
        else:
            half = w / 2
            segments = [(bar.succeeded, 0, SUCCEEDED_COLOUR, x, half),
                        (bar.failed, 0, FAILED_COLOUR, x + half, half)]
        for value, base, colour, seg_x, seg_w in segments:
            if value <= 0:
                continue
            y_top, y_base = y_of(base + value), y_of(base)
            parts.append(f'<rect x="{_fmt(seg_x)}" y="{_fmt(y_top)}" width="{_fmt(seg_w)}" '
                         f'height="{_fmt(max(y_base - y_top, 0.5))}" fill="{colour}"/>')
        parts.append("</g>")
        if not small and label_every > 0 and index % label_every == 0:
            parts.append(f'<text x="{_fmt(x + w / 2)}" y="{height - 8}" text-anchor="middle" '
                         f'fill="{AXIS_COLOUR}">{escape(bar.label)}</text>')
    if not small:
        parts.append(f'<line x1="{left}" y1="{_fmt(top + plot_h)}" x2="{width - right}" '
                     f'y2="{_fmt(top + plot_h)}" stroke="{AXIS_COLOUR}" stroke-width="1"/>')
    parts.append("</svg>")
    return "".join(parts)


def legend() -> str:
    """A small SVG legend (succeeded, failed) to put beside the charts."""
    return ('<svg xmlns="http://www.w3.org/2000/svg" role="img" '
            'aria-label="Legend: green succeeded, red failed" width="170" height="14" '
            'viewBox="0 0 170 14" font-family="sans-serif" font-size="11">'
            f'<rect x="0" y="2" width="10" height="10" fill="{SUCCEEDED_COLOUR}"/>'
            '<text x="14" y="11">succeeded</text>'
            f'<rect x="86" y="2" width="10" height="10" fill="{FAILED_COLOUR}"/>'
            '<text x="100" y="11">failed</text></svg>')


class Counts(Protocol):
    """A bucket as store.portal gives it: its start (UNIX s) and its two counts."""

    @property
    def start(self) -> float: ...
    @property
    def succeeded(self) -> int: ...
    @property
    def failed(self) -> int: ...


def _utc(start: float) -> datetime:
    return datetime.fromtimestamp(start, UTC)


def hour_bars(buckets: Sequence[Counts]) -> list[Bar]:
    """Bars of hourly buckets: labelled ``14h``, titled ``2026-12-02 14:00-15:00 UTC``."""
    return [Bar(f"{_utc(b.start):%H}h",
                f"{_utc(b.start):%Y-%m-%d %H:00}-{_utc(b.start + 3600):%H:00} UTC",
                b.succeeded, b.failed) for b in buckets]


def day_bars(buckets: Sequence[Counts]) -> list[Bar]:
    """Bars of daily buckets: labelled ``12-02``, titled ``2026-12-02 (UTC)``."""
    return [Bar(f"{_utc(b.start):%m-%d}", f"{_utc(b.start):%Y-%m-%d} (UTC)",
                b.succeeded, b.failed) for b in buckets]
