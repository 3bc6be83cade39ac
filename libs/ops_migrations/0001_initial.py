"""The `ops` schema: the audit log of what operators do to the messaging itself (libs/dlq.py: replaying or
discarding dead-lettered events). Built from the shared definition in libs/schema_parts.py."""
from yoyo import step

from libs.schema_parts import audit_ddl

steps = [step(audit_ddl([("queue", "text"), ("event_id", "text")]))]
