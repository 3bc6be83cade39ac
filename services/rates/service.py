"""Rates service entrypoints: the engine's tick (poll what is due, recompute every formula) and the RPC of the
operator panel. The work is done by the dependencies (dependencies.py): rules in domain/, SQL in store.py, wire
forms in schemas.py, HTTP in fetcher.py (docs/rates.md)."""
from libs import errors
from libs.metrics import EntrypointMetrics
from libs.outbox import OutboxRelayProvider
from libs.rpc import rpc
from libs.timers import config_timer
from services.rates.dependencies import EngineProvider, PanelProvider

expected = errors.EXPECTED


class RatesService:
    name = "rates"

    engine = EngineProvider()
    panel = PanelProvider()
    relay = OutboxRelayProvider()
    metrics = EntrypointMetrics()

    @rpc
    def ping(self):
        return "rates"

    # -- the engine ------------------------------------------------------------------------------------------------
    @config_timer("TICK_SECONDS", 1.0, eager=True)
    def run_engine(self):
        return self.engine.tick()

    @rpc(expected_exceptions=expected)
    def recompute(self):
        return self.engine.recompute()

    # -- the panel (operators and admins at the gateway; changes audited in rates.audit_log) ------------------------
    @rpc(expected_exceptions=expected)
    def list_sources(self):
        return self.panel.list_sources()

    @rpc(expected_exceptions=expected)
    def set_manual_value(self, source, symbol, value, actor):
        return self.panel.set_manual_value(source, symbol, value, actor)

    @rpc(expected_exceptions=expected)
    def list_formulas(self):
        return self.panel.list_formulas()

    @rpc(expected_exceptions=expected)
    def get_formula(self, direction_id):
        return self.panel.get_formula(direction_id)

    @rpc(expected_exceptions=expected)
    def preview_formula(self, direction, data):
        return self.panel.preview(direction, data)

    @rpc(expected_exceptions=expected)
    def save_formula(self, direction, data, actor):
        return self.panel.save_formula(direction, data, actor)

    @rpc(expected_exceptions=expected)
    def delete_formula(self, direction_id, actor):
        return self.panel.delete_formula(direction_id, actor)

    @rpc(expected_exceptions=expected)
    def accept_rate(self, direction_id, actor):
        return self.panel.accept(direction_id, actor)
