"""Server-rendered SVG charts: no script, no CDN, readable without colour.

Each pack gets a fill *and* a pattern (solid, stripes, dots, cross-hatch, ...), the legend
shows the same swatches, every bar has a ``<title>`` and totals are written on the bars,
and the page puts the same figures in a table next to the chart.
"""

from __future__ import annotations

from markupsafe import Markup, escape

from ..reports import Revenue

WIDTH = 760
HEIGHT = 280
LEFT, RIGHT, TOP, BOTTOM = 48, 12, 18, 46

#: (pattern id, fill colour, pattern body): the pattern carries the difference without colour.
PATTERNS: list[tuple[str, str, str]] = [
    ("p0", "#2481cc", ""),
    ("p1", "#f0a020", '<path d="M0,6 L6,0" stroke="#5a3a00" stroke-width="1.6"/>'),
    ("p2", "#2e9e4f", '<circle cx="3" cy="3" r="1.4" fill="#0c3b1a"/>'),
    ("p3", "#8a4fff", '<path d="M0,0 L6,6 M0,6 L6,0" stroke="#2a0d66" stroke-width="1.1"/>'),
    ("p4", "#6b7b8c", '<path d="M0,3 L6,3" stroke="#1d2731" stroke-width="1.6"/>'),
    ("p5", "#c0557a", '<path d="M3,0 L3,6" stroke="#4d1026" stroke-width="1.6"/>'),
]
REFUND_PATTERN = ("pr", "#f3c4c4", '<path d="M0,6 L6,0" stroke="#b02020" stroke-width="1.2"/>')


def pattern_for(index: int) -> str:
    """The ``fill`` of the ``index``-th pack (a pattern defined in the chart's ``<defs>``)."""
    return f"url(#{PATTERNS[index % len(PATTERNS)][0]})"


def swatch(index: int | None) -> Markup:
    """A small SVG square in the pack's pattern (``None``: refunds), for legends and tables."""
    pid, colour, body = REFUND_PATTERN if index is None else PATTERNS[index % len(PATTERNS)]
    return Markup(
        '<svg class="swatch" width="14" height="14" viewBox="0 0 14 14" aria-hidden="true">'
        f'<defs><pattern id="s{pid}" width="6" height="6" patternUnits="userSpaceOnUse">'
        f'<rect width="6" height="6" fill="{colour}"/>{body}</pattern></defs>'
        f'<rect width="14" height="14" fill="url(#s{pid})" stroke="#222" stroke-width="1"/></svg>'
    )


def _defs() -> str:
    parts = [
        f'<pattern id="{pid}" width="6" height="6" patternUnits="userSpaceOnUse">'
        f'<rect width="6" height="6" fill="{colour}"/>{body}</pattern>'
        for pid, colour, body in [*PATTERNS, REFUND_PATTERN]
    ]
    return "<defs>" + "".join(parts) + "</defs>"


def revenue_chart(revenue: Revenue, pack_names: dict[str, str], *, title: str, desc: str) -> Markup:
    """Stacked bars per day (one segment per pack), refunds below the axis, the net as dots."""
    days = revenue.days
    totals = [revenue.day_total(d) for d in days]
    top_value = max([t.stars for t in totals] + [1])
    low_value = max([t.refunded for t in totals] + [0])
    plot_h = HEIGHT - TOP - BOTTOM
    scale = plot_h / (top_value + low_value)
    zero = TOP + top_value * scale
    plot_w = WIDTH - LEFT - RIGHT
    slot = plot_w / len(days)
    bar = max(1.0, slot * 0.72)
    out = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        'aria-labelledby="chart-title chart-desc" xmlns="http://www.w3.org/2000/svg">',
        f'<title id="chart-title">{escape(title)}</title><desc id="chart-desc">{escape(desc)}</desc>',
        _defs(),
        f'<text x="{LEFT - 6}" y="{TOP + 4}" class="axis" text-anchor="end">{top_value}</text>',
        f'<text x="{LEFT - 6}" y="{zero + 4:.1f}" class="axis" text-anchor="end">0</text>',
    ]
    if low_value:
        out.append(
            f'<text x="{LEFT - 6}" y="{HEIGHT - BOTTOM:.1f}" class="axis" '
            f'text-anchor="end">−{low_value}</text>'
        )
    net_points: list[str] = []
    label_every = 3 if len(days) <= 31 else 7
    for i, day in enumerate(days):
        x = LEFT + i * slot + (slot - bar) / 2
        y = zero
        for p_index, pack in enumerate(revenue.packs):
            cell = revenue.cell(day, pack)
            if not cell.stars:
                continue
            h = cell.stars * scale
            y -= h
            name = pack_names.get(pack, pack)
            out.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                f'fill="{pattern_for(p_index)}" stroke="#222" stroke-width="0.5" data-pack="{escape(pack)}">'
                f"<title>{day.isoformat()} · {escape(name)}: {cell.stars} ⭐ ({cell.payments})</title></rect>"
            )
        total = totals[i]
        if total.refunded:
            h = total.refunded * scale
            out.append(
                f'<rect x="{x:.1f}" y="{zero:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                f'fill="url(#{REFUND_PATTERN[0]})" stroke="#b02020" stroke-width="0.5" class="refund">'
                f"<title>{day.isoformat()} · −{total.refunded} ⭐</title></rect>"
            )
        if total.stars and len(days) <= 31:
            out.append(
                f'<text x="{x + bar / 2:.1f}" y="{y - 3:.1f}" class="value" text-anchor="middle">'
                f"{total.stars}</text>"
            )
        cx = LEFT + i * slot + slot / 2
        net_points.append(f"{cx:.1f},{zero - (total.stars - total.refunded) * scale:.1f}")
        if i % label_every == 0 or i == len(days) - 1:
            # On a phone the chart keeps a third of these, at a size it can read (dashboard.css).
            keep = " keep" if i % (label_every * 3) == 0 else ""
            out.append(
                f'<text x="{cx:.1f}" y="{HEIGHT - BOTTOM + 30}" class="axis day{keep}" text-anchor="middle">'
                f"{day.strftime('%m-%d')}</text>"
            )
    out.append(f'<line x1="{LEFT}" y1="{zero:.1f}" x2="{WIDTH - RIGHT}" y2="{zero:.1f}" class="zero"/>')
    out.append(f'<polyline points="{" ".join(net_points)}" class="net"/>')
    for point in net_points:
        px, py = point.split(",")
        out.append(f'<circle cx="{px}" cy="{py}" r="2.6" class="net-dot"/>')
    out.append("</svg>")
    return Markup("".join(out))
