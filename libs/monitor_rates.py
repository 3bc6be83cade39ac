"""The rates file that exchange monitors read (BestChange and the monitors sharing its "Estandards" XML format):
its reader and its writer, pure functions over bytes, shared by the rate engine (another exchanger's file as a
source, services/rates/) and our own export (GET /rates.xml). docs/rates.md describes the format.

    <rates>
      <item>
        <from>BTC</from><to>SBERRUB</to>          monitor codes of the currencies
        <in>1</in><out>5400000</out>              give `in` of from, get `out` of to
        <amount>1200000</amount>                  reserve of the to-currency
        <minamount>0.01 BTC</minamount>           limits, in the from-currency
        <maxamount>2 BTC</maxamount>
        <param>manual, floating</param>           optional flags
        <city>MSK</city>                          optional, cash directions
      </item>
    </rates>

An item is a dict: from, to (str), in, out, amount, minamount, maxamount (Decimal; amount/minamount/maxamount may
be None when absent), param (list of str), city (str or None). Amounts are exact Decimals, written in plain
fixed-point text.
"""
from decimal import Decimal, InvalidOperation
from xml.sax.saxutils import escape

from defusedxml import ElementTree

PARAMS = ("manual", "juridical", "verifying", "cardverify", "floating", "reserve", "otherin", "otherout")
_AMOUNTS = ("in", "out", "amount", "minamount", "maxamount")


class MonitorFileError(ValueError):
    """The bytes are not a monitors' rates file, or an item in it is broken."""


def _decimal(text, field, required):
    text = (text or "").strip()
    if not text:
        if required:
            raise MonitorFileError("item without <%s>" % field)
        return None
    # minamount/maxamount are often written with the currency after the number ("0.01 BTC"); some writers use
    # a decimal comma or a space as thousands separator.
    number = text.split()[0] if field in ("minamount", "maxamount") else text.replace(" ", "")
    try:
        value = Decimal(number.replace(",", "."))
    except InvalidOperation:
        raise MonitorFileError("<%s> is not a number: %r" % (field, text[:40]))
    if not value.is_finite() or value < 0:
        raise MonitorFileError("<%s> is not a non-negative number: %r" % (field, text[:40]))
    return value


def parse_rates_xml(data):
    """The items of a monitors' rates file (bytes); MonitorFileError if it is not one. Entities and DTDs are
    refused (defusedxml): the file comes from someone else's server."""
    try:
        root = ElementTree.fromstring(data)
    except Exception as exc:  # noqa: BLE001 - ParseError and defusedxml's refusals alike
        raise MonitorFileError("not XML: %s" % exc)
    if root.tag != "rates":
        raise MonitorFileError("the root element is <%s>, not <rates>" % root.tag)
    items = []
    for element in root.findall("item"):
        item = {}
        for field in ("from", "to"):
            text = (element.findtext(field) or "").strip()
            if not text:
                raise MonitorFileError("item without <%s>" % field)
            item[field] = text
        for field in _AMOUNTS:
            item[field] = _decimal(element.findtext(field), field, required=field in ("in", "out"))
        params = []
        for param in element.findall("param"):
            params.extend(p.strip() for p in (param.text or "").split(",") if p.strip())
        item["param"] = params
        city = (element.findtext("city") or "").strip()
        item["city"] = city or None
        items.append(item)
    return items


def _plain(value):
    if value is None:
        return ""
    if not isinstance(value, Decimal):
        raise TypeError("amounts must be Decimal, got %r" % type(value))
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"


def render_item(item):
    """One <item> element as text (the export caches items and joins them)."""
    parts = ["<item><from>%s</from><to>%s</to>" % (escape(item["from"]), escape(item["to"])),
             "<in>%s</in><out>%s</out>" % (_plain(item["in"]), _plain(item["out"]))]
    for field in ("amount", "minamount", "maxamount"):
        if item.get(field) is not None:
            parts.append("<%s>%s</%s>" % (field, _plain(item[field]), field))
    if item.get("param"):
        parts.append("<param>%s</param>" % escape(", ".join(item["param"])))
    if item.get("city"):
        parts.append("<city>%s</city>" % escape(item["city"]))
    parts.append("</item>")
    return "".join(parts)


def render_rates_xml(items):
    """The rates file of `items` (UTF-8 bytes); parse_rates_xml reads it back equal."""
    body = "\n".join(render_item(item) for item in items)
    if not body:
        return b'<?xml version="1.0" encoding="UTF-8"?>\n<rates/>\n'
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<rates>\n%s\n</rates>\n' % body).encode("utf-8")
