"""Statistics over the read model (RPC) and the rebuild command against a stand-in orders service."""
import datetime
import json
import os
import subprocess
import sys
import uuid

import pytest
from nameko.exceptions import RemoteError
from nameko.rpc import rpc
from nameko.standalone.rpc import ServiceRpcProxy

from tests.conftest import ROOT, TEST_AMQP_URI, TEST_DATABASE_URL
from tests.interface.reporting.conftest import row
from tests.unit.reporting import factories as f

UTC = datetime.timezone.utc


def at(day, minutes=0):
    """A moment in a far-past year of this module's own (no other test writes there)."""
    return datetime.datetime(2013, 7, 1, 10, tzinfo=UTC) + datetime.timedelta(days=day, minutes=minutes)


def order(order_id, status, day, direction=(1, "USDT", "EUR"), amount_in="100", amount_out="91.54",
          fee_amount="0.46", previous=None, completed_after=None):
    created = at(day)
    snapshot = f.order(order_id, version=3, status=status, direction_id=direction[0], currency_in=direction[1],
                       currency_out=direction[2], amount_in=amount_in, amount_out=amount_out, fee_amount=fee_amount,
                       created_at=created.isoformat(), updated_at=created.isoformat(), previous_status=previous)
    if completed_after is not None:
        snapshot["completed_at"] = (created + datetime.timedelta(minutes=completed_after)).isoformat()
    return snapshot


@pytest.fixture
def rpc_proxy(reporting, reporting_config):
    with ServiceRpcProxy("reporting", reporting_config, timeout=15) as proxy:
        yield proxy


def test_statistics(rpc_proxy, seed, ids):
    usd_rub = (2, "USD", "RUB")
    seed(order(ids(), "completed", 0, previous="payout", completed_after=10),
         order(ids(), "completed", 0, previous="processing", completed_after=30, amount_in="50",
               amount_out="45.77", fee_amount="0.23"),
         order(ids(), "completed", 1, usd_rub, amount_in="10", amount_out="945.45", fee_amount="9.55",
               previous="payout", completed_after=60),
         order(ids(), "expired", 0, previous="new"),
         order(ids(), "canceled", 1, usd_rub, previous="new"),             # gave up before paying
         order(ids(), "canceled", 1, usd_rub, previous="paid"),            # paid, then canceled: not "never paid"
         order(ids(), "deleted", 1, previous="expired"),
         order(ids(), "new", 1),
         order(ids(), "paid", 1, usd_rub, previous="new"),
         order(ids(), "completed", 5, previous="payout", completed_after=5))  # outside the window
    result = rpc_proxy.stats(at(0, -60).isoformat(), at(2).isoformat(), "day")
    totals = result["totals"]
    assert totals["requests"] == 9
    assert totals["by_status"] == {"completed": 3, "expired": 1, "canceled": 2, "deleted": 1, "new": 1, "paid": 1}
    assert totals["never_paid"] == 3 and totals["never_paid_share"] == round(3 / 9, 4)
    assert totals["completion_seconds"] == {"count": 3, "p50": 1800.0, "p90": 3240.0, "p99": 3564.0}
    assert totals["turnover_in"] == {"USD": "10", "USDT": "150"}
    assert totals["turnover_out"] == {"EUR": "137.31", "RUB": "945.45"}
    assert totals["margin"] == {"EUR": "0.69", "RUB": "9.55"}
    day0, day1 = result["groups"]
    assert (day0["day"], day0["requests"], day0["never_paid"]) == ("2013-07-01", 3, 1)
    assert day0["turnover"] == [{"direction_id": 1, "completed": 2, "currency_in": "USDT", "currency_out": "EUR",
                                 "amount_in": "150", "amount_out": "137.31", "margin": "0.69"}]
    assert (day1["day"], day1["requests"], day1["never_paid"]) == ("2013-07-02", 6, 2)
    assert day1["completion_seconds"]["count"] == 1 and day1["turnover"][0]["currency_out"] == "RUB"

    by_direction = rpc_proxy.stats(at(0, -60).isoformat(), at(2).isoformat(), "direction")
    assert [(g["direction_id"], g["requests"]) for g in by_direction["groups"]] == [(1, 5), (2, 4)]
    two = by_direction["groups"][1]
    assert (two["currency_in"], two["currency_out"], two["never_paid"]) == ("USD", "RUB", 1)
    assert two["turnover"] == [{"day": "2013-07-02", "completed": 1, "currency_in": "USD", "currency_out": "RUB",
                                "amount_in": "10", "amount_out": "945.45", "margin": "9.55"}]
    assert by_direction["totals"] == totals


def test_statistics_input_is_checked(rpc_proxy):
    for args in (("2013-07-02", "2013-07-01T00:00:00", "day"), (None, None, "week")):
        with pytest.raises(RemoteError) as exc:
            rpc_proxy.stats(*args)
        assert exc.value.exc_type == "ValidationFailed"


class StandInOrders:
    """Answers export_orders pages from SNAPSHOTS, like the orders service does from its table."""
    name = "orders_standin"
    snapshots = []

    @rpc
    def export_orders(self, after_id=0, limit=500):
        return [s for s in self.snapshots if s["id"] > after_id][:limit]


def run_rebuild(service_name, *args):
    env = dict(os.environ, PYTHONPATH=ROOT, DATABASE_URL=TEST_DATABASE_URL, AMQP_URI=TEST_AMQP_URI)
    done = subprocess.run([sys.executable, "-m", "services.reporting.rebuild", "--orders-service", service_name,
                           "--page-size", "3", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_rebuild_refills_a_wiped_read_model(container_factory, nameko_config, db, readmodel, ids):
    name = "orders_standin_%s" % uuid.uuid4().hex[:8]
    service = type("StandIn", (StandInOrders,), {"name": name})
    snapshots = [dict(f.order(ids(), version=2, status="expired"), previous_status="new", last_action="expire")
                 for _ in range(7)]
    service.snapshots = snapshots
    container_factory(service, nameko_config).start()
    newer = dict(f.order(snapshots[0]["id"], version=5, status="paid"), previous_status="expired")
    readmodel.upsert_snapshots([newer])   # an event newer than the owner's page arrived meanwhile
    try:
        result = run_rebuild(name)
        assert result["orders"] == 7 and result["pages"] == 3 and result["changed"] == 6
        assert row(db, snapshots[0]["id"])["status"] == "paid"   # the newer version stays
        assert row(db, snapshots[1]["id"])["previous_status"] == "new"

        result = run_rebuild(name, "--wipe")
        assert db.fetchone("SELECT count(*) AS n FROM orders")["n"] == 7  # nothing but what the owner has
        assert result["changed"] == 7
        for s in snapshots:
            r = row(db, s["id"])
            assert (r["version"], r["status"], r["last_action"]) == (2, "expired", "expire")
    finally:
        with db.transaction() as cur:
            cur.execute("DELETE FROM orders WHERE id = ANY(%s)", ([s["id"] for s in snapshots],))
