"""Charts drawn on the server: an inline SVG bar chart and the shade classes of the heatmap
table. Every value is also written as text, so neither needs colour to be read."""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup, escape

SHADES = 8
"""Heatmap cells get one of ``shade-0`` .. ``shade-7`` (hub.css), low to high."""

_ROW = 26
_LABEL = 72
_BAR = 240
_VALUE = 64


def bar_chart(
    items: Sequence[tuple[str, float]], *, title: str, marked: str | None = None
) -> Markup:
    """Horizontal bars, one per (label, value), scaled to 1 (or to the largest value above 1);
    the ``marked`` label is suffixed with ``*`` (and drawn darker)."""
    if not items:
        return Markup("")
    top = max(1.0, *(v for _, v in items))
    width = _LABEL + _BAR + _VALUE
    height = _ROW * len(items) + 4
    summary = ", ".join(f"{label} {value:.3f}" for label, value in items)
    parts = [
        f'<svg class="bars" role="img" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" aria-label="{escape(title)}: {escape(summary)}">',
        f"<title>{escape(title)}</title>",
    ]
    for index, (label, value) in enumerate(items):
        y = index * _ROW + 2
        length = max(0.0, value) / top * _BAR
        own = label == marked
        parts.append(
            f'<text class="bar-label" x="{_LABEL - 8}" y="{y + 17}" text-anchor="end">'
            f"{escape(label)}{'*' if own else ''}</text>"
            f'<rect class="bar-track" x="{_LABEL}" y="{y + 3}" width="{_BAR}" height="{_ROW - 8}"/>'
            f'<rect class="bar{" bar-own" if own else ""}" x="{_LABEL}" y="{y + 3}" '
            f'width="{length:.1f}" height="{_ROW - 8}"/>'
            f'<text class="bar-value" x="{_LABEL + _BAR + 6}" y="{y + 17}">{value:.3f}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def shade(value: float, low: float, high: float) -> int:
    """The heatmap class index of ``value`` between ``low`` and ``high``."""
    if high <= low:
        return SHADES - 1
    position = (value - low) / (high - low)
    return min(SHADES - 1, max(0, int(position * SHADES)))
