"""A local SMTP server for `make run` and the tests (aiosmtpd): every letter it receives is stored in a Maildir
folder and logged, so the demo sends real e-mail with no configuration.

    python -m services.notifier.devsmtp [--host 127.0.0.1] [--port 8025] [--maildir var/mail]

Environment: DEVSMTP_HOST, DEVSMTP_PORT, DEVSMTP_MAILDIR, DEVSMTP_CLEAR=1 (empty the folder at start).
Read the mail with any Maildir reader (`mutt -f var/mail`) or Python's `mailbox.Maildir`.

To rehearse an outage without stopping the whole Procfile: `kill -USR1 $(cat var/mail/devsmtp.pid)` stops the
server (the port refuses connections and open sessions are cut), `kill -USR2 …` starts it again.
"""
import argparse
import asyncio
import email
import email.policy
import logging
import mailbox
import os
import shutil
import signal
import socket
import time

from aiosmtpd.smtp import SMTP

from libs import config

log = logging.getLogger("devsmtp")


class MaildirHandler:
    def __init__(self, maildir):
        mailbox.Maildir(maildir, create=True)  # cur/ new/ tmp/
        self.maildir = maildir
        self.count = 0
        self.host = socket.gethostname().replace("/", "_").replace(":", "_")

    def store(self, content):
        """Maildir delivery (write in tmp/, rename into new/), without mailbox's fsync per letter: a dev server
        need not survive a power cut, and the fsync made it the slowest part of the benchmark."""
        now = time.time()
        key = "%d.M%06dP%dQ%d.%s" % (now, (now % 1) * 1e6, os.getpid(), self.count + 1, self.host)
        tmp = os.path.join(self.maildir, "tmp", key)
        with open(tmp, "wb") as fh:
            fh.write(content)
        os.rename(tmp, os.path.join(self.maildir, "new", key))
        return key

    async def handle_DATA(self, server, session, envelope):
        content = envelope.original_content or envelope.content
        if isinstance(content, str):
            content = content.encode("utf-8")
        key = self.store(content)
        self.count += 1
        if not log.isEnabledFor(logging.INFO):
            return "250 OK stored as %s" % key
        headers = email.message_from_bytes(content.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n",
                                           policy=email.policy.default)
        log.info("mail #%d from %s to %s: %s (%d bytes) -> %s", self.count, envelope.mail_from,
                 ", ".join(envelope.rcpt_tos), headers.get("Subject", ""), len(content), key)
        return "250 OK stored as %s" % key


class TrackedSMTP(SMTP):
    """Knows its open sessions so that an outage can cut them (a pooled client connection would survive)."""
    sessions = set()

    def connection_made(self, transport):
        super().connection_made(transport)
        TrackedSMTP.sessions.add(transport)

    def connection_lost(self, exc):
        TrackedSMTP.sessions.discard(self.transport)
        super().connection_lost(exc)


class DevSmtpServer:
    def __init__(self, host, port, maildir):
        self.host, self.port, self.maildir = host, port, maildir
        self.handler = MaildirHandler(maildir)
        self.server = None

    async def start(self):
        if self.server is None:
            loop = asyncio.get_running_loop()
            self.server = await loop.create_server(
                lambda: TrackedSMTP(self.handler, hostname="devsmtp.local", data_size_limit=10 * 2**20),
                self.host, self.port, reuse_address=True)
            log.info("SMTP listening on %s:%s, storing mail in %s", self.host, self.port,
                     os.path.abspath(self.maildir))

    async def stop(self):
        if self.server is not None:
            self.server.close()
            for transport in list(TrackedSMTP.sessions):
                transport.abort()
            await self.server.wait_closed()
            self.server = None
            log.info("SMTP stopped (outage): port %s refuses connections", self.port)


async def serve(host, port, maildir):
    server = DevSmtpServer(host, port, maildir)
    await server.start()
    pidfile = os.path.join(maildir, "devsmtp.pid")
    with open(pidfile, "w") as fh:
        fh.write(str(os.getpid()))
    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    loop.add_signal_handler(signal.SIGUSR1, lambda: asyncio.ensure_future(server.stop()))
    loop.add_signal_handler(signal.SIGUSR2, lambda: asyncio.ensure_future(server.start()))
    loop.add_signal_handler(signal.SIGTERM, done.set)
    loop.add_signal_handler(signal.SIGINT, done.set)
    try:
        await done.wait()
    finally:
        await server.stop()
        try:
            os.unlink(pidfile)
        except OSError:
            pass


def main(argv=None):
    config.refuse_unsafe_production("devsmtp")
    parser = argparse.ArgumentParser(description="Local SMTP server that stores mail in a Maildir.")
    parser.add_argument("--host", default=config.env("DEVSMTP_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=config.env_int("DEVSMTP_PORT", 8025))
    parser.add_argument("--maildir", default=config.env("DEVSMTP_MAILDIR", "var/mail"))
    parser.add_argument("--quiet", action="store_true", help="do not log every letter")
    parser.add_argument("--clear", action="store_true", default=config.env("DEVSMTP_CLEAR") == "1",
                        help="delete the mail kept from earlier runs first")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(asctime)s %(levelname)s devsmtp: %(message)s")
    logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd's per-command chatter
    if args.clear:
        shutil.rmtree(args.maildir, ignore_errors=True)
    asyncio.run(serve(args.host, args.port, args.maildir))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
