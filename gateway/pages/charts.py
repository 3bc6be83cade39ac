"""Small inline SVG charts rendered on the server: no chart library, no script, nothing for the CSP to allow."""
from decimal import Decimal

from markupsafe import Markup, escape

WIDTH, HEIGHT, PAD_LEFT, PAD_BOTTOM, PAD_TOP = 640, 180, 44, 22, 10


def _label(value):
    value = Decimal(value)
    if value >= 1000000:
        return "%sM" % _label(value / 1000000)
    if value >= 1000:
        return "%sk" % _label(value / 1000)
    if value == value.to_integral():
        return str(int(value))
    return format(value.quantize(Decimal("0.01")), "f").rstrip("0").rstrip(".")


def nice_top(value):
    """The smallest 1, 2, 2.5 or 5 × 10^k at or above `value`: the axis ends on a round number (see `ticks`)."""
    value = Decimal(value)
    if value <= 0:
        return Decimal(1)
    exponent = value.adjusted()
    for step in (Decimal(1), Decimal(2), Decimal("2.5"), Decimal(5), Decimal(10)):
        top = step.scaleb(exponent)
        if top >= value:
            return top
    return Decimal(10).scaleb(exponent)


def ticks(top):
    """Fractions of a `nice_top` axis where round numbers fall: 1 → fifths, 2 → quarters, 2.5 and 5 → fifths."""
    leading = top.scaleb(-top.adjusted()).normalize()
    parts = 4 if leading == 2 else 5
    return [Decimal(i) / parts for i in range(parts + 1)]


def bar_chart(points, title, element_id):
    """points: [(label, number)] -> an accessible <svg> bar chart (values are Decimal-safe, never money maths)."""
    points = [(str(label), Decimal(str(value))) for label, value in points]
    top = nice_top(max([v for _, v in points] + [Decimal(0)]))
    inner_w, inner_h = WIDTH - PAD_LEFT - 8, HEIGHT - PAD_BOTTOM - PAD_TOP
    n = max(len(points), 1)
    slot = Decimal(inner_w) / n
    bar = max(int(slot * Decimal("0.7")), 1)
    parts = ['<svg class="chart" id="%s" viewBox="0 0 %d %d" role="img" aria-label="%s">' % (
        escape(element_id), WIDTH, HEIGHT, escape(title)), "<title>%s</title>" % escape(title)]
    for fraction in ticks(top):
        y = PAD_TOP + int(inner_h * (1 - fraction))
        parts.append('<line class="grid" x1="%d" y1="%d" x2="%d" y2="%d"/>' % (PAD_LEFT, y, WIDTH - 8, y))
        parts.append('<text class="axis" x="%d" y="%d" text-anchor="end">%s</text>' % (
            PAD_LEFT - 4, y + 4, escape(_label(top * fraction))))
    every = max(1, n // 10)
    for i, (label, value) in enumerate(points):
        h = int(inner_h * value / top) if top else 0
        x = PAD_LEFT + int(slot * i + (slot - bar) / 2)
        y = PAD_TOP + inner_h - h
        parts.append('<rect class="bar" x="%d" y="%d" width="%d" height="%d"><title>%s: %s</title></rect>' % (
            x, y, bar, max(h, 0), escape(label), escape(_label(value))))
        if i % every == 0:
            parts.append('<text class="axis" x="%d" y="%d" text-anchor="middle">%s</text>' % (
                x + bar // 2, HEIGHT - 6, escape(label)))
    if not points:
        parts.append('<text class="axis" x="%d" y="%d" text-anchor="middle">no data yet</text>' % (
            WIDTH // 2, HEIGHT // 2))
    parts.append("</svg>")
    return Markup("".join(parts))


def line_chart(points, title, element_id, marked=()):
    """points: [(label, number)] in time order -> an accessible <svg> line chart scaled between the lowest and the
    highest value (a rate moves by fractions: a scale from 0 would flatten it); indexes in `marked` are drawn as
    marked points (frozen)."""
    points = [(str(label), Decimal(str(value))) for label, value in points]
    parts = ['<svg class="chart" id="%s" viewBox="0 0 %d %d" role="img" aria-label="%s">' % (
        escape(element_id), WIDTH, HEIGHT, escape(title)), "<title>%s</title>" % escape(title)]
    if not points:
        parts.append('<text class="axis" x="%d" y="%d" text-anchor="middle">no data yet</text></svg>' % (
            WIDTH // 2, HEIGHT // 2))
        return Markup("".join(parts))
    low, high = min(v for _, v in points), max(v for _, v in points)
    span = (high - low) or (abs(high) / 100) or Decimal(1)
    inner_w, inner_h = WIDTH - PAD_LEFT - 8, HEIGHT - PAD_BOTTOM - PAD_TOP
    n = len(points)
    step = Decimal(inner_w) / max(n - 1, 1)

    def xy(i, value):
        return PAD_LEFT + int(step * i), PAD_TOP + int(inner_h * (1 - (value - low) / span))
    for fraction in (Decimal(0), Decimal("0.5"), Decimal(1)):
        y = PAD_TOP + int(inner_h * (1 - fraction))
        parts.append('<line class="grid" x1="%d" y1="%d" x2="%d" y2="%d"/>' % (PAD_LEFT, y, WIDTH - 8, y))
        parts.append('<text class="axis" x="%d" y="%d" text-anchor="end">%s</text>' % (
            PAD_LEFT - 4, y + 4, escape(_label(low + span * fraction))))
    coords = [xy(i, v) for i, (_, v) in enumerate(points)]
    parts.append('<polyline class="line" fill="none" stroke="currentColor" points="%s"/>' % " ".join(
        "%d,%d" % c for c in coords))
    every = max(1, n // 6)
    for i, ((label, value), (x, y)) in enumerate(zip(points, coords)):
        parts.append('<circle class="point%s" cx="%d" cy="%d" r="%d"><title>%s: %s</title></circle>' % (
            " marked" if i in marked else "", x, y, 4 if i in marked else 2, escape(label), escape(str(value))))
        if i % every == 0:
            parts.append('<text class="axis" x="%d" y="%d" text-anchor="middle">%s</text>' % (
                x, HEIGHT - 6, escape(label[-8:])))
    parts.append("</svg>")
    return Markup("".join(parts))
