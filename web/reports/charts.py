"""Charts drawn on the server as inline SVG: no script, no style attribute (the CSP
allows neither inline), colours as SVG presentation attributes. Each returns Markup
with its figures as text too, so a reader without colour reads the numbers."""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup, escape

CURRENT, PREVIOUS, SECOND = "#2f6fb3", "#b8c7d9", "#e0883a"
LABEL_W, BAR_W, ROW_H = 170, 240, 22  # room for a long unit name; a phone scrolls the rest


def _svg(width: int, height: int, title: str, body: list[str]) -> Markup:
    return Markup(
        f'<svg class="chart-svg" role="img" viewBox="0 0 {width} {height}" width="{width}"'
        f' height="{height}" xmlns="http://www.w3.org/2000/svg" font-size="12"'
        f' font-family="sans-serif"><title>{escape(title)}</title>{"".join(body)}</svg>'
    )


def paired_bars(
    title: str,
    rows: Sequence[tuple[str, float | None, float | None]],
    scale: float,
    shown: Sequence[tuple[str, str]],
) -> Markup:
    """Horizontal bars, one pair per row: (label, current, previous or None). ``scale``
    is the value of a full bar; ``shown`` the text beside each bar, per row."""
    pairs = any(previous is not None for _, _, previous in rows)
    step = ROW_H * (2 if pairs else 1) + 6
    height = step * len(rows) + 8
    width = LABEL_W + BAR_W + 70
    body: list[str] = []
    for n, ((label, current, previous), (now_text, before_text)) in enumerate(
        zip(rows, shown, strict=True)
    ):
        y = 4 + n * step
        body.append(
            f'<text x="{LABEL_W - 6}" y="{y + 15}" text-anchor="end">{escape(label)}</text>'
        )
        bars = [(current, CURRENT, now_text)]
        if pairs:
            bars.append((previous, PREVIOUS, before_text))
        for k, (value, colour, text) in enumerate(bars):
            top = y + k * ROW_H
            w = 0 if value is None or scale <= 0 else max(1, round(BAR_W * min(value / scale, 1)))
            body.append(
                f'<rect x="{LABEL_W}" y="{top + 3}" width="{w}" height="{ROW_H - 6}"'
                f' fill="{colour}"/>'
                f'<text x="{LABEL_W + w + 4}" y="{top + 15}" fill="#333">{escape(text)}</text>'
            )
    return _svg(width, height, title, body)


def columns(
    title: str, labels: Sequence[str], first: Sequence[int], second: Sequence[int]
) -> Markup:
    """Vertical columns, two series per label (e.g. calls asked for and answered)."""
    top = max([*first, *second, 1])
    chart_h, col_w = 160, max(6, min(26, 560 // max(1, len(labels)) // 2 - 2))
    width = max(320, len(labels) * (2 * col_w + 6) + 50)
    body = [
        f'<line x1="40" y1="{chart_h + 10}" x2="{width - 5}" y2="{chart_h + 10}" stroke="#999"/>',
        f'<text x="36" y="20" text-anchor="end">{top}</text>',
        f'<text x="36" y="{chart_h + 10}" text-anchor="end">0</text>',
    ]
    for n, label in enumerate(labels):
        x = 46 + n * (2 * col_w + 6)
        for k, (value, colour) in enumerate(((first[n], CURRENT), (second[n], SECOND))):
            h = round(chart_h * value / top)
            body.append(
                f'<rect x="{x + k * col_w}" y="{chart_h + 10 - h}" width="{col_w - 1}"'
                f' height="{h}" fill="{colour}"><title>{escape(label)}: {value}</title></rect>'
            )
        if len(labels) <= 10 or n % 5 == 0:
            body.append(
                f'<text x="{x}" y="{chart_h + 26}" font-size="10">{escape(label[5:])}</text>'
            )
    return _svg(width, chart_h + 34, title, body)
