"""The dead-letter queues from the command line: list, show, replay, discard. Every replay and discard is audited
in the `ops` schema's append-only audit log, with the event itself, so nothing leaves a DLQ without a trace.

    python -m libs.dlq list
    python -m libs.dlq show evt-payments-payout_sent--orders.handle_payout_sent [--limit 20]
    python -m libs.dlq replay <queue> --event-id <id> [--event-id <id>...] --actor alice --reason "db was down"
    python -m libs.dlq replay <queue> --all --actor alice --reason "fixed the bug of release 1.4"
    python -m libs.dlq discard <queue> --event-id <id> --actor alice --reason "test event"

A queue may be named with or without its `.dlq` suffix. Replay puts the event back on its queue as a first
attempt (the consumers' inbox makes a second delivery harmless). Written with pika, the plain synchronous AMQP
client: a command line needs no event loop (the services stay on nameko/kombu). How an event gets here:
libs/messaging.py; what to do about it: docs/architecture.md, "Messaging".
"""
import argparse
import json
import sys
from urllib.parse import unquote, urlsplit

import pika

from libs import audit, config, topology
from libs.db import Database
from libs.messaging import ATTEMPT_HEADER, ERROR_HEADER, FIRST_FAILURE_HEADER

RETRY_HEADERS = (ATTEMPT_HEADER, ERROR_HEADER, FIRST_FAILURE_HEADER)


def connection_parameters(amqp_uri):
    parts = urlsplit(amqp_uri)
    vhost = unquote(parts.path[1:]) if parts.path and parts.path != "/" else "/"
    return pika.ConnectionParameters(
        host=parts.hostname or "127.0.0.1", port=parts.port or 5672, virtual_host=vhost,
        credentials=pika.PlainCredentials(unquote(parts.username or "guest"), unquote(parts.password or "guest")))


def main_queue(name):
    return name[:-len(".dlq")] if name.endswith(".dlq") else name


class DeadLetters:
    def __init__(self, amqp_uri=None, database_url=None):
        self.connection = pika.BlockingConnection(connection_parameters(amqp_uri or config.amqp_uri()))
        self.database = Database(url=database_url, schema="ops", maxconn=1, application_name="dlq-tool")

    def close(self):
        self.database.close()
        if self.connection.is_open:
            self.connection.close()

    def queues(self):
        """[(dlq name, messages waiting)] for every subscription of the topology."""
        channel = self.connection.channel()
        found = []
        for s in topology.all_subscriptions():
            dlq = topology.dead_letter_queue_name(topology.queue_name(s.source, s.event_type, s.service, s.method))
            try:
                count = channel.queue_declare(dlq, passive=True).method.message_count
            except pika.exceptions.ChannelClosedByBroker:   # never declared: nothing there
                channel = self.connection.channel()
                count = 0
            found.append((dlq, count))
        channel.close()
        return found

    def _take(self, channel, dlq, limit=None):
        """Every message of the DLQ, unacknowledged: what the caller does not ack returns to the queue when the
        channel closes."""
        taken = []
        while limit is None or len(taken) < limit:
            method, properties, body = channel.basic_get(dlq, auto_ack=False)
            if method is None:
                break
            taken.append((method, properties, body))
        return taken

    @staticmethod
    def describe(properties, body):
        headers = properties.headers or {}
        try:
            event = json.loads(body)
        except ValueError:
            event = {"raw": body.decode("utf-8", "replace")}
        return {"event_id": properties.message_id or event.get("event_id"), "event_type": event.get("event_type"),
                "attempts": headers.get(ATTEMPT_HEADER), "error": headers.get(ERROR_HEADER), "event": event}

    def show(self, queue, limit=20):
        channel = self.connection.channel()
        try:
            return [self.describe(p, b) for _, p, b in self._take(channel, queue + ".dlq", limit)]
        finally:
            channel.close()   # nothing acked: every message stays where it was

    def _act(self, queue, event_ids, everything, actor, reason, replay):
        if not actor or not reason:
            raise SystemExit("--actor and --reason are required: every replay and discard is audited")
        channel = self.connection.channel()
        channel.confirm_delivery()
        done = []
        try:
            for method, properties, body in self._take(channel, queue + ".dlq"):
                info = self.describe(properties, body)
                if not everything and info["event_id"] not in event_ids:
                    continue
                if replay:
                    headers = {k: v for k, v in (properties.headers or {}).items() if k not in RETRY_HEADERS}
                    # Confirmed and mandatory: an error here leaves the message in the DLQ, nothing is lost.
                    channel.basic_publish("", queue, body, pika.BasicProperties(
                        content_type=properties.content_type, content_encoding=properties.content_encoding,
                        message_id=properties.message_id, headers=headers, delivery_mode=2), mandatory=True)
                with self.database.transaction() as cur:
                    audit.write_audit(cur, {"name": actor, "kind": "staff"}, "dlq_replay" if replay else "dlq_discard",
                                      detail={"reason": reason, "attempts": info["attempts"], "error": info["error"],
                                              "event": info["event"]},
                                      queue=queue, event_id=info["event_id"])
                channel.basic_ack(method.delivery_tag)
                done.append(info["event_id"])
        finally:
            channel.close()
        return done

    def replay(self, queue, event_ids=(), everything=False, actor=None, reason=None):
        return self._act(queue, set(event_ids), everything, actor, reason, replay=True)

    def discard(self, queue, event_ids=(), everything=False, actor=None, reason=None):
        return self._act(queue, set(event_ids), everything, actor, reason, replay=False)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m libs.dlq", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="every dead-letter queue and how many events wait in it")
    show = sub.add_parser("show", help="the events waiting in one dead-letter queue (nothing is taken)")
    show.add_argument("queue")
    show.add_argument("--limit", type=int, default=20)
    for name in ("replay", "discard"):
        act = sub.add_parser(name, help="%s events of one dead-letter queue (audited)" % name)
        act.add_argument("queue")
        which = act.add_mutually_exclusive_group(required=True)
        which.add_argument("--event-id", action="append", default=[])
        which.add_argument("--all", action="store_true")
        act.add_argument("--actor", required=True, help="who does it (recorded in ops.audit_log)")
        act.add_argument("--reason", required=True, help="why (recorded in ops.audit_log)")
    args = parser.parse_args(argv)

    tool = DeadLetters()
    try:
        if args.command == "list":
            for dlq, count in tool.queues():
                print("%6d  %s" % (count, dlq))
        elif args.command == "show":
            print(json.dumps(tool.show(main_queue(args.queue), args.limit), indent=2, default=str))
        else:
            method = tool.replay if args.command == "replay" else tool.discard
            done = method(main_queue(args.queue), args.event_id, args.all, args.actor, args.reason)
            print("%s %d event(s): %s" % ("replayed" if args.command == "replay" else "discarded", len(done),
                                          ", ".join(map(str, done)) or "-"))
            if args.event_id and len(done) < len(set(args.event_id)):
                print("not found: %s" % ", ".join(sorted(set(args.event_id) - set(map(str, done)))))
                return 1
    finally:
        tool.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
