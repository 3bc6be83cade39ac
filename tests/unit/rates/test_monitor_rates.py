"""The monitors' rates file (libs/monitor_rates.py): another exchanger's recorded file, and the round trip."""
import os
from decimal import Decimal

import pytest

from libs.monitor_rates import MonitorFileError, parse_rates_xml, render_rates_xml

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")


def read(name):
    with open(os.path.join(FIXTURES, name), "rb") as fh:
        return fh.read()


def test_parses_another_exchangers_file():
    items = parse_rates_xml(read("monitor_other.xml"))
    assert [(i["from"], i["to"]) for i in items] == [("BTC", "SBERRUB"), ("SBERRUB", "USDTTRC20"),
                                                   ("CASHUSD", "USDTTRC20")]
    first = items[0]
    assert first["in"] == Decimal("1") and first["out"] == Decimal("9412345.12")
    assert first["minamount"] == Decimal("0.005") and first["maxamount"] == Decimal("2")
    assert first["param"] == ["manual", "verifying"] and first["city"] is None
    assert items[1]["in"] == Decimal("97.35") and items[1]["amount"] == Decimal("250000.5")
    assert items[2]["city"] == "MSK" and items[2]["param"] == ["floating"]


def test_round_trip_reads_back_equal():
    items = parse_rates_xml(read("monitor_other.xml"))
    assert parse_rates_xml(render_rates_xml(items)) == items


def test_empty_file_is_rates_element():
    assert render_rates_xml([]).strip().endswith(b"<rates/>")
    assert parse_rates_xml(render_rates_xml([])) == []


def test_text_is_escaped():
    item = {"from": "A&B", "to": "C<D", "in": Decimal("1"), "out": Decimal("2.50"), "amount": None,
            "minamount": None, "maxamount": None, "param": [], "city": None}
    assert parse_rates_xml(render_rates_xml([item])) == [dict(item, out=Decimal("2.5"))]


@pytest.mark.parametrize("data", [b"not xml", b"<other/>", b"<rates><item><from>A</from></item></rates>",
                                  b"<rates><item><from>A</from><to>B</to><in>x</in><out>1</out></item></rates>",
                                  b'<!DOCTYPE r [<!ENTITY a "aaaa">]><rates>&a;</rates>'])
def test_broken_files_are_refused(data):
    with pytest.raises(MonitorFileError):
        parse_rates_xml(data)


def test_floats_are_refused_by_the_writer():
    with pytest.raises(TypeError):
        render_rates_xml([{"from": "A", "to": "B", "in": 1.0, "out": Decimal(1)}])
