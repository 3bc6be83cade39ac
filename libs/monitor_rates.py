"""The rates file the monitors read (the Estandards/BestChange XML, docs/monitors.md): one writer for our own
export (GET /rates.xml) and one reader for another exchanger's file (a rate source). Pure: bytes in, bytes out.

An item is a dict: from, to (str); in, out, amount, minamount, maxamount (Decimal, never float; amount, minamount
and maxamount may be None when a file leaves them out); param (list of flags, written comma-separated); city (str
or None). Numbers are written in plain fixed-point text, so parse_rates_xml(render_rates_xml(items)) == items.
"""
from decimal import Decimal, InvalidOperation
from xml.etree import ElementTree
from xml.sax.saxutils import escape

AMOUNTS = ("in", "out", "amount", "minamount", "maxamount")


class RatesFileError(ValueError):
    """Not a rates file: not XML, another root, an item without from/to/in/out, or a number that is not one."""


def _plain(value):
    if not isinstance(value, Decimal):
        raise TypeError("amounts must be Decimal, got %r" % type(value))
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"


def render_rates_xml(items):
    """The document as UTF-8 bytes, one item a line; no items: an empty `<rates/>` (the monitors' "nothing to
    offer")."""
    if not items:
        return b'<?xml version="1.0" encoding="UTF-8"?>\n<rates/>\n'
    out = ['<?xml version="1.0" encoding="UTF-8"?>\n<rates>\n']
    for item in items:
        out.append("<item><from>%s</from><to>%s</to>" % (escape(item["from"]), escape(item["to"])))
        for name in AMOUNTS:
            if item.get(name) is not None:
                out.append("<%s>%s</%s>" % (name, _plain(item[name]), name))
        if item.get("param"):
            out.append("<param>%s</param>" % escape(", ".join(item["param"])))
        if item.get("city"):
            out.append("<city>%s</city>" % escape(item["city"]))
        out.append("</item>\n")
    out.append("</rates>\n")
    return "".join(out).encode("utf-8")


def _number(text, name, number):
    text = (text or "").strip()
    if not text:
        if name in ("in", "out"):
            raise RatesFileError("item %d has no <%s>" % (number, name))
        return None
    # other writers put the currency after a limit ("0.01 BTC") or use a decimal comma
    figure = text.split()[0] if name in ("minamount", "maxamount") else text
    try:
        value = Decimal(figure.replace(",", "."))
    except InvalidOperation:
        raise RatesFileError("item %d: <%s> is not a number: %r" % (number, name, text[:40]))
    if not value.is_finite() or value < 0:
        raise RatesFileError("item %d: <%s> must be a finite number, not below 0: %r" % (number, name, text[:40]))
    return value


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
        for name in ("from", "to"):
            text = (element.findtext(name) or "").strip()
            if not text:
                raise RatesFileError("item %d has no <%s>" % (number, name))
            item[name] = text
        for name in AMOUNTS:
            item[name] = _number(element.findtext(name), name, number)
        item["param"] = [flag.strip() for param in element.findall("param")
                         for flag in (param.text or "").split(",") if flag.strip()]
        item["city"] = (element.findtext("city") or "").strip() or None
        items.append(item)
    return items
