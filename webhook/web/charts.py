"""Server-side SVG charts for the admin dashboard.

Pure functions from numbers to SVG markup, standard library only. The admin pages send
`Content-Security-Policy: default-src 'self'`, so the markup uses presentation attributes only: no `style`
attribute, no `<style>` element, no script. The template inserts the result with `|safe`, so every piece of
text that comes from data is escaped here, and nothing else on the way to the page escapes it.

Each chart is an `<svg role="img">` whose `<title>` is the chart title and whose `<desc>` says in words what
the bars show, for screen readers; every bar has a `<title>` tooltip with its exact value. The title is not
drawn inside the picture: the page shows its own heading. Output depends only on the arguments, so the same
data gives the same string.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Sequence
from xml.sax.saxutils import escape

# Okabe-Ito: told apart by readers with the common colour-vision deficiencies. Its yellow is left out because
# it is too pale on white; past seven series the colours repeat, and the legend still names each one.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#000000")
INK = "#1b1f24"  # the stylesheet's --ink and --muted and --line, as literals: SVG attributes cannot use var()
MUTED = "#57606a"
GRID = "#d0d7de"
NO_DATA = "No data in this period"

WIDTH = 720  # viewBox units; the SVG itself is width="100%" and scales with the page
FONT_SIZE = 12
CHAR_WIDTH = 7.0  # rough advance of one character at FONT_SIZE, to reserve room for labels
MAX_X_LABELS = 10
MAX_LABEL_CHARS = 30

_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_ISO_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


def nice_ticks(maximum: float, count: int = 4) -> list[float]:
    """Round axis values from 0 up to at least `maximum`, about `count` steps of 1, 2 or 5 times a power of ten.

    With the default count this gives 3 to 5 values, e.g. 37 -> [0, 10, 20, 30, 40]. A maximum that is zero,
    negative or not a number gives the ticks for 1, so a chart of zeros still has an axis to draw.
    """
    if not math.isfinite(maximum) or maximum <= 0:
        maximum = 1.0
    count = max(1, count)
    exponent = math.floor(math.log10(maximum / count))

    def tick(units: int) -> float:
        """units * 10**exponent rounded once, as a float: 3 * 0.1 would give 0.30000000000000004."""
        return units * 10.0**exponent if exponent >= 0 else units / 10**-exponent

    # Compare the very values that will be returned, so the last tick is never an ulp short of the maximum.
    multiple = next((m for m in (1, 2, 5) if tick(m * count) >= maximum), 10)
    steps = count
    while steps > 1 and tick((steps - 1) * multiple) >= maximum:
        steps -= 1
    while tick(steps * multiple) < maximum:  # only if log10 rounded across a power of ten
        steps += 1
    return [tick(i * multiple) for i in range(steps + 1)]


def daily_bars(days: list[str], series: dict[str, list[int]], *, title: str) -> str:
    """Stacked vertical bars, one per day and one colour per series, with a legend, a y axis and date labels.

    `days` are ISO dates in order; `series` maps a name (e.g. 'sms') to counts aligned with `days`. Stacked
    rather than grouped so that a day's height is its total, and 90 days still fit. A count of zero (or less)
    draws no segment, though the totals in the text still add it. Raises ValueError when a series is not as
    long as `days`: misaligned data would otherwise draw a wrong chart without anyone noticing.
    """
    names = list(series)
    for name in names:
        if len(series[name]) != len(days):
            raise ValueError(f"series {name!r} has {len(series[name])} values for {len(days)} days")
    key = repr(("daily_bars", days, series, title))
    if not days or not names:
        return _empty(title, key)

    totals = [sum(series[name][i] for name in names) for i in range(len(days))]
    heights = [sum(max(0, series[name][i]) for name in names) for i in range(len(days))]
    ticks = _count_ticks(max(heights))
    top_value = ticks[-1]

    left = max(36.0, max(len(_count(t)) for t in ticks) * CHAR_WIDTH + 12)
    right = 16.0
    legend, legend_height = _legend(names, left, WIDTH - right)
    plot_top = legend_height + 12
    plot_height = 180.0
    bottom = plot_top + plot_height
    height = bottom + 24
    parts = legend

    for tick in ticks:
        y = bottom - tick / top_value * plot_height
        parts.append(f'<line x1="{_num(left)}" y1="{_num(y)}" x2="{_num(WIDTH - right)}" y2="{_num(y)}" '
                     f'stroke="{GRID if tick else MUTED}" stroke-width="1"/>')
        parts.append(f'<text x="{_num(left - 6)}" y="{_num(y + 4)}" text-anchor="end" fill="{MUTED}">{_count(tick)}</text>')

    slot = (WIDTH - right - left) / len(days)
    bar_width = slot * 0.8
    for i, day in enumerate(days):
        x = left + i * slot + (slot - bar_width) / 2
        stacked = bottom
        for n, name in enumerate(names):
            value = series[name][i]
            if value <= 0:
                continue
            segment = value / top_value * plot_height
            stacked -= segment
            tooltip = f"{day} · {name}: {_count(value)} (day total {_count(totals[i])})"
            parts.append(f'<rect x="{_num(x)}" y="{_num(stacked)}" width="{_num(bar_width)}" height="{_num(segment)}" '
                         f'fill="{_colour(n)}"><title>{_text(tooltip)}</title></rect>')

    step = math.ceil(len(days) / MAX_X_LABELS)
    previous_year = ""
    for i in range(0, len(days), step):
        day = days[i]
        label = day
        if _ISO_DAY.fullmatch(day):
            label = day if day[:4] != previous_year else day[5:]  # the year only where it starts or changes
            previous_year = day[:4]
        x = left + (i + 0.5) * slot
        parts.append(f'<text x="{_num(x)}" y="{_num(bottom + 16)}" text-anchor="middle" font-size="11" '
                     f'fill="{MUTED}">{_text(_shorten(label, 12))}</text>')

    return _svg(height, title, _daily_desc(days, series, totals), parts, key)


def horizontal_bars(rows: list[tuple[str, float]], *, title: str, value_format: str = "{:.0f}", max_rows: int = 15) -> str:
    """Horizontal bars in the order given (the caller sorts), label at the left, formatted value at each bar's end.

    `value_format` is a str.format pattern such as '{:.1%}'. Rows past `max_rows` are dropped, and the
    description says how many, so a screen reader knows the list is cut. Bars are scaled to the largest value
    shown; zero, negative and non-finite values get a bar of no width but still show their value.
    """
    shown = rows[: max(0, max_rows)]
    left_out = len(rows) - len(shown)
    key = repr(("horizontal_bars", rows, title, value_format, max_rows))
    if not shown:
        return _empty(title, key, _left_out(left_out))

    values = [_drawable(value) for _, value in shown]
    texts = [value_format.format(value) for _, value in shown]
    labels = [_shorten(label, MAX_LABEL_CHARS) for label, _ in shown]
    largest = max(values) or 1.0

    label_width = min(WIDTH * 0.4, max(40.0, max(len(label) for label in labels) * CHAR_WIDTH + 12))
    value_width = max(len(text) for text in texts) * CHAR_WIDTH + 8
    bar_area = WIDTH - label_width - value_width - 8
    row_height, bar_height, top = 24.0, 16.0, 8.0
    height = top * 2 + row_height * len(shown)

    parts: list[str] = []
    for i, ((label, _), short, value, text) in enumerate(zip(shown, labels, values, texts, strict=True)):
        y = top + i * row_height + (row_height - bar_height) / 2
        baseline = y + bar_height / 2 + 4
        width = value / largest * bar_area
        full_label = f"<title>{_text(label)}</title>" if short != label else ""
        parts.append(f'<text x="{_num(label_width - 8)}" y="{_num(baseline)}" text-anchor="end" fill="{INK}">'
                     f"{full_label}{_text(short)}</text>")
        parts.append(f'<rect x="{_num(label_width)}" y="{_num(y)}" width="{_num(width)}" height="{_num(bar_height)}" '
                     f'fill="{PALETTE[0]}"><title>{_text(f"{label}: {text}")}</title></rect>')
        parts.append(f'<text x="{_num(label_width + width + 4)}" y="{_num(baseline)}" fill="{INK}">{_text(text)}</text>')

    listing = "; ".join(f"{label}: {text}" for (label, _), text in zip(shown, texts, strict=True))
    noun = "row" if len(shown) == 1 else "rows"
    desc = f"Horizontal bar chart, {len(shown)} {noun} in this order: {listing}.{_left_out(left_out)}"
    return _svg(height, title, desc, parts, key)


def _count_ticks(maximum: float) -> list[float]:
    """Axis values for counts: never a fractional step, since half an unsubscribe means nothing."""
    ticks = nice_ticks(maximum)
    if ticks[1] >= 1:
        return ticks
    return [float(i) for i in range(max(2, math.ceil(maximum)) + 1)]


def _legend(names: Sequence[str], left: float, right: float) -> tuple[list[str], float]:
    """Swatch and name per series, wrapping onto more rows when the names do not fit on one."""
    parts: list[str] = []
    x, y = left, 6.0
    for n, name in enumerate(names):
        label = _shorten(name, 24)
        advance = 16 + len(label) * CHAR_WIDTH + 16
        if x > left and x + advance > right:
            x, y = left, y + 18
        parts.append(f'<rect x="{_num(x)}" y="{_num(y)}" width="12" height="12" fill="{_colour(n)}"/>')
        parts.append(f'<text x="{_num(x + 16)}" y="{_num(y + 10)}" fill="{INK}">{_text(label)}</text>')
        x += advance
    return parts, y + 12


def _daily_desc(days: list[str], series: dict[str, list[int]], totals: list[int]) -> str:
    """The chart in one paragraph: the period, the total per series and the busiest day."""
    period = f"{days[0]}" if len(days) == 1 else f"{days[0]} to {days[-1]}"
    noun = "day" if len(days) == 1 else "days"
    breakdown = ", ".join(f"{name} {_count(sum(values))}" for name, values in series.items())
    desc = f"Daily stacked bar chart, {period} ({len(days)} {noun}). Total {_count(sum(totals))}: {breakdown}."
    peak = max(range(len(days)), key=lambda i: totals[i])  # first of equal days, so the text is stable
    if totals[peak] > 0:
        desc += f" Busiest day {days[peak]} with {_count(totals[peak])}."
    return desc


def _empty(title: str, key: str, extra: str = "") -> str:
    """A chart-sized message rather than an exception or a blank hole in the page."""
    text = f'<text x="{WIDTH // 2}" y="44" text-anchor="middle" fill="{MUTED}">{NO_DATA}</text>'
    return _svg(80, title, f"{NO_DATA}.{extra}", [text], key)


def _svg(height: float, title: str, desc: str, parts: list[str], key: str) -> str:
    """The accessible outer element. Ids come from a hash of the arguments: stable, and distinct between charts."""
    ident = "chart-" + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:12]
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {_num(height)}" width="100%" role="img" '
        f'aria-labelledby="{ident}-title" aria-describedby="{ident}-desc" font-size="{FONT_SIZE}">'
        f'<title id="{ident}-title">{_text(title)}</title><desc id="{ident}-desc">{_text(desc)}</desc>'
        + "".join(parts)
        + "</svg>"
    )


def _left_out(count: int) -> str:
    if count <= 0:
        return ""
    return " 1 more row was left out." if count == 1 else f" {count} more rows were left out."


def _drawable(value: float) -> float:
    """Bar length input: what cannot be drawn as a positive length is drawn as nothing."""
    return value if math.isfinite(value) and value > 0 else 0.0


def _colour(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def _shorten(label: str, limit: int) -> str:
    """Cut before escaping, so an entity is never cut in half."""
    return label if len(label) <= limit else label[: limit - 1] + "…"


def _text(value: str) -> str:
    """Escape text for element content; characters XML cannot hold at all become U+FFFD."""
    return escape(_NOT_XML.sub("\ufffd", value))


def _count(value: float) -> str:
    return f"{int(value):,}" if float(value).is_integer() else f"{value:,}"


def _num(value: float) -> str:
    """Coordinates to two decimals without trailing zeros: short markup, and the same string every time."""
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text
