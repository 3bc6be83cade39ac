"""Payment system adapters, chosen per payment system in configuration (config.yml PAYMENT_SYSTEMS):

    PAYMENT_SYSTEMS:
      sandbox: {adapter: sandbox, url: http://127.0.0.1:8090, timeout: 10}

`build(system, settings)` imports services.payments.adapters.<adapter> and returns its `Adapter`.
"""
import importlib
import re

from services.payments.adapters.base import (FAILED, SENT, UNKNOWN, Entry, Page, PaymentSystemAdapter,  # noqa
                                             PayoutResult, ProviderError)

__all__ = ["FAILED", "SENT", "UNKNOWN", "Entry", "Page", "PaymentSystemAdapter", "PayoutResult", "ProviderError",
           "build"]

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def build(system, settings):
    adapter = (settings or {}).get("adapter", system)
    if not _NAME.match(adapter or ""):
        raise ValueError("payment system %s: bad adapter name %r" % (system, adapter))
    module = importlib.import_module("services.payments.adapters.%s" % adapter)
    return module.Adapter(system, settings)
