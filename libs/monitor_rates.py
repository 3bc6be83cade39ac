"""The rates file the monitors read (the Estandards/BestChange XML, docs/monitors.md): one writer for our own
export (GET /rates.xml) and one reader for another exchanger's file (a rate source). Pure: bytes in, bytes out.

An item is a dict of strings: {from, to, in, out, amount, minamount, maxamount, param, city}; `param` is a list of
flags (written comma-separated, empty list: no element), `city` is None for directions without one. Amounts stay
strings exactly as written: whoever needs a number parses it with libs/money.py (Decimal, never float).
"""
from xml.etree import ElementTree
from xml.sax.saxutils import escape

FIELDS = ("from", "to", "in", "out", "amount", "minamount", "maxamount")


class RatesFileError(ValueError):
    """Not a rates file: not XML, another root, or an item without one of the required fields."""


def render_rates_xml(items):
    """The document as UTF-8 bytes; no items: an empty `<rates/>` (the monitors' "nothing to offer")."""
    if not items:
        return b'<?xml version="1.0" encoding="UTF-8"?>\n<rates/>\n'
    out = ['<?xml version="1.0" encoding="UTF-8"?>\n<rates>\n']
    for item in items:
        out.append("<item>")
        for name in FIELDS:
            out.append("<%s>%s</%s>" % (name, escape(str(item[name])), name))
        if item.get("param"):
            out.append("<param>%s</param>" % escape(", ".join(item["param"])))
        if item.get("city"):
            out.append("<city>%s</city>" % escape(item["city"]))
        out.append("</item>\n")
    out.append("</rates>\n")
    return "".join(out).encode("utf-8")


def parse_rates_xml(data):
    """The items of a rates file (bytes), in the form render_rates_xml writes. Unknown elements are ignored."""
    try:
        root = ElementTree.fromstring(data)
    except ElementTree.ParseError as exc:
        raise RatesFileError("not XML: %s" % exc)
    if root.tag != "rates":
        raise RatesFileError("the root element is <%s>, not <rates>" % root.tag)
    items = []
    for number, element in enumerate(root.findall("item"), 1):
        item = {}
        for name in FIELDS:
            text = element.findtext(name)
            if text is None or not text.strip():
                raise RatesFileError("item %d has no <%s>" % (number, name))
            item[name] = text.strip()
        param = element.findtext("param") or ""
        item["param"] = [flag.strip() for flag in param.split(",") if flag.strip()]
        city = (element.findtext("city") or "").strip()
        item["city"] = city or None
        items.append(item)
    return items
