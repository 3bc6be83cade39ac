"""The monitors' rates file over HTTP, the whole system running (docs/monitors.md): /rates.xml validates against
the format's XSD and reads back equal to /rates.json, follows an admin's edits, answers conditional GETs with 304,
and is emptied by the maintenance switch; the panel shows the switch and links the preview."""
import os
import uuid
from decimal import Decimal

from lxml import etree

from libs.monitor_rates import parse_rates_xml
from tests.conftest import eventually
from tests.e2e.browser.fixtures import browser, pages, screenshot, sign_in  # noqa: F401 - pytest fixtures
from tests.e2e.conftest import ADMIN_PASSWORD, ADMIN_USER

XSD = os.path.join(os.path.dirname(os.path.dirname(__file__)), "fixtures", "monitor_rates.xsd")


def _json_items(system):
    out = []
    for entry in system.api("GET", "/rates.json").json()["rates"]:
        entry = dict(entry)
        for key in ("in", "out", "amount", "minamount", "maxamount"):
            entry[key] = Decimal(entry[key])
        entry["param"] = [p.strip() for p in entry.pop("param", "").split(",") if p.strip()]
        entry.setdefault("city", None)
        out.append(entry)
    return out


def _coded_direction(system, token):
    tag = uuid.uuid4().hex[:6].upper()
    for side in ("A", "B"):
        created = system.sensitive("POST", "/api/v1/admin/currencies", token=token, json={
            "code": "X%s%s" % (side, tag), "name": "Monitor %s" % side, "precision": 2, "payment_system": "sandbox",
            "account": "EXCH-X%s%s" % (side, tag), "reserve": "777.5", "monitor_code": "MX%s%s" % (side, tag)})
        assert created.status_code == 201, created.text
        assert created.json()["monitor_code"] == "MX%s%s" % (side, tag)
    direction = system.sensitive("POST", "/api/v1/admin/directions", token=token, json={
        "currency_in": "XA" + tag, "currency_out": "XB" + tag, "exchange_type": "manual", "rate_in": "1",
        "rate_out": "0.5", "fee": "0", "min_amount": "2", "max_amount": "300", "monitor_params": ["juridical"],
        "city": "MSK"})
    assert direction.status_code == 201, direction.text
    return direction.json(), "MXA" + tag


def _mine(system, code_in):
    response = system.api("GET", "/rates.xml")
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("application/xml")
    return [i for i in parse_rates_xml(response.content) if i["from"] == code_in]


def test_rates_xml_lists_validates_and_follows_changes(system, admin_token):
    direction, code_in = _coded_direction(system, admin_token)
    [item] = eventually(lambda: _mine(system, code_in), timeout=30, message="the new direction in /rates.xml")
    assert item == {"from": code_in, "to": "MXB" + code_in[3:], "in": 2, "out": 1, "amount": Decimal("777.5"),
                    "minamount": 2, "maxamount": 300, "param": ["manual", "juridical"], "city": "MSK"}

    response = system.api("GET", "/rates.xml")   # requests accepts gzip, as most monitors do
    assert response.headers["Content-Encoding"] == "gzip" and response.headers["Vary"] == "Accept-Encoding"
    etree.XMLSchema(etree.parse(XSD)).assertValid(etree.fromstring(response.content))
    # the two forms carry the same items (read together: a later change may move both)
    eventually(lambda: parse_rates_xml(system.api("GET", "/rates.xml").content) == _json_items(system),
               message="/rates.xml and /rates.json agree")

    # conditional GETs: nothing changed, nothing sent
    etag, modified = response.headers["ETag"], response.headers["Last-Modified"]
    assert response.headers["Cache-Control"] == "no-cache"
    again = system.api("GET", "/rates.xml", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    assert system.api("GET", "/rates.xml", headers={"If-Modified-Since": modified}).status_code == 304
    assert system.api("GET", "/rates.json", headers={"If-None-Match": etag}).status_code == 200  # another body

    changed = system.sensitive("PATCH", "/api/v1/admin/directions/%d" % direction["id"], token=admin_token,
                         json={"rate_in": "1", "rate_out": "0.25"})
    assert changed.status_code == 200, changed.text
    eventually(lambda: _mine(system, code_in)[0]["in"] == 4, timeout=30, message="the new rate in /rates.xml")
    assert system.api("GET", "/rates.xml", headers={"If-None-Match": etag}).status_code == 200

    # left out once its currency has no monitor code
    cleared = system.sensitive("PATCH", "/api/v1/admin/currencies/%s" % direction["currency_in"], token=admin_token,
                         json={"monitor_code": None})
    assert cleared.status_code == 200 and cleared.json()["monitor_code"] is None
    eventually(lambda: not _mine(system, code_in), timeout=30, message="the uncoded direction gone")


def test_a_bad_monitor_code_is_refused_by_field(system, admin_token):
    response = system.sensitive("PATCH", "/api/v1/admin/currencies/USD", token=admin_token,
                          json={"monitor_code": "wire usd"})
    assert response.status_code == 422 and "monitor_code" in response.text
    response = system.sensitive("PATCH", "/api/v1/admin/directions/1", token=admin_token,
                          json={"monitor_params": ["manual"]})
    assert response.status_code == 422 and "monitor_params" in response.text


def test_maintenance_empties_the_file_until_switched_off(system, admin_token):
    eventually(lambda: parse_rates_xml(system.api("GET", "/rates.xml").content), timeout=30,
               message="the demo directions listed")
    assert system.api("PUT", "/api/v1/admin/monitors/maintenance", json={"maintenance": True}).status_code == 401
    try:
        on = system.api("PUT", "/api/v1/admin/monitors/maintenance", token=admin_token, json={"maintenance": True})
        assert on.status_code == 200 and on.json()["maintenance"] is True, on.text
        eventually(lambda: system.api("GET", "/rates.xml").content.strip().endswith(b"<rates/>"), timeout=30,
                   message="an empty file in maintenance")
        assert system.api("GET", "/rates.json").json() == {"rates": []}
        audit = system.sql("SELECT actor, detail FROM orders.audit_log WHERE action = 'monitor_maintenance' "
                           "ORDER BY id DESC LIMIT 1")
        assert audit[0]["detail"]["maintenance"] is True and audit[0]["actor"] != "system"
    finally:
        off = system.api("PUT", "/api/v1/admin/monitors/maintenance", token=admin_token,
                         json={"maintenance": False})
        assert off.status_code == 200, off.text
    eventually(lambda: parse_rates_xml(system.api("GET", "/rates.xml").content), timeout=30,
               message="the directions back after maintenance")


def test_the_panel_edits_codes_flags_city_and_the_switch(system, pages, admin_token):  # noqa: F811
    direction, code_in = _coded_direction(system, admin_token)
    eventually(lambda: _mine(system, code_in), timeout=30, message="the new direction in /rates.xml")
    page = pages.new_page()
    sign_in(page, system, ADMIN_USER, ADMIN_PASSWORD)
    page.goto(system.url + "/admin/directions")
    assert page.get_attribute("#rates-xml-preview", "href") == "/rates.xml"

    currency_form = "#currency-%s" % direction["currency_in"]
    page.fill(currency_form + " input[name=monitor_code]", "PANEL" + code_in[3:])
    _submit(page, currency_form + " button")
    assert "saved" in page.text_content(".flash")
    page.fill(currency_form + " input[name=monitor_code]", "not a code")
    _submit(page, currency_form + " button")
    assert "monitor_code" in page.text_content(".flash")

    direction_form = "#direction-%d" % direction["id"]
    page.uncheck(direction_form + " input[name=monitor_params][value=juridical]")
    page.check(direction_form + " input[name=monitor_params][value=cardverify]")
    page.fill(direction_form + " input[name=city]", "")
    _submit(page, direction_form + " button")
    assert "saved" in page.text_content(".flash")
    [item] = eventually(lambda: [i for i in _mine(system, "PANEL" + code_in[3:]) if i["param"] == [
        "manual", "cardverify"]], timeout=30, message="the panel's edits in /rates.xml")
    assert item["city"] is None

    try:
        page.click("#maintenance-form button")
        page.wait_for_selector("[data-maintenance]")
        assert page.text_content("[data-maintenance]").startswith("on")
        eventually(lambda: system.api("GET", "/rates.xml").content.strip().endswith(b"<rates/>"), timeout=30,
                   message="an empty file in maintenance")
        screenshot(page, "monitors-panel")
    finally:
        system.api("PUT", "/api/v1/admin/monitors/maintenance", token=admin_token, json={"maintenance": False})
    audit = system.sql("SELECT actor FROM orders.audit_log WHERE action = 'monitor_maintenance' ORDER BY id DESC "
                       "LIMIT 2")
    assert {a["actor"] for a in audit} == {ADMIN_USER}


def _submit(page, button):
    """Submit a catalogue form; the first change of a session asks for the password again (step-up,
    docs/security.md), and the prompt posts the same form once confirmed."""
    page.click(button)
    page.wait_for_selector(".flash, #step-up-form")
    if page.query_selector("#step-up-form"):
        page.fill("#step_up_password", ADMIN_PASSWORD)
        page.click("#step-up-confirm")
        page.wait_for_selector(".flash")
