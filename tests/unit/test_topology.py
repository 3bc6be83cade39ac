"""Every reliable event handler in the services is declared in libs/topology.py, so its queue exists before any
publisher runs (docs/reliability.md, pitfall N3)."""
import importlib
import os

from nameko.extensions import ENTRYPOINT_EXTENSIONS_ATTR

from libs import topology
from libs.messaging import ReliableEventHandler

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _service_classes():
    for name in sorted(os.listdir(os.path.join(ROOT, "services"))):
        if os.path.exists(os.path.join(ROOT, "services", name, "service.py")):
            module = importlib.import_module("services.%s.service" % name)
            for value in vars(module).values():
                if isinstance(value, type) and getattr(value, "name", None) and value.__module__ == module.__name__:
                    yield value


def test_every_event_handler_is_in_the_topology():
    declared = {(s.source, s.event_type, s.service, s.method) for s in topology.SUBSCRIPTIONS}
    found = set()
    for cls in _service_classes():
        for method_name in dir(cls):
            method = getattr(cls, method_name)
            for ext in getattr(method, ENTRYPOINT_EXTENSIONS_ATTR, ()):
                if isinstance(ext, ReliableEventHandler):
                    found.add((ext.source_service, ext.event_type, cls.name, method_name))
    assert found <= declared, "handlers missing from libs/topology.py: %s" % (found - declared)
    services = {cls.name for cls in _service_classes()}
    stale = {s for s in declared if s[2] in services} - found
    assert not stale, "topology lists handlers that do not exist: %s" % stale


def test_retry_delays_double():
    assert [topology.retry_delay_ms(1000, n) for n in (1, 2, 3)] == [1000, 2000, 4000]
