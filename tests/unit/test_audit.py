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
