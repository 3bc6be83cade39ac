"""Every source parser on recorded files (tests/unit/rates/fixtures/), and freshness by maximum age."""
import datetime
import os
from decimal import Decimal

import pytest

from services.rates.domain import sources

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")
UTC = datetime.timezone.utc


def read(name):
    with open(os.path.join(FIXTURES, name), "rb") as fh:
        return fh.read()


def as_dict(parsed):
    return {symbol: (value, when) for symbol, value, when in parsed}


def test_cbr_windows_1251_comma_decimals_and_nominal():
    data = read("cbr_daily.xml")
    assert b"windows-1251" in data and "Доллар".encode("cp1251") in data
    values = as_dict(sources.parse("cbr", data))
    assert values["USD"][0] == Decimal("96.5432")
    assert values["EUR"][0] == Decimal("104.1234")
    # Nominal 100: 18,9012 roubles for 100 tenge -> 0.189012 per tenge
    assert values["KZT"][0] == Decimal("0.189012")
    assert values["JPY"][0] == Decimal("0.643311")
    # ValCurs@Date at 00:00 Moscow time
    assert values["USD"][1] == datetime.datetime(2026, 12, 2, 21, 0, tzinfo=UTC)


def test_ecb_one_euro_is_rate():
    values = as_dict(sources.parse("ecb", read("ecb_daily.xml")))
    assert values["USD"][0] == Decimal("1.0812") and values["JPY"][0] == Decimal("161.52")
    assert values["USD"][1] == datetime.datetime(2026, 12, 3, 15, 0, tzinfo=UTC)   # 16:00 CET


def test_ecb_holiday_file_keeps_the_old_time_and_goes_stale():
    values = as_dict(sources.parse("ecb", read("ecb_holiday.xml")))
    value, source_time = values["USD"]
    assert source_time == datetime.datetime(2026, 12, 24, 15, 0, tzinfo=UTC)
    fetched_at = datetime.datetime(2026, 12, 25, 15, 30, tzinfo=UTC)   # fetched just now, on the holiday
    day = 26 * 3600
    assert sources.is_fresh(source_time, fetched_at, day, fetched_at)
    assert not sources.is_fresh(source_time, fetched_at, day, fetched_at + datetime.timedelta(hours=2))


def test_binance_book_ticker_strings():
    values = as_dict(sources.parse("binance_book", read("binance_bookticker.json")))
    assert values["BTCUSDT.bid"] == (Decimal("98123.45"), None)
    assert values["BTCUSDT.ask"] == (Decimal("98123.46"), None)
    assert values["USDTTRY.ask"][0] == Decimal("34.52")


def test_binance_price():
    values = as_dict(sources.parse("binance_price", read("binance_price.json")))
    assert values["ETHUSDT"] == (Decimal("3510.12"), None)


def test_binance_float_prices_are_refused():
    with pytest.raises(sources.SourceError):
        sources.parse("binance_price", b'[{"symbol": "BTCUSDT", "price": 98123.45}]')


def test_monitor_file_gives_out_per_in():
    values = as_dict(sources.parse("monitor", read("monitor_other.xml")))
    assert values["BTC_SBERRUB"][0] == Decimal("9412345.12")
    assert abs(values["SBERRUB_USDTTRC20"][0] * Decimal("97.35") - 1) < Decimal("1e-30")


@pytest.mark.parametrize("kind,data", [
    ("cbr", b"<html>maintenance</html>"),
    ("cbr", '<ValCurs Date="03.12.2026"><Valute><CharCode>USD</CharCode><Nominal>1</Nominal>'
            '<Value>abc</Value></Valute></ValCurs>'.encode()),
    ("ecb", b"<x/>"),
    ("binance_book", b"{not json"),
    ("binance_book", b'[{"symbol": "X", "bidPrice": "0", "askPrice": "1"}]'),
    ("monitor", b"<rates><item/></rates>"),
])
def test_broken_answers_are_errors(kind, data):
    with pytest.raises(sources.SourceError):
        sources.parse(kind, data)


def test_manual_value_checks():
    assert sources.manual_value("usdt_rub", "97.5") == (Decimal("97.5"), {})
    assert sources.manual_value("usdt rub", 97.5)[1].keys() == {"symbol", "value"}
    assert sources.manual_value("x", "-1")[1].keys() == {"value"}
