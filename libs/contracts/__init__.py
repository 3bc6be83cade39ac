"""Every contract between the services: event names and envelopes, the payload schemas, the shared enums and the
request schemas both the gateway and a service load with. Pure definitions (no I/O).

A service or the gateway imports its peers' contracts from here, never the peer itself; pyproject.toml
([tool.importlinter]) states that rule and tests/unit/test_import_contracts.py keeps it.
"""
