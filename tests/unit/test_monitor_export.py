"""The monitors' rates file (docs/monitors.md): which directions are listed, how each is written, the reader and
writer of libs/monitor_rates.py, and the XSD of the format kept in tests/fixtures."""
import json
import os
from decimal import Decimal
from decimal import Decimal as D

import pytest
from lxml import etree

from libs.monitor_rates import MonitorFileError, parse_rates_xml, render_rates_xml
from services.orders.domain import RuleError, catalogue
from services.orders.domain import monitor_export as export

XSD = os.path.join(os.path.dirname(os.path.dirname(__file__)), "fixtures", "monitor_rates.xsd")


@pytest.fixture(scope="module")
def schema():
    return etree.XMLSchema(etree.parse(XSD))


def row(**over):
    base = {"id": 1, "exchange_type": "auto", "rate_in": Decimal("1"), "rate_out": Decimal("95.5"),
            "fee": Decimal("0"), "min_amount": Decimal("10"), "max_amount": Decimal("5000"), "active": True,
            "rate_frozen": False, "floating": False, "monitor_params": [], "city": None, "active_in": True,
            "active_out": True, "monitor_code_in": "USDTTRC20", "monitor_code_out": "SBERRUB",
            "precision_out": 2, "available": Decimal("150000.129")}
    base.update(over)
    return base


def test_an_auto_direction_is_written_with_its_reserve_and_limits():
    assert export.item(row()) == {
        "from": "USDTTRC20", "to": "SBERRUB", "in": D("1"), "out": D("95.5"), "amount": D("150000.12"),
        "minamount": D("10"), "maxamount": D("5000"), "param": [], "city": None}


def test_the_fee_is_in_the_rate_and_rounded_against_the_exchanger():
    # 95.5 less 1.5 % = 94.0675 exactly; 10/3 rounds down on the `out` side
    assert export.in_out(D(1), D("95.5"), D("1.5")) == (D(1), D("94.0675"))
    assert export.in_out(D(3), D(10), D(0)) == (D(1), D("3.33333333"))
    assert export.in_out(D(2), D(2), D(0)) == (D(1), D(1))


def test_a_rate_below_one_is_written_as_how_much_to_give_for_one_rounded_up():
    assert export.in_out(D("95000"), D("1"), D("0")) == (D("95000"), D(1))
    # 1 of the to-currency costs 3 / 0.999 = 3.003003003...: rounded up, never down
    assert export.in_out(D(3), D(1), D("0.1")) == (D("3.00300301"), D(1))


def test_a_reserve_below_what_open_orders_hold_shows_as_zero():
    assert export.item(row(available=D("-5")))["amount"] == D(0)


@pytest.mark.parametrize("kind, flags", [("auto", []), ("semi_auto", ["manual"]), ("manual", ["manual"])])
def test_manual_marks_the_directions_an_operator_takes_part_in(kind, flags):
    assert export.item(row(exchange_type=kind))["param"] == flags


def test_flags_come_in_the_monitors_order_with_floating_last():
    item = export.item(row(exchange_type="manual", monitor_params=["cardverify", "juridical"], floating=True,
                           city="MSK"))
    assert item["param"] == ["manual", "juridical", "cardverify", "floating"]
    assert item["city"] == "MSK"


@pytest.mark.parametrize("over", [{"active": False}, {"active_in": False}, {"active_out": False},
                                  {"rate_frozen": True}, {"monitor_code_in": None}, {"monitor_code_out": None}])
def test_inactive_frozen_or_uncoded_directions_are_left_out(over):
    assert export.items([row(), row(id=2, **over)]) == [export.item(row())]


def test_maintenance_empties_the_file():
    xml, json_text, count = export.render([row()], maintenance=True)
    assert xml.endswith(b"<rates/>\n") and json.loads(json_text) == {"rates": []} and count == 0


def test_the_rendered_file_validates_against_the_xsd_and_reads_back_equal(schema):
    rows = [row(), row(id=2, exchange_type="semi_auto", monitor_params=["verifying"], floating=True, city="MSK",
                       monitor_code_in="BTC", rate_in=Decimal("1"), rate_out=Decimal("9500000"),
                       monitor_code_out="CASHRUB"),
            row(id=3, monitor_code_in="SBERRUB", monitor_code_out="BTC", rate_in=Decimal("9600000"),
                rate_out=Decimal("1"), precision_out=8, available=Decimal("1.23456789"))]
    xml, json_text, count = export.render(rows)
    schema.assertValid(etree.fromstring(xml))
    items = export.items(rows)
    assert count == 3 and parse_rates_xml(xml) == items
    assert items[2]["in"] == D("9600000") and items[2]["out"] == D(1)
    assert b"<in>9600000</in><out>1</out><amount>1.23456789</amount>" in xml
    assert json.loads(json_text)["rates"][1] == {
        "from": "BTC", "to": "CASHRUB", "in": "1", "out": "9500000", "amount": "150000.12", "minamount": "10",
        "maxamount": "5000", "param": "manual, verifying, floating", "city": "MSK"}


def test_an_empty_file_validates_too(schema):
    schema.assertValid(etree.fromstring(render_rates_xml([])))
    assert parse_rates_xml(render_rates_xml([])) == []


def test_the_xsd_refuses_what_the_monitors_would_not_read(schema):
    bad = render_rates_xml([dict(export.item(row()), param=["express"])])
    assert not schema.validate(etree.fromstring(bad))
    bad = render_rates_xml([dict(export.item(row()), out=D("95"))]).replace(b"<out>95</out>", b"<out>9.5e1</out>")
    assert not schema.validate(etree.fromstring(bad))


def test_the_reader_takes_another_exchangers_file_and_refuses_what_is_not_one():
    other = (b'<?xml version="1.0"?>\n<rates>\n<item><from>PMUSD</from><to>CARDRUB</to><in>1</in><out>91.2</out>'
             b'<amount>100000</amount><minamount>50</minamount><maxamount>1000</maxamount>'
             b'<fromfee>1 USD</fromfee><param>manual,verifying</param></item>\n</rates>')
    assert parse_rates_xml(other) == [{"from": "PMUSD", "to": "CARDRUB", "in": D(1), "out": D("91.2"),
                                       "amount": D("100000"), "minamount": D("50"), "maxamount": D("1000"),
                                       "param": ["manual", "verifying"], "city": None}]
    # limits written with their currency, a decimal comma, no reserve: read as numbers, amount None
    [loose] = parse_rates_xml(b"<rates><item><from>BTC</from><to>CASHRUB</to><in>1</in><out>5400000,5</out>"
                              b"<minamount>0.01 BTC</minamount><maxamount>2 BTC</maxamount></item></rates>")
    assert (loose["out"], loose["minamount"], loose["maxamount"], loose["amount"]) == \
        (D("5400000.5"), D("0.01"), D(2), None)
    with pytest.raises(MonitorFileError):
        parse_rates_xml(b"<html/>")
    with pytest.raises(MonitorFileError):
        parse_rates_xml(b"<rates><item><from>A1</from></item></rates>")
    with pytest.raises(MonitorFileError):
        parse_rates_xml(b"not xml")
    with pytest.raises(MonitorFileError):
        parse_rates_xml(b"<rates><item><from>A1</from><to>B2</to><in>1</in><out>NaN</out></item></rates>")


def test_codes_are_escaped_never_injected():
    xml = render_rates_xml([dict(export.item(row()), city="A<B")])
    assert b"<city>A&lt;B</city>" in xml and parse_rates_xml(xml)[0]["city"] == "A<B"


@pytest.mark.parametrize("value", ["usdt", "U", "USDT TRC20", "A" * 21, 5])
def test_a_monitor_code_is_checked_when_set(value):
    with pytest.raises(RuleError) as exc:
        catalogue.currency_changes({"monitor_code": value})
    assert "monitor_code" in exc.value.fields


def test_a_monitor_code_may_be_set_or_cleared():
    assert catalogue.currency_changes({"monitor_code": "USDTTRC20"}) == {"monitor_code": "USDTTRC20"}
    assert catalogue.currency_changes({"monitor_code": None}) == {"monitor_code": None}


def test_direction_flags_and_city_are_checked():
    assert catalogue.direction_changes({"monitor_params": ["cardverify", "juridical", "juridical"], "city": "MSK"}) \
        == {"monitor_params": ["juridical", "cardverify"], "city": "MSK"}
    with pytest.raises(RuleError) as exc:
        catalogue.direction_changes({"monitor_params": ["manual"], "city": "moscow"})
    assert set(exc.value.fields) == {"monitor_params", "city"}
