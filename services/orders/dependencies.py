"""What the orders service's workers see: one small API per task, each built by its provider on the container's one
shared connection pool (libs/dependencies.py).

- `orders`: the order lifecycle (create, read, transitions, expiry, the payments and notifier events that move
  orders, a payout that went out after it was resolved failed, the export reporting rebuilds from);
- `catalogue`: directions and currencies, read by customers and changed by admins;
- `accounts`: customer accounts and their sessions;
- `partners`: the partner programme (partners, commission rules, the ledger, withdrawals);
- `stuck_work`: partner withdrawals approved for a payout and never answered: the check, the list, the repair;
- `monitor_export`: the monitors' rates file kept rendered, and the maintenance switch (docs/monitors.md).

The APIs check what comes in against the rules in domain/ and call the store/ functions, which hold every SQL
statement; nothing here talks to the database itself.
"""
import datetime
import time

from marshmallow import ValidationError

from libs import errors, metrics
from libs.contracts import events, payments, rates as rates_contract
from libs.contracts import stuck as stuck_contract
from libs.contracts.orders import OrderCreateCallSchema
from libs.dependencies import ServiceDependency
from services.orders import passwords
from services.orders.domain import RuleError, accounts as account_rules, catalogue as catalogue_rules
from services.orders.domain import partners as partner_rules, stuck as stuck_rules
from services.orders.store import accounts as account_store, catalogue as catalogue_store
from services.orders.store import orders as order_store, partners as partner_store
from services.orders.store import monitor_export as monitor_store, stuck as stuck_store

# The same schema the gateway loads the request with (libs/contracts/orders.py), built once.
CREATE_ORDER = OrderCreateCallSchema()


def _checked(rule, *args):
    """A domain rule's answer, its RuleError turned into the ValidationFailed the gateway shows field by field."""
    try:
        return rule(*args)
    except RuleError as exc:
        raise errors.ValidationFailed(exc.message, exc.fields)


def _customer(actor):
    return dict(actor or {}, kind="customer", name="customer")


class Orders:
    """The order lifecycle. Every write commits with its history, audit row and event (store/orders.py)."""

    def __init__(self, db):
        self.db = db

    def create_order(self, data, actor=None):
        try:
            data = CREATE_ORDER.load(dict(data or {}))
        except ValidationError as exc:
            raise errors.ValidationFailed("invalid order", exc.messages)
        return order_store.create_order(self.db, data, dict(actor or {}, kind="customer"))

    def get_order(self, order_id, with_history=False):
        return order_store.get_order(self.db, order_id, with_history)

    def get_order_by_token(self, token):
        return order_store.get_order_by_token(self.db, token)

    def list_orders(self, filters=None):
        return order_store.list_orders(self.db, filters or {})

    def count_by_status(self):
        return order_store.count_by_status(self.db)

    def sms_offer(self):
        return order_store.sms_offer(self.db)

    def transition(self, action_name, actor, order_id=None, token=None, note=None):
        return order_store.transition(self.db, action_name, actor, order_id=order_id, token=token, note=note)

    def claim_paid(self, token, actor=None):
        return self.transition("claim", _customer(actor), token=token)

    def cancel_by_customer(self, token, actor=None):
        return self.transition("customer_cancel", _customer(actor), token=token)

    def expire_due(self):
        return order_store.expire_due(self.db)

    def export_orders(self, after_id=0, limit=500):
        return order_store.export_orders(self.db, after_id, limit)

    # -- events of payments (libs/contracts/payments.py) and of the notifier; `consumer` names the inbox --------------
    def apply_payment(self, event_id, consumer, data):
        return order_store.apply_payment(self.db, event_id, consumer, data)

    def apply_payout_result(self, event_id, consumer, data, sent):
        return order_store.apply_payout_result(self.db, event_id, consumer, data, sent)

    def apply_balance(self, event_id, consumer, data):
        return order_store.apply_balance(self.db, event_id, consumer, data)

    def apply_sms_fee_setting(self, event_id, consumer, data):
        return order_store.apply_sms_fee_setting(self.db, event_id, consumer, data)

    def payment_received(self, payload, consumer):
        envelope, data = payments.load(payments.PaymentReceivedSchema, payload)
        return self.apply_payment(envelope["event_id"], consumer, data)

    def payout_result(self, payload, consumer, sent):
        envelope, data = payments.load(payments.PayoutResultSchema, payload)
        return self.apply_payout_result(envelope["event_id"], consumer, data, sent)

    def balance_changed(self, payload, consumer):
        envelope, data = payments.load(payments.BalanceChangedSchema, payload)
        return self.apply_balance(envelope["event_id"], consumer, data)

    def payout_succeeded_after_resolve(self, payload, consumer):
        """A payout resolved `failed` went out after all: flag the order, or the partner withdrawal (and take a
        returned amount back off the balance); neither is paid again (docs/payments.md)."""
        envelope, data = payments.load(payments.PayoutSucceededAfterResolveSchema, payload)
        if data["kind"] == "withdrawal":
            return partner_store.apply_withdrawal_late_paid(self.db, envelope["event_id"], consumer, data)
        return order_store.apply_payout_late_success(self.db, envelope["event_id"], consumer, data)

    def settings_changed(self, payload, consumer):
        envelope = events.load_envelope(payload)
        return self.apply_sms_fee_setting(envelope["event_id"], consumer, envelope["data"])


class Catalogue:
    """Directions and currencies: listed for customers, created and changed by admins (each change audited)."""

    def __init__(self, db):
        self.db = db

    def list_directions(self, active_only=True):
        return catalogue_store.list_directions(self.db, active_only)

    def get_direction(self, direction_id):
        return catalogue_store.get_direction(self.db, direction_id)

    def list_currencies(self):
        return catalogue_store.list_currencies(self.db)

    def create_direction(self, data, actor):
        currency_in, currency_out, exchange_type, values = _checked(catalogue_rules.new_direction, data)
        return catalogue_store.create_direction(self.db, currency_in, currency_out, exchange_type, values, actor)

    def update_direction(self, direction_id, changes, actor):
        values = _checked(catalogue_rules.direction_changes, changes)
        return catalogue_store.update_direction(self.db, direction_id, values, actor)

    def create_currency(self, data, actor):
        code, precision, values = _checked(catalogue_rules.new_currency, data)
        return catalogue_store.create_currency(self.db, code, precision, values, actor)

    def update_currency(self, code, changes, actor):
        values = _checked(catalogue_rules.currency_changes, changes)
        return catalogue_store.update_currency(self.db, code, values, actor)

    def rates_computed(self, payload, consumer):
        """The rate engine's verdicts: rates set, directions frozen or thawed, each compare-and-set by its seq."""
        envelope, data = events.load(rates_contract.RatesComputedSchema, payload)
        return catalogue_store.apply_engine_rates(self.db, envelope["event_id"], consumer, data["items"])


class Accounts:
    """Customer accounts: sign-up and confirmation, sign-in sessions (the gateway sends only hashes of session
    tokens) throttled per e-mail and address, the optional second factor (TOTP), password resets and changes, the
    account's orders. Letters carry links to `public_url`."""

    def __init__(self, db, public_url="http://127.0.0.1:8000", confirm_ttl_hours=48.0, reset_ttl_hours=1.0,
                 sign_in_policy=None, totp_issuer="Exchanger"):
        self.db = db
        self.public_url = public_url.rstrip("/")
        self.confirm_ttl = datetime.timedelta(hours=confirm_ttl_hours)
        self.reset_ttl = datetime.timedelta(hours=reset_ttl_hours)
        self.sign_in_policy = sign_in_policy or account_rules.SignInPolicy()
        self.totp_issuer = totp_issuer

    def signup(self, email, password, language="en", request_id=None):
        """The account (unconfirmed) and a confirmation letter. Answers the same whether the e-mail is new, waiting
        for confirmation or already confirmed (no account enumeration); a confirmed account gets no letter.
        Returns {"letter": bool} for the tests and logs, never shown to the caller."""
        email = _checked(account_rules.check_email, email)
        _checked(account_rules.check_password, password, (email,))
        _checked(account_rules.check_language, language)
        password_hash = passwords.hash_password(password)
        raw = account_rules.new_link_token()
        return account_store.signup(self.db, email, password_hash, language, request_id, raw, self.confirm_ttl,
                                    "%s/account/confirm?token=%s" % (self.public_url, raw))

    def confirm(self, token, password=None):
        """The sign-up letter's link confirms only with the password chosen at that sign-up: whoever started a
        sign-up with someone else's address cannot have the owner confirm it for them (docs/security.md)."""
        _checked(account_rules.check_link_token, token)
        row = account_store.open_confirm_token(self.db, token)
        if not isinstance(password, str) or not password or len(password) > account_rules.PASSWORD_MAX or \
                not passwords.verify_password(row["password_hash"], password):
            account_store.confirm_failed(self.db, row["id"])
            raise errors.ValidationFailed("wrong password", {"password": [
                "not the password chosen at this sign-up"]})
        return account_store.confirm(self.db, token)

    def sign_in(self, email, password, session_hash, kind, ttl_seconds, ip=None, code=None):
        """Check the password (and the code of an account with TOTP) and open a session (API token or cabinet
        cookie) whose hash the gateway sends. Each attempt is counted per (e-mail, address) before it is checked.
        Returns {"ok": True, "account", "expires_at"} or {"ok": False, "reason": invalid|unconfirmed|code_required|
        throttled, "retry_after"?}."""
        email = account_rules.sign_in_email(email)
        key = account_rules.throttle_key(email)
        claim = account_store.claim_sign_in_attempt(self.db, key, ip or "", self.sign_in_policy)
        account = account_store.account_by_email(self.db, email)
        if not claim["allowed"]:
            account_store.audit_sign_in(self.db, account, email, kind, "throttled", ip,
                                        {"retry_after": claim["retry_after"]})
            return {"ok": False, "reason": "throttled", "retry_after": claim["retry_after"]}
        good = passwords.verify_password(account["password_hash"] if account else passwords.dummy_hash(),
                                         password or "")
        totp = account_store.totp_row(self.db, account["id"]) if good and account is not None else None
        if totp is not None and totp["confirmed_at"] is not None:
            if not code:
                account_store.audit_sign_in(self.db, account, email, kind, "code_required", ip)
                return {"ok": False, "reason": "code_required"}
            if not account_store.totp_use(self.db, account["id"], code, True, time.time()):
                account_store.audit_sign_in(self.db, account, email, kind, "failed", ip, {"reason": "totp"})
                return {"ok": False, "reason": "invalid"}
        return account_store.open_session(self.db, account, good, email, session_hash, kind, ttl_seconds, ip,
                                          throttle_key=key)

    def account_for_session(self, session_hash, idle_seconds=None):
        return account_store.account_for_session(self.db, session_hash, idle_seconds)

    def sign_out(self, session_hash):
        return account_store.sign_out(self.db, session_hash)

    def request_password_reset(self, email, request_id=None):
        """A reset letter if such an account exists (the caller is told the same either way)."""
        if not account_rules.looks_like_email(email):
            raise errors.ValidationFailed("invalid e-mail", {"email": ["must be an e-mail address"]})
        raw = account_rules.new_link_token()
        return account_store.request_password_reset(self.db, email.strip(), request_id, raw, self.reset_ttl,
                                                    "%s/account/reset?token=%s" % (self.public_url, raw))

    def reset_password(self, token, password):
        _checked(account_rules.check_link_token, token)
        _checked(account_rules.check_password, password)
        password_hash = passwords.hash_password(password)
        return account_store.reset_password(self.db, token, password_hash)

    def _account(self, account_id):
        account = account_store.account_row(self.db, account_id)
        if account is None or not account["active"]:
            raise errors.NotFound("account not found")
        return account

    def change_password(self, account_id, current_password, new_password, keep_session_hash=None):
        """A signed-in account's new password: the current one must be right (422 `current_password`); every
        other session ends and the address gets a letter."""
        account = self._account(account_id)
        if not isinstance(current_password, str) or len(current_password) > account_rules.PASSWORD_MAX or \
                not passwords.verify_password(account["password_hash"], current_password):
            account_store.audit_sign_in(self.db, account, account["email"], "password", "wrong_password",
                                        action="account_password_change")
            raise errors.ValidationFailed("wrong password", {"current_password": ["wrong password"]})
        _checked(account_rules.check_password, new_password, (account["email"],))
        return account_store.change_password(self.db, account_id, passwords.hash_password(new_password),
                                             keep_session_hash)

    def totp_begin(self, account_id):
        """Start enrolling a second factor: a new secret shown once ({secret, otpauth_uri}); 409 if it is on."""
        account = self._account(account_id)
        secret = account_rules.new_totp_secret()
        if not account_store.totp_begin(self.db, account_id, secret):
            raise errors.Conflict("two-factor codes are on already", {"totp": ["enabled"]})
        return {"secret": secret, "otpauth_uri": account_rules.totp_uri(secret, account["email"], self.totp_issuer)}

    def totp_confirm(self, account_id, code):
        """The first code from the app switches the second factor on (422 `code` if wrong)."""
        if not account_store.totp_use(self.db, account_id, code, False, time.time()):
            raise errors.ValidationFailed("wrong code", {"code": ["wrong or used code, or no enrolment started"]})
        return account_store.account_wire(self.db, self._account(account_id))

    def totp_disable(self, account_id, password, code):
        """Switching the second factor off takes the password and a current code."""
        account = self._account(account_id)
        if not isinstance(password, str) or len(password) > account_rules.PASSWORD_MAX or \
                not passwords.verify_password(account["password_hash"], password):
            raise errors.ValidationFailed("wrong password", {"password": ["wrong password"]})
        if not account_store.totp_use(self.db, account_id, code, True, time.time()):
            raise errors.ValidationFailed("wrong code", {"code": ["wrong or used code"]})
        account_store.totp_disable(self.db, account_id)
        return account_store.account_wire(self.db, account)

    def list_account_orders(self, account_id, limit=50, cursor=None):
        return account_store.list_account_orders(self.db, account_id, limit, cursor)


class Partners:
    """The partner programme: joining, the partner's cabinet and withdrawals, and what operators and admins do
    (partners, commission rules, deciding withdrawals), each audited."""

    def __init__(self, db, public_url="http://127.0.0.1:8000", destination_ttl_hours=24.0):
        self.db = db
        self.public_url = public_url.rstrip("/")
        self.destination_ttl = datetime.timedelta(hours=destination_ttl_hours)

    def become_partner(self, account_id):
        """(partner, created)."""
        return partner_store.become_partner(self.db, account_id)

    def partner_overview(self, account_id):
        return partner_store.partner_overview(self.db, account_id)

    def count_click(self, code):
        return partner_store.count_click(self.db, code)

    def request_withdrawal(self, account_id, amount, currency, to_account, request_id=None):
        amount, to_account = _checked(partner_rules.withdrawal_request, amount, currency, to_account)
        raw = account_rules.new_link_token()
        link = (raw, "%s/account/destination?token=%s" % (self.public_url, raw), self.destination_ttl)
        return partner_store.request_withdrawal(self.db, account_id, amount, currency, to_account, request_id,
                                                destination_link=link)

    def confirm_destination(self, token):
        _checked(account_rules.check_link_token, token)
        return partner_store.confirm_destination(self.db, token)

    def list_partners(self, filters=None):
        return partner_store.list_partners(self.db, filters or {})

    def get_partner(self, partner_id):
        return partner_store.get_partner(self.db, partner_id)

    def update_partner(self, partner_id, changes, actor):
        values = _checked(partner_rules.partner_changes, changes)
        return partner_store.update_partner(self.db, partner_id, values, actor)

    def get_commission(self):
        return partner_store.get_commission(self.db)

    def update_commission(self, changes, actor, expected_version=None):
        values = _checked(partner_rules.commission_changes, changes)
        return partner_store.update_commission(self.db, values, actor, expected_version)

    def set_direction_commission(self, direction_id, rule, actor):
        return partner_store.set_direction_commission(self.db, direction_id, rule, actor)

    def list_withdrawals(self, filters=None):
        return partner_store.list_withdrawals(self.db, filters or {})

    def decide_withdrawal(self, withdrawal_id, action, actor, method=None, reference=None, reason=None):
        reference = (reference or "").strip()[:200] or None
        reason = (reason or "").strip()[:2000] or None
        return partner_store.decide_withdrawal(self.db, withdrawal_id, action, actor, method, reference, reason)

    def apply_withdrawal_payout(self, event_id, consumer, data, sent):
        return partner_store.apply_withdrawal_payout(self.db, event_id, consumer, data, sent)

    def withdrawal_payout_result(self, payload, consumer, sent):
        envelope, data = payments.load(payments.WithdrawalPayoutResultSchema, payload)
        return self.apply_withdrawal_payout(envelope["event_id"], consumer, data, sent)


class StuckWork:
    """Money work of orders that should have moved on and has not (docs/architecture.md, "Stuck work"): partner
    withdrawals approved for a payout and never answered. Found by a timer's check (the gauge
    `exchanger_stuck_work{kind}`, and `stuck_work_found` once per item while it stays stuck), listed for operators,
    repaired by them (audited in orders.audit_log, refusals too)."""

    KINDS = stuck_contract.kinds_of("orders")

    def __init__(self, db, after_seconds=600.0):
        self.db = db
        self.after_seconds = float(after_seconds)

    def find(self, withdrawal_id=None):
        rows = stuck_store.withdrawal_candidates(self.db, self.after_seconds, withdrawal_id=withdrawal_id)
        return stuck_rules.stuck_withdrawals(rows, self.after_seconds)

    def check(self):
        items = self.find()
        counts = stuck_contract.counts(items, self.KINDS)
        for kind, n in counts.items():
            metrics.STUCK_WORK.labels(kind).set(n)
        announced = stuck_store.remember_and_announce(self.db, self.KINDS, items, counts)
        return {"counts": counts, "announced": len(announced)}

    def list(self):
        return self.find()

    def repair(self, kind, item_id, action, actor):
        actor = errors.staff_actor(actor)
        item_id = int(item_id)
        detail = {"kind": kind, "id": item_id, "action": action}
        if kind not in self.KINDS or action not in stuck_contract.repairs(kind):
            stuck_store.audit_repair(self.db, actor, dict(detail, reason="no such repair"), outcome="rejected")
            raise errors.ValidationFailed("no repair %r for %r here" % (action, kind), {"action": ["no such repair"]})
        item = next(iter(self.find(withdrawal_id=item_id)), None)
        if item is None:
            stuck_store.audit_repair(self.db, actor, dict(detail, reason="not stuck"), outcome="rejected")
            raise errors.Conflict("%s %s is not stuck (any more)" % (kind, item_id), {"id": ["not stuck"]})
        # resend_request: the only repair of withdrawal_not_paid
        withdrawal = stuck_store.resend_payout_request(self.db, item_id, actor,
                                                       dict(detail, age_seconds=item["age_seconds"]))
        if withdrawal is None:
            raise errors.Conflict("withdrawal %s was settled meanwhile" % item_id, {"id": ["not stuck"]})
        return {"kind": kind, "id": item_id, "action": action, "withdrawal": withdrawal}


def _number(cfg, key, default):
    value = cfg.get(key)
    return float(value) if value not in (None, "") else default


class MonitorExport:
    """The monitors' rates file: rendered again when the catalogue or a reserve changed (directions_changed, and a
    timer for what open orders hold), read by the gateway by version, emptied by the maintenance switch."""

    def __init__(self, db):
        self.db = db

    def refresh(self, payloads=None):
        """Render the file again. Idempotent (a render reads the catalogue as it is now), so a batch of
        directions_changed events, repeated or not, needs one render and no inbox."""
        return monitor_store.refresh(self.db)

    def document(self, known_version=None):
        if known_version is not None and (isinstance(known_version, bool) or not isinstance(known_version, int)):
            raise errors.ValidationFailed("invalid version", {"known_version": ["must be an integer"]})
        return monitor_store.document(self.db, known_version)

    def state(self):
        return monitor_store.state(self.db)

    def set_maintenance(self, on, actor):
        if not isinstance(on, bool):
            raise errors.ValidationFailed("invalid switch", {"maintenance": ["must be true or false"]})
        return monitor_store.set_maintenance(self.db, on, actor)


class MonitorExportProvider(ServiceDependency):
    def build(self, db, cfg):
        return MonitorExport(db)


class OrdersProvider(ServiceDependency):
    def build(self, db, cfg):
        return Orders(db)


class CatalogueProvider(ServiceDependency):
    def build(self, db, cfg):
        return Catalogue(db)


def _public_url(cfg):
    # Links in letters point at the gateway's public address (the notifier's letters use the same PUBLIC_URL).
    return cfg.get("PUBLIC_URL") or "http://127.0.0.1:%s" % (cfg.get("GATEWAY_PORT") or 8000)


class AccountsProvider(ServiceDependency):
    def build(self, db, cfg):
        policy = account_rules.SignInPolicy(
            free=_number(cfg, "ACCOUNT_SIGNIN_FREE_FAILURES", 5),
            base_seconds=_number(cfg, "ACCOUNT_SIGNIN_DELAY_SECONDS", 2.0),
            max_seconds=_number(cfg, "ACCOUNT_SIGNIN_MAX_DELAY_SECONDS", 900.0))
        return Accounts(db, _public_url(cfg), _number(cfg, "ACCOUNT_CONFIRM_TTL_HOURS", 48.0),
                        _number(cfg, "ACCOUNT_RESET_TTL_HOURS", 1.0), policy, cfg.get("TOTP_ISSUER") or "Exchanger")


class PartnersProvider(ServiceDependency):
    def build(self, db, cfg):
        return Partners(db, _public_url(cfg), _number(cfg, "ACCOUNT_DESTINATION_TTL_HOURS", 24.0))


class StuckWorkProvider(ServiceDependency):
    def build(self, db, cfg):
        return StuckWork(db, _number(cfg, "STUCK_AFTER_SECONDS", 600.0))
