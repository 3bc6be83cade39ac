"""A withdrawal's request id belongs to the partner's account and to the request (docs/partners.md, "Withdrawals"):
another account with the same id makes its own request and learns nothing of the first; the same id with another
body is refused."""
import pytest

from libs import errors
from tests.interface.partners.conftest import STAFF, call, completed_order, manual_direction, partner


def _funded(orders, sql):
    p = partner(orders, sql)
    call(orders, "update_partner", p["partner"]["id"], {"percent": "10", "base": "amount"}, STAFF)
    completed_order(orders, manual_direction(orders), partner_code=p["partner"]["code"])
    return p


def test_withdrawal_request_ids_are_one_global_namespace_and_ignore_the_body(orders, sql):
    call(orders, "update_commission", {"min_withdrawal": "1"}, STAFF)
    alice, mallory = _funded(orders, sql), _funded(orders, sql)
    request_id = "web-same-form-id"
    mine = call(orders, "request_withdrawal", alice["id"], "2", "USDT", "ALICE-USDT", request_id)
    assert call(orders, "request_withdrawal", alice["id"], "2.00", "USDT", "ALICE-USDT", request_id)["id"] == \
        mine["id"]
    theirs = call(orders, "request_withdrawal", mallory["id"], "3", "USDT", "MALLORY-USDT", request_id)
    assert theirs["id"] != mine["id"] and theirs["partner_id"] == mallory["partner"]["id"]
    assert theirs["to_account"] == "MALLORY-USDT"
    with pytest.raises(errors.Conflict) as exc:
        call(orders, "request_withdrawal", alice["id"], "5", "USDT", "ALICE-USDT", request_id)
    assert "different request" in exc.value.message
    held = sql("SELECT count(*) AS n FROM orders.partner_ledger WHERE withdrawal_id IN (%s, %s)",
               (mine["id"], theirs["id"]))
    assert held[0]["n"] == 2
