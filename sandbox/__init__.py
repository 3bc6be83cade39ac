"""A stand-in payment system: accounts, transfers, per-account history and idempotent payouts over HTTP.

The demo and the tests use it exactly as a real payment system is used: the exchanger's payments service polls an
account's history with a cursor, and sends payouts with an `Idempotency-Key` it can later look up. Fault switches
(`/api/faults`) make the next calls fail in the ways a real provider fails. A small page at `/` plays the customer's
bank. Storage is the PostgreSQL schema `sandbox`.
"""
