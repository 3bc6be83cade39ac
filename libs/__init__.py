"""Shared library of the exchanger: money, errors, events, database, outbox, inbox, metrics, RPC client."""
