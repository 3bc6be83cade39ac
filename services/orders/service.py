"""Orders service entrypoints: RPC for the gateway, the expiry timer. Logic lives in domain.py and
dependencies.py; this module only routes calls."""
from nameko.rpc import rpc
from nameko.timer import timer

from libs import config, errors
from libs.metrics import EntrypointMetrics
from libs.outbox import OutboxRelayProvider
from services.orders.dependencies import OrderStoreProvider

EXPIRY_SWEEP_SECONDS = config.env_float("EXPIRY_SWEEP_SECONDS", 5.0)

expected = errors.EXPECTED


def _staff(actor):
    """Operator commands carry the signed-in staff member from the gateway."""
    actor = dict(actor or {})
    if not actor.get("name"):
        raise errors.Forbidden("operator actions need an actor")
    actor["kind"] = "staff"
    return actor


class OrdersService:
    name = "orders"

    store = OrderStoreProvider()
    relay = OutboxRelayProvider("orders")
    metrics = EntrypointMetrics()

    @rpc
    def echo(self, value=None):
        """Bare round trip through this service: the benchmark's yardstick for the messaging cost."""
        return value

    @rpc
    def ping(self):
        return "orders"

    # -- public --------------------------------------------------------------------------------------------
    @rpc(expected_exceptions=expected)
    def list_directions(self, active_only=True):
        return self.store.list_directions(active_only)

    @rpc(expected_exceptions=expected)
    def get_direction(self, direction_id):
        return self.store.get_direction(direction_id)

    @rpc(expected_exceptions=expected)
    def list_currencies(self):
        return self.store.list_currencies()

    @rpc(expected_exceptions=expected)
    def create_order(self, data, actor=None):
        return self.store.create_order(data, dict(actor or {}, kind="customer"))

    @rpc(expected_exceptions=expected)
    def get_order_by_token(self, token):
        return self.store.get_order_by_token(token)

    @rpc(expected_exceptions=expected)
    def claim_paid(self, token, actor=None):
        return self.store.transition("claim", dict(actor or {}, kind="customer", name="customer"), token=token)

    @rpc(expected_exceptions=expected)
    def cancel_by_customer(self, token, actor=None):
        return self.store.transition("customer_cancel", dict(actor or {}, kind="customer", name="customer"),
                                     token=token)

    # -- operators -----------------------------------------------------------------------------------------
    @rpc(expected_exceptions=expected)
    def list_orders(self, filters=None):
        return self.store.list_orders(filters or {})

    @rpc(expected_exceptions=expected)
    def get_order(self, order_id):
        return self.store.get_order(order_id, with_history=True)

    @rpc(expected_exceptions=expected)
    def count_by_status(self):
        return self.store.count_by_status()

    @rpc(expected_exceptions=expected)
    def process(self, order_id, notice, actor):
        return self.store.transition("process", _staff(actor), order_id=order_id, note=notice)

    @rpc(expected_exceptions=expected)
    def finalize(self, order_id, notice, actor):
        return self.store.transition("finalize", _staff(actor), order_id=order_id, note=notice)

    @rpc(expected_exceptions=expected)
    def cancel(self, order_id, reason, actor):
        return self.store.transition("cancel", _staff(actor), order_id=order_id, note=reason)

    @rpc(expected_exceptions=expected)
    def request_payout(self, order_id, actor):
        return self.store.transition("payout", _staff(actor), order_id=order_id)

    @rpc(expected_exceptions=expected)
    def delete(self, order_id, actor):
        return self.store.transition("delete", _staff(actor), order_id=order_id)

    # -- timers --------------------------------------------------------------------------------------------
    @timer(interval=EXPIRY_SWEEP_SECONDS)
    def expire_unpaid(self):
        return self.store.expire_due()
