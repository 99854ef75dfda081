"""Server-rendered SVG charts (no script needed to read them), in French.

Each chart is a ``<figure class="chart" data-chart="{id}">`` with a ``<figcaption>``, an inline
``<svg role="img" aria-label="...">``, a link ``<a class="csv" href="..." download>`` to its CSV
and, in a ``<details>``, a ``<table class="chart-data">`` holding the same rows as the CSV (same
header, same cells: the date or area code first, then the values).

Time charts put one day per slot on the x axis, from the first to the last day: a missing day is
a gap (no bar; the line is cut, never joined across it nor drawn at zero). Their paths are
written by Arrow's kernels (``opendepot.site.columns``), not one Python string per day.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import date, timedelta

import numpy as np
from markupsafe import Markup, escape

from opendepot.site import columns, fr_number

Value = float | None
Values = Sequence[Value] | np.ndarray
"""A daily series: a sequence (None missing) or a float array (NaN missing)."""
WIDTH, HEIGHT = 720, 260
LEFT, RIGHT, TOP, BOTTOM = 64, 12, 12, 30
MONTHS_SHORT = ("janv.", "févr.", "mars", "avr.", "mai", "juin", "juil.", "août", "sept.",
                "oct.", "nov.", "déc.")


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values covering ``[low, high]`` (about ``count`` of them, 1-2-5 steps)."""
    if high <= low:
        high = low + 1
    raw = (high - low) / count
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.floor(low / step) * step
    ticks = []
    v = start
    while v < high + step * 0.999:
        ticks.append(round(v, 10))
        v += step
    return ticks


def axis_label(value: float) -> str:
    """A y-axis label: French thousands separator, decimals only when needed."""
    return fr_number(value, 0 if float(value).is_integer() else 1)


def _month_ticks(start: date, days: int) -> list[tuple[int, str]]:
    """(day index, label) at month starts; every 2nd, 3rd or 6th month on long series."""
    every = 1 if days <= 200 else 2 if days <= 450 else 3 if days <= 900 else 6
    out, d, first = [], date(start.year, start.month, 1), True
    while (d - start).days < days:
        if (d - start).days >= 0 and (d.month - 1) % every == 0:
            label = MONTHS_SHORT[d.month - 1]
            if first or d.month == 1:
                label += f" {d.year}"
            out.append(((d - start).days, label))
            first = False
        d = date(d.year + (d.month == 12), d.month % 12 + 1, 1)
    return out


def _floats(values: Values | None) -> np.ndarray:
    if values is None:
        return np.empty(0)
    if isinstance(values, np.ndarray):
        return values.astype(np.float64, copy=False)
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)


def _path_line(xs: np.ndarray, ys: np.ndarray) -> str:
    """A path through the points, cut where y is NaN (a gap, never joined)."""
    known = ~np.isnan(ys)
    idx = np.flatnonzero(known)
    if len(idx) == 0:
        return ""
    after_gap = np.ones(len(idx), dtype=bool)
    after_gap[1:] = idx[1:] != idx[:-1] + 1
    after_gap[0] = True
    moves = np.where(after_gap, "M", "L")
    return columns.concat(columns.join([
        columns.pa_strings(moves), columns.fixed(xs[idx], 1), " ", columns.fixed(ys[idx], 1)]))


def time_chart_svg(
    label: str, start: date, bars: Values | None, line: Values | None,
) -> Markup:
    """An SVG of daily ``bars`` and/or a ``line`` from ``start`` (one slot per day)."""
    b, ln = _floats(bars), _floats(line)
    n = max(len(b), len(ln), 1)
    known = np.concatenate([b[~np.isnan(b)], ln[~np.isnan(ln)]])
    ticks = nice_ticks(min(0.0, float(known.min()) if len(known) else 0.0),
                       max(0.0, float(known.max()) if len(known) else 0.0) or 1.0)
    lo, hi = ticks[0], ticks[-1]
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / n

    def y(v: float) -> float:
        return TOP + plot_h * (hi - v) / (hi - lo)

    def x(i: int) -> float:
        return LEFT + slot * (i + 0.5)

    out = [f'<svg role="img" aria-label="{escape(label)}" viewBox="0 0 {WIDTH} {HEIGHT}" '
           f'width="{WIDTH}" height="{HEIGHT}" data-start="{start.isoformat()}" data-days="{n}" '
           f'data-x0="{LEFT}" data-slot="{slot:.4f}" focusable="false">']
    out.append('<g class="axis y">')
    for t in ticks:
        out.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(t):.1f}" y2="{y(t):.1f}"/>'
                   f'<text x="{LEFT - 6}" y="{y(t) + 4:.1f}">{escape(axis_label(t))}</text>')
    out.append('</g><g class="axis x">')
    for i, text in _month_ticks(start, n):
        out.append(f'<line x1="{x(i):.1f}" x2="{x(i):.1f}" y1="{TOP + plot_h}" '
                   f'y2="{TOP + plot_h + 5}"/><text x="{x(i):.1f}" y="{HEIGHT - 8}">'
                   f'{escape(text)}</text>')
    out.append("</g>")
    if len(b):
        w, base = max(slot * 0.8, 0.6), y(0)
        idx = np.flatnonzero(~np.isnan(b))
        d = "" if len(idx) == 0 else columns.concat(columns.join([
            "M", columns.fixed(LEFT + slot * (idx + 0.5) - w / 2, 1), f" {base:.1f}V",
            columns.fixed(TOP + plot_h * (hi - b[idx]) / (hi - lo), 1),
            f"h{w:.1f}V{base:.1f}z"]))
        out.append(f'<path class="bars" d="{d}"/>')
    if len(ln):
        xs, ys = LEFT + slot * (np.arange(len(ln)) + 0.5), TOP + plot_h * (hi - ln) / (hi - lo)
        out.append(f'<path class="line" d="{_path_line(xs, ys)}"/>')
    out.append(f'<line class="marker" x1="0" x2="0" y1="{TOP}" y2="{TOP + plot_h}" '
               'visibility="hidden"/></svg>')
    return Markup("".join(out))


def bar_chart_svg(label: str, items: Sequence[tuple[str, Value]], fmt: str = "int") -> Markup:
    """Horizontal bars, one per ``(label, value)``, largest scale at the widest value; a
    missing value has no bar and reads "non publié"."""
    row, left, right = 26, 310, 110
    height = TOP + row * len(items) + 8
    top = max([0.0, *(v for _, v in items if v is not None)]) or 1.0
    out = [f'<svg role="img" aria-label="{escape(label)}" viewBox="0 0 {WIDTH} {height}" '
           f'width="{WIDTH}" height="{height}" focusable="false">']
    for k, (name, v) in enumerate(items):
        y0 = TOP + row * k
        short = name if len(name) <= 42 else name[:41] + "…"
        out.append(f'<text class="label" x="{left - 8}" y="{y0 + 16}">{escape(short)}</text>')
        if v is not None:
            w = (WIDTH - left - right) * v / top
            out.append(f'<rect class="bar" x="{left}" y="{y0 + 4}" width="{w:.1f}" '
                       f'height="{row - 8}"/>'
                       f'<text class="value" x="{left + w + 6:.1f}" y="{y0 + 16}">'
                       f'{escape(format_value(v, fmt))}</text>')
        else:
            out.append(f'<text class="value" x="{left + 6}" y="{y0 + 16}">non publié</text>')
    out.append("</svg>")
    return Markup("".join(out))


def format_value(v: float, fmt: str = "int") -> str:
    """``int``: ``1 234``; ``euro``: ``1 234 567 €`` (``12,3 M€`` past ten million, ``35,5 Md€``
    past a billion)."""
    if fmt == "euro":
        if abs(v) >= 1e9:
            return f"{fr_number(v / 1e9, 1)} Md€"
        return f"{fr_number(v / 1e6, 1)} M€" if abs(v) >= 1e7 else f"{fr_number(v, 0)} €"
    return fr_number(v, 0 if float(v).is_integer() else 1)


def _esc(text: str) -> str:
    """``text`` escaped for HTML (fast path: dates and numbers need nothing)."""
    return str(escape(text)) if any(ch in text for ch in "<>&'\"") else text


def _title(text: str) -> str:
    return f' title="{escape(text)}"'


def figure(
    chart_id: str, caption: str, svg: Markup, csv_href: str, header: Sequence[str],
    table: Sequence[Sequence[str]], legend: str = "", titles: Sequence[str] | None = None,
    *, rows_html: str | None = None,
) -> Markup:
    """The chart's ``<figure>`` (see module docstring): ``header``/``table`` are exactly the CSV's
    header and cells; ``titles`` (optional) are readable column titles shown as ``title``
    attributes of the header cells. ``rows_html``: the table's rows already written
    (``columns.html_rows``, for long series), instead of ``table``."""
    heads = "".join(f'<th scope="col"{_title(t) if titles else ""}>{escape(h)}</th>'
                    for h, t in zip(header, titles or header, strict=False))
    body = rows_html if rows_html is not None else "".join(
        "<tr><td>" + _esc(r[0]) + "</td>"
        + "".join(f'<td class="num">{_esc(c)}</td>' for c in r[1:]) + "</tr>" for r in table)
    legend_html = f'<p class="chart-legend muted">{escape(legend)}</p>' if legend else ""
    return Markup(
        f'<figure class="chart" data-chart="{escape(chart_id)}"><figcaption>{escape(caption)}'
        f"</figcaption>{svg}{legend_html}"
        f'<p><a class="csv" href="{escape(csv_href)}" download>Télécharger les données (CSV)'
        "</a></p>"
        f'<details><summary>Tableau des données</summary><div class="table-scroll">'
        f'<table class="chart-data"><thead><tr>{heads}</tr></thead><tbody>{body}</tbody></table>'
        f"</div></details></figure>")


def day_range(start: date, days: int) -> list[date]:
    """``days`` consecutive days from ``start``."""
    return [start + timedelta(days=i) for i in range(days)]
