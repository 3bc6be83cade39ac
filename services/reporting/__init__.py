"""Reporting: a read model of orders and payments fed by events; CSV exports and statistics (docs/reporting.md)."""
