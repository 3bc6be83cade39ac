"""The app's connection pool and a transaction runner that retries what PostgreSQL asks to retry."""
import logging

import psycopg2.errors
from flask import current_app

log = logging.getLogger(__name__)

EXTENSION = "sandbox.db"
RETRIES = 3


def get_db():
    return current_app.extensions[EXTENSION]


def transact(fn, db=None):
    """Run fn(cur) in one transaction and return its result; a deadlock or serialization failure (which rolls
    the whole transaction back, so nothing happened) is retried a few times."""
    db = db or get_db()
    for attempt in range(RETRIES):
        try:
            with db.transaction() as cur:
                return fn(cur)
        except (psycopg2.errors.DeadlockDetected, psycopg2.errors.SerializationFailure):
            if attempt == RETRIES - 1:
                raise
            log.warning("transaction retried after a deadlock/serialization failure (attempt %d)", attempt + 1)
