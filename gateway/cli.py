"""Staff administration: `python -m gateway.cli create-staff NAME --role operator` (asks for the password; the
account must enrol TOTP at its first sign-in unless `--without-totp` says otherwise, never for an admin),
`python -m gateway.cli ensure-admin` (the first admin from EXCHANGER_ADMIN_USER / EXCHANGER_ADMIN_PASSWORD),
`python -m gateway.cli unlock NAME [--address IP]` (lift a sign-in lock: docs/security.md, "Throttles and lockout")."""
import argparse
import getpass
import os
import sys

from gateway import config as gateway_config
from gateway.security.alerts import Alerts
from gateway.security.lockout import Lockout
from gateway.security.staff import ROLES, StaffStore
from libs import config as libs_config
from libs.contracts import security
from libs.db import Database


def main(argv=None):
    libs_config.refuse_unsafe_production("gateway.cli")
    parser = argparse.ArgumentParser(prog="python -m gateway.cli")
    sub = parser.add_subparsers(dest="command", required=True)
    create = sub.add_parser("create-staff", help="add an operator, analyst or admin")
    create.add_argument("username")
    create.add_argument("--role", choices=ROLES, default="operator")
    create.add_argument("--password-env", help="read the password from this environment variable")
    create.add_argument("--without-totp", action="store_true",
                        help="do not require a second factor of this account (not for admins; roles in "
                             "GATEWAY_TOTP_REQUIRED_ROLES, operators by default, still must enrol)")
    sub.add_parser("ensure-admin", help="create the first admin from the environment if missing")
    unlock = sub.add_parser("unlock", help="lift the sign-in locks and counters of a username")
    unlock.add_argument("username")
    unlock.add_argument("--address", help="only those of this client address")
    args = parser.parse_args(argv)
    database = Database(schema="gateway", maxconn=1, application_name="gateway-cli")
    store = StaffStore(database)
    if args.command == "unlock":
        removed = Lockout(database, gateway_config.from_env()).unlock(args.username, args.address)
        store.audit("cli", "staff_unlock", detail={"staff": args.username.lower(), "address": args.address,
                                                   "counters_removed": removed})
        print("unlocked %s%s (%d counters removed)" % (
            args.username, " from %s" % args.address if args.address else "", removed))
        return 0
    if args.command == "create-staff":
        if args.without_totp and args.role == "admin":
            print("error: an admin always signs in with a second factor", file=sys.stderr)
            return 2
        password = os.environ.get(args.password_env) if args.password_env else getpass.getpass("password: ")
        try:
            with store.db.transaction() as cur:
                store.create(args.username, password or "", args.role, totp_required=not args.without_totp,
                             created_by="cli", cur=cur)
                # Staff made on the host are announced like staff made in the panel (docs/security.md): the
                # gateway's sweeper delivers the queued alert.
                actor = {"name": "cli:%s" % getpass.getuser(), "role": "host", "ip": "localhost"}
                subject, body = security.change_text(security.change_data(actor, "staff_create", {
                    "staff": args.username, "role": args.role, "totp_required": not args.without_totp}))
                Alerts(store.db).queue(cur, "security_change", subject, body)
        except ValueError as exc:
            print("error: %s" % exc, file=sys.stderr)
            return 2
        print("created %s (%s%s)" % (args.username, args.role,
                                     "" if args.without_totp else ", must enrol TOTP at the first sign-in"))
        return 0
    user = os.environ.get("EXCHANGER_ADMIN_USER")
    password = os.environ.get("EXCHANGER_ADMIN_PASSWORD")
    if not user or not password:
        print("EXCHANGER_ADMIN_USER and EXCHANGER_ADMIN_PASSWORD are not set: no admin created", file=sys.stderr)
        return 0
    try:
        _, created = store.ensure(user, password, "admin")
    except ValueError as exc:
        print("error: %s" % exc, file=sys.stderr)
        return 2
    print("admin %s %s" % (user, "created" if created else "exists"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
