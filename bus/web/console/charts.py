"""Two pictures an officer reads faster than a table: alerts per day by type, and the ports involved.

Plain SVG built on the server: nothing to download, nothing for the page's content
security policy to allow (colours come from CSS classes in console.css).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, timedelta
from html import escape

from bus.core.models import AlertType

TYPE_CLASS = {
    AlertType.SUSPICIOUS_CONTAINER.value: "series-container",
    AlertType.CORRUPTION_INDICATOR.value: "series-corruption",
    AlertType.OPERATION_NOTICE.value: "series-operation",
}


def per_day_chart(rows: list[tuple[str, str, int]], today: date, days: int = 14) -> str:
    """Stacked bars: one per UTC day of the last `days` days, a segment per alert type."""
    width, height, left, bottom, top = 560, 180, 28, 34, 10
    first = today - timedelta(days=days - 1)
    counts: dict[date, dict[str, int]] = defaultdict(dict)
    for day_text, alert_type, n in rows:
        when = date.fromisoformat(day_text)
        if first <= when <= today:
            counts[when][alert_type] = counts[when].get(alert_type, 0) + n
    peak = max((sum(c.values()) for c in counts.values()), default=0)
    scale = max(peak, 1)
    plot_h = height - bottom - top
    slot = (width - left - 8) / days
    parts = [f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
             f'aria-label="Alerts per day by type, last {days} days">',
             f'<title>Alerts per day by type, last {days} days</title>']
    for tick in sorted({0, scale // 2, scale}):
        y = top + plot_h - plot_h * tick / scale
        parts.append(f'<line class="grid" x1="{left}" x2="{width - 8}" y1="{y:.1f}" y2="{y:.1f}"/>'
                     f'<text class="axis" x="{left - 4}" y="{y + 4:.1f}" text-anchor="end">{tick}</text>')
    for i in range(days):
        day = first + timedelta(days=i)
        x = left + i * slot + slot * 0.15
        y = top + plot_h
        for alert_type, css in TYPE_CLASS.items():
            n = counts.get(day, {}).get(alert_type, 0)
            if not n:
                continue
            h = plot_h * n / scale
            y -= h
            parts.append(f'<rect class="{css}" x="{x:.1f}" y="{y:.1f}" width="{slot * 0.7:.1f}" height="{h:.1f}">'
                         f'<title>{day.isoformat()}: {n} {escape(alert_type)}</title></rect>')
        if i % 2 == (days - 1) % 2:
            parts.append(f'<text class="axis" x="{x + slot * 0.35:.1f}" y="{height - bottom + 14}" '
                         f'text-anchor="middle">{day.strftime("%d %b")}</text>')
    lx = left
    for alert_type, css in TYPE_CLASS.items():
        parts.append(f'<rect class="{css}" x="{lx}" y="{height - 12}" width="10" height="10"/>'
                     f'<text class="legend" x="{lx + 14}" y="{height - 3}">{escape(alert_type)}</text>')
        lx += 170
    parts.append("</svg>")
    return "".join(parts)


def ports_chart(rows: list[tuple[str, int]]) -> str:
    """Horizontal bars: the ports the alerts involve (UN/LOCODE), most frequent first."""
    bar_h, gap, left, width = 16, 6, 64, 360
    height = max(1, len(rows)) * (bar_h + gap) + 8
    peak = max((n for _, n in rows), default=1)
    parts = [f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-label="Ports involved">',
             "<title>Ports involved</title>"]
    if not rows:
        parts.append('<text class="axis" x="4" y="16">no ports yet</text>')
    for i, (port, n) in enumerate(rows):
        y = 4 + i * (bar_h + gap)
        w = (width - left - 40) * n / peak
        href = f"/?port={escape(port)}"
        parts.append(f'<a href="{href}"><text class="axis" x="{left - 6}" y="{y + 12}" text-anchor="end">'
                     f'{escape(port)}</text><rect class="series-port" x="{left}" y="{y}" width="{max(w, 2):.1f}" '
                     f'height="{bar_h}"><title>{escape(port)}: {n} alert(s)</title></rect>'
                     f'<text class="axis" x="{left + max(w, 2) + 4:.1f}" y="{y + 12}">{n}</text></a>')
    parts.append("</svg>")
    return "".join(parts)


__all__ = ["TYPE_CLASS", "per_day_chart", "ports_chart"]
