"""Parsers of the rate sources (docs/rates.md, "Sources"), each from the bytes a source answers to a list of
`(symbol, value, source_time)`; values are exact Decimals, source_time an aware datetime (None: the source states
no time of its own, so the time fetched stands for it). A value is referred to in formulas as `<source>.<symbol>`.

- cbr: the Bank of Russia daily XML (windows-1251, comma decimals, `Nominal` units per `Value` roubles):
  symbol = CharCode, value = roubles per ONE unit (Value / Nominal), time = ValCurs@Date, 00:00 Moscow time.
- ecb: eurofxref-daily.xml: symbol = currency, value = units per 1 EUR, time = the cube's date, 16:00 CET (the
  publication time). On a holiday the file repeats the last cube: its values keep their old time and go stale.
- binance_book: /api/v3/ticker/bookTicker: `<SYMBOL>.bid` and `<SYMBOL>.ask` (strings in the answer).
- binance_price: /api/v3/ticker/price: `<SYMBOL>` = last price.
- monitor: another exchanger's monitors' file (libs/monitor_rates.py): `<FROM>_<TO>` = out / in (to per from).
- manual: no fetching; an operator sets `<name>` with its own time.
"""
import datetime
import json
import re
from decimal import Decimal, InvalidOperation, localcontext
from zoneinfo import ZoneInfo

from defusedxml import ElementTree

from libs.monitor_rates import MonitorFileError, parse_rates_xml

KINDS = ("cbr", "ecb", "binance_book", "binance_price", "monitor", "manual")
SYMBOL = re.compile(r"^[A-Za-z0-9_]{1,40}(\.(bid|ask))?$")
MOSCOW = ZoneInfo("Europe/Moscow")
FRANKFURT = ZoneInfo("Europe/Berlin")
ECB_NS = "{http://www.ecb.int/vocabulary/2002-08-01/eurofxref}"


class SourceError(ValueError):
    """The answer is not what this kind of source sends."""


def _decimal(text, what):
    try:
        value = Decimal(str(text).strip().replace(",", "."))
    except (InvalidOperation, AttributeError):
        raise SourceError("%s is not a number: %r" % (what, str(text)[:40]))
    if not value.is_finite() or value <= 0:
        raise SourceError("%s is not a positive number: %r" % (what, str(text)[:40]))
    return value


def _xml(data):
    try:
        return ElementTree.fromstring(data)
    except Exception as exc:  # noqa: BLE001 - ParseError and defusedxml's refusals alike
        raise SourceError("not XML: %s" % exc)


def parse_cbr(data):
    root = _xml(data)
    if root.tag != "ValCurs":
        raise SourceError("the root element is <%s>, not <ValCurs>" % root.tag)
    try:
        day = datetime.datetime.strptime(root.get("Date", ""), "%d.%m.%Y")
    except ValueError:
        raise SourceError("ValCurs@Date is not DD.MM.YYYY: %r" % root.get("Date"))
    source_time = day.replace(tzinfo=MOSCOW)
    out = []
    for valute in root.findall("Valute"):
        code = (valute.findtext("CharCode") or "").strip()
        if not code:
            raise SourceError("a Valute without CharCode")
        nominal = _decimal(valute.findtext("Nominal"), "%s Nominal" % code)
        value = _decimal(valute.findtext("Value"), "%s Value" % code)
        with localcontext() as ctx:
            ctx.prec = 40
            out.append((code, value / nominal, source_time))
    if not out:
        raise SourceError("no Valute in the file")
    return out


def parse_ecb(data):
    root = _xml(data)
    days = [c for c in root.iter(ECB_NS + "Cube") if c.get("time")]
    if not days:
        raise SourceError("no Cube with a time")
    day = days[0]
    try:
        date = datetime.datetime.strptime(day.get("time"), "%Y-%m-%d")
    except ValueError:
        raise SourceError("Cube@time is not YYYY-MM-DD: %r" % day.get("time"))
    source_time = date.replace(hour=16, tzinfo=FRANKFURT)
    out = [(c.get("currency"), _decimal(c.get("rate"), "rate of %s" % c.get("currency")), source_time)
           for c in day.findall(ECB_NS + "Cube")]
    if not out or any(not code for code, _, _ in out):
        raise SourceError("a Cube without currency")
    return out


def _json_list(data):
    try:
        answer = json.loads(data)
    except ValueError as exc:
        raise SourceError("not JSON: %s" % exc)
    if isinstance(answer, dict):   # one symbol asked for: one object
        answer = [answer]
    if not isinstance(answer, list) or not all(isinstance(a, dict) for a in answer):
        raise SourceError("not a list of tickers")
    return answer


def _price_text(ticker, field):
    value = ticker.get(field)
    if not isinstance(value, str):   # Binance sends prices as strings; a float here would be a changed API
        raise SourceError("%s of %s is not a string" % (field, ticker.get("symbol")))
    return _decimal(value, "%s of %s" % (field, ticker.get("symbol")))


def parse_binance_book(data):
    out = []
    for ticker in _json_list(data):
        symbol = ticker.get("symbol")
        if not isinstance(symbol, str) or not symbol:
            raise SourceError("a ticker without symbol")
        out.append((symbol + ".bid", _price_text(ticker, "bidPrice"), None))
        out.append((symbol + ".ask", _price_text(ticker, "askPrice"), None))
    return out


def parse_binance_price(data):
    out = []
    for ticker in _json_list(data):
        symbol = ticker.get("symbol")
        if not isinstance(symbol, str) or not symbol:
            raise SourceError("a ticker without symbol")
        out.append((symbol, _price_text(ticker, "price"), None))
    return out


def parse_monitor(data):
    try:
        items = parse_rates_xml(data)
    except MonitorFileError as exc:
        raise SourceError(str(exc))
    out = []
    for item in items:
        if item["in"] <= 0 or item["out"] <= 0:
            continue
        with localcontext() as ctx:
            ctx.prec = 40
            out.append(("%s_%s" % (item["from"], item["to"]), item["out"] / item["in"], None))
    return out


PARSERS = {"cbr": parse_cbr, "ecb": parse_ecb, "binance_book": parse_binance_book,
           "binance_price": parse_binance_price, "monitor": parse_monitor}


def parse(kind, data):
    """(symbol, value, source_time) of a source's answer; SourceError when the answer is broken."""
    return PARSERS[kind](data)


def manual_value(symbol, value):
    """An operator's value for the manual source, checked: (symbol, Decimal)."""
    fields = {}
    if not isinstance(symbol, str) or not SYMBOL.match(symbol):
        fields["symbol"] = ["letters, digits and _ (1 to 40)"]
    try:
        if isinstance(value, (float, bool)) or not isinstance(value, (str, int)):
            raise SourceError("must be a decimal string")
        number = _decimal(value, "value")
    except SourceError as exc:
        fields["value"] = [str(exc)]
        number = None
    return number, fields


def is_fresh(source_time, fetched_at, max_age_seconds, now):
    """A value is fresh while its own time (the source's; the time fetched when it states none) is within the
    source's maximum age. A source that keeps answering with an old file does not refresh its values."""
    stamp = source_time or fetched_at
    return stamp is not None and (now - stamp).total_seconds() <= max_age_seconds


def age_seconds(source_time, fetched_at, now):
    stamp = source_time or fetched_at
    return None if stamp is None else max((now - stamp).total_seconds(), 0.0)
