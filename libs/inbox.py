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


def claim_many(cur, consumer, event_ids):
    """The batch form of `claim`: ONE insert for all event ids; returns the set of ids (as strings) seen for the
    first time. Duplicates inside the batch or from earlier deliveries are left out and counted."""
    ids = [str(event_id) for event_id in event_ids]
    if not ids:
        return set()
    cur.execute(
        "INSERT INTO processed_events (consumer, event_id) SELECT %s, unnest(%s::uuid[]) "
        "ON CONFLICT DO NOTHING RETURNING event_id", (consumer, ids))
    fresh = {str(row["event_id"] if isinstance(row, dict) else row[0]) for row in cur.fetchall()}
    duplicates = len(ids) - len(fresh)
    if duplicates:
        metrics.EVENT_DUPLICATES.labels(consumer).inc(duplicates)
    return fresh


def claim_batch(cur, consumer, envelopes):
    """The envelopes of a batch whose event ids this consumer has not seen, in delivery order, each once."""
    fresh = claim_many(cur, consumer, [e["event_id"] for e in envelopes])
    new = []
    for envelope in envelopes:
        event_id = str(envelope["event_id"])
        if event_id in fresh:
            fresh.discard(event_id)
            new.append(envelope)
    return new
