"""Bar charts as inline SVG, drawn on the server: the page needs no script and nothing from the network."""

from __future__ import annotations

from html import escape

from .formats import cell

WIDTH = 760
COLORS = ("#2f6db5", "#e39b2d", "#3a9a5b", "#b5452f")
LEFT, RIGHT, TOP, BOTTOM = 84, 16, 34, 58


def _svg(ident: str, title: str, height: int, body: str) -> str:
    return (f'<svg id="{escape(ident, quote=True)}" class="chart" xmlns="http://www.w3.org/2000/svg" '
            f'width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" role="img" '
            f'aria-label="{escape(title, quote=True)}"><title>{escape(title)}</title>'
            f'<rect width="{WIDTH}" height="{height}" fill="#fff"/>'
            f'<text x="{LEFT}" y="20" font-size="14" font-weight="bold">{escape(title)}</text>{body}</svg>')


def _empty(ident: str, title: str) -> str:
    return _svg(ident, title, 80, f'<text x="{LEFT}" y="55" font-size="13" fill="#666">no usage in this report</text>')


def column_chart(ident: str, title: str, labels: list[str], series: dict[str, list[float]], unit: str,
                 height: int = 280) -> str:
    """Grouped vertical bars: one group per label (periods), one bar per series, a legend and a y axis."""
    peak = max((v for values in series.values() for v in values), default=0.0)
    if not labels or peak <= 0:
        return _empty(ident, title)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, height - TOP - BOTTOM
    slot = plot_w / len(labels)
    bar = max(1.0, slot * 0.8 / len(series))
    parts = []
    for i in range(5):  # y axis: gridlines at 0, 1/4 .. 1 of the peak
        value = peak * i / 4
        y = TOP + plot_h - plot_h * i / 4
        parts.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>'
                     f'<text x="{LEFT - 6}" y="{y + 4:.1f}" font-size="11" text-anchor="end">{cell(value)}</text>')
    parts.append(f'<text x="14" y="{TOP + plot_h / 2:.0f}" font-size="11" '
                 f'transform="rotate(-90 14 {TOP + plot_h / 2:.0f})" text-anchor="middle">{escape(unit)}</text>')
    every = max(1, round(len(labels) / 12))
    for n, label in enumerate(labels):
        x0 = LEFT + slot * n + slot * 0.1
        for s, (name, values) in enumerate(series.items()):
            h = plot_h * values[n] / peak
            parts.append(f'<rect x="{x0 + s * bar:.1f}" y="{TOP + plot_h - h:.1f}" width="{bar:.1f}" '
                         f'height="{h:.1f}" fill="{COLORS[s % len(COLORS)]}"><title>{escape(label)}: '
                         f'{escape(name)} {cell(values[n])} {escape(unit)}</title></rect>')
        if n % every == 0:
            x = LEFT + slot * n + slot / 2
            parts.append(f'<text x="{x:.1f}" y="{TOP + plot_h + 16}" font-size="11" '
                         f'text-anchor="middle">{escape(label)}</text>')
    for s, name in enumerate(series):  # legend
        x = LEFT + s * 190
        parts.append(f'<rect x="{x}" y="{height - 22}" width="12" height="12" fill="{COLORS[s % len(COLORS)]}"/>'
                     f'<text x="{x + 18}" y="{height - 12}" font-size="12">{escape(name)}</text>')
    return _svg(ident, title, height, "".join(parts))


def bar_chart(ident: str, title: str, items: list[tuple[str, float]], unit: str) -> str:
    """Horizontal bars, largest first (top users, top processes), each labelled with its value."""
    peak = max((v for _, v in items), default=0.0)
    if not items or peak <= 0:
        return _empty(ident, title)
    label_w, row = 170, 24
    height = TOP + row * len(items) + 12
    plot_w = WIDTH - label_w - RIGHT - 90
    parts = []
    for n, (label, value) in enumerate(items):
        y = TOP + row * n
        w = plot_w * value / peak
        text = label if len(label) <= 24 else label[:23] + "…"
        parts.append(f'<text x="{label_w - 8}" y="{y + 15}" font-size="12" text-anchor="end">{escape(text)}</text>'
                     f'<rect x="{label_w}" y="{y + 3}" width="{max(w, 1):.1f}" height="{row - 7}" '
                     f'fill="{COLORS[0]}"><title>{escape(label)}: {cell(value)} {escape(unit)}</title></rect>'
                     f'<text x="{label_w + w + 6:.1f}" y="{y + 15}" font-size="11">{cell(value)} '
                     f'{escape(unit)}</text>')
    return _svg(ident, title, height, "".join(parts))
