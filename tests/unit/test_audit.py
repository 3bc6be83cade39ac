"""The one actor-name rule and the audit-row writer every schema's audit_log uses (libs/audit.py)."""
import json

import pytest

from libs.audit import actor_name, audit_statement, write_audit


@pytest.mark.parametrize("actor, name", [
    ({"name": "alice", "kind": "staff", "role": "operator"}, "alice"),
    ({"name": "account:7", "kind": "customer"}, "account:7"),
    ({"kind": "customer", "ip": "10.0.0.1"}, "customer"),
    ({"name": "", "kind": "system"}, "system"),
    ({}, "system"),
    (None, "system"),
])
def test_actor_name_is_the_name_else_the_kind_else_system(actor, name):
    assert actor_name(actor) == name


def test_statement_has_the_common_columns_then_the_tables_own_in_order():
    sql, params = audit_statement({"name": "alice", "role": "admin", "ip": "10.0.0.1"}, "assign", "rejected",
                                  {"reason": "paid", "at": object}, payment_id=3, order_id=None)
    assert sql == ("INSERT INTO audit_log (actor, actor_role, actor_ip, action, outcome, detail, payment_id, "
                   "order_id) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)")
    assert params[:5] == ("alice", "admin", "10.0.0.1", "assign", "rejected")
    assert json.loads(params[5])["reason"] == "paid"
    assert params[6:] == (3, None)


def test_without_actor_or_detail_the_row_is_systems_with_an_empty_detail():
    sql, params = audit_statement(None, "expire")
    assert params == ("system", None, None, "expire", "ok", "{}")
    assert sql.count("%s") == 6


def test_write_executes_the_same_statement():
    class Cursor:
        def execute(self, sql, params):
            self.seen = (sql, params)
    cur = Cursor()
    write_audit(cur, {"kind": "customer"}, "create", detail={"ip": None}, order_id=5)
    assert cur.seen == audit_statement({"kind": "customer"}, "create", detail={"ip": None}, order_id=5)


class RecordingCursor:
    def __init__(self):
        self.statements = []

    def execute(self, sql, params=None):
        if isinstance(sql, str):           # one statement; a batch (bytes) was recorded by mogrify
            self.statements.append((sql, params))

    def mogrify(self, sql, params):
        self.statements.append((sql, params))
        return b"-"


def _security_events(cur):
    return [json.loads(params[4]) for sql, params in cur.statements
            if sql.startswith("INSERT INTO outbox") and params[2] == "security_change"]


@pytest.mark.parametrize("actor, action, outcome, alerted", [
    ({"name": "mallory", "role": "admin", "ip": "203.0.113.9"}, "currency_update", "ok", True),
    ({"name": "olga", "role": "operator"}, "partner_withdrawal_approve", "ok", True),
    ({"name": "olga", "role": "operator"}, "partner_withdrawal_approve", "rejected", False),  # nothing changed
    ({"name": "rate-engine"}, "direction_update", "ok", False),                             # no staff role
    ({"name": "mallory", "role": "admin"}, "partner_withdrawal_reject", "ok", False),       # moves no money out
])
def test_a_staff_change_that_moves_money_also_writes_its_alert_event(actor, action, outcome, alerted):
    """docs/security.md: the alert is in the outbox of the transaction that makes the change."""
    cur = RecordingCursor()
    write_audit(cur, actor, action, outcome, {"code": "USDT", "changes": {"account": "EVIL"}},
                alert_source="orders", order_id=None)
    found = _security_events(cur)
    assert len(found) == (1 if alerted else 0)
    if alerted:
        data = found[0]["data"]
        assert (found[0]["source"], data["action"], data["actor"], data["actor_role"]) == (
            "orders", action, actor["name"], actor["role"])
        assert data["detail"]["changes"] == {"account": "EVIL"}
    # Without alert_source (the gateway, which queues its own alerts) no event is written.
    cur = RecordingCursor()
    write_audit(cur, actor, action, outcome, {}, order_id=None)
    assert _security_events(cur) == []


def test_the_alert_text_names_who_what_when_and_the_change():
    from libs.contracts import security
    data = security.change_data({"name": "mallory", "role": "admin", "ip": "203.0.113.9"}, "currency_update",
                                {"code": "USDT", "changes": {"account": "EVIL-1"}, "before": {"account": "GOOD-1"}})
    subject, body = security.change_text(data)
    assert subject == "Security: a currency's payment account or reserve changed (by mallory)"
    assert "mallory (admin) from 203.0.113.9" in body and "account=GOOD-1" in body and "account=EVIL-1" in body
    assert set(security.ALERTED_ACTIONS) >= {"direction_update", "currency_update", "commission_update",
                                              "partner_update", "direction_commission_update",
                                              "partner_withdrawal_approve", "resolve_payout",
                                              "resolve_withdrawal_payout", "staff_create", "staff_update",
                                              "staff_reset_totp", "manual_value_set", "formula_save",
                                              "formula_delete", "rate_accept"}


@pytest.mark.parametrize("actor, action, alerted", [
    ({"name": "ana", "role": "admin", "ip": "198.51.100.4"}, "formula_save", True),
    ({"name": "olga", "role": "operator"}, "manual_value_set", True),
    ({"name": "olga", "role": "operator"}, "rate_accept", True),
    ({"name": "ana", "role": "admin"}, "formula_delete", True),
    ({"name": "rate-engine", "kind": "system"}, "formula_save", False),     # the engine itself: no takeover
])
def test_rate_engine_changes_are_alerted_from_the_rates_outbox(actor, action, alerted):
    """docs/rates.md: a formula or a manual value decides a direction's rate, so a staff change of it is alerted
    from the rates service's own outbox, with its audit row (rates.audit_log has direction_id and source)."""
    cur = RecordingCursor()
    write_audit(cur, actor, action, "ok", {"direction_id": 7, "after": {"expression": "cbr.USD"}},
                alert_source="rates", direction_id=7, source=None)
    assert cur.statements[0][0].startswith("INSERT INTO audit_log (actor, actor_role, actor_ip, action, outcome, "
                                           "detail, direction_id, source)")
    found = _security_events(cur)
    assert len(found) == (1 if alerted else 0)
    if alerted:
        assert found[0]["source"] == "rates" and found[0]["data"]["what"] != action
