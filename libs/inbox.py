"""Consumer-side dedupe: record (consumer, event_id) in the same transaction as the effect, so a redelivered event
has one effect (docs/architecture.md, "Messaging").

Each service has `processed_events(consumer, event_id)` in its own schema (defined in libs/schema_parts.py).
"""
from libs import metrics


def claim(cur, consumer, event_id):
    """True the first time this consumer sees event_id in a committed transaction; False for a duplicate.

    A concurrent duplicate blocks on the primary key until the first transaction ends, then sees the conflict,
    so two deliveries processed at once still have one effect.
    """
    cur.execute(
        "INSERT INTO processed_events (consumer, event_id) VALUES (%s, %s) ON CONFLICT DO NOTHING",
        (consumer, str(event_id)))
    if cur.rowcount == 1:
        return True
    metrics.EVENT_DUPLICATES.labels(consumer).inc()
    return False
