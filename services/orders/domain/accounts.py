"""Pure rules of customer accounts (docs/partners.md): what an e-mail address, a password and a one-time token
must look like, and when a session is over. No I/O here (hashing passwords is in services/orders/passwords.py)."""
import hashlib
import re
import secrets

from services.orders.domain import RuleError

EMAIL_RE = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}$")
EMAIL_MAX = 254
LANGUAGES = ("en", "ru")
PASSWORD_MIN = 10
PASSWORD_MAX = 256
TOUCH_AFTER_SECONDS = 30   # a session's last_seen_at is written at most this often, not on every request


def looks_like_email(email):
    return isinstance(email, str) and EMAIL_RE.match(email.strip()) is not None


def check_email(email):
    """The sign-up's address, stripped; RuleError unless it is an e-mail address of at most 254 characters."""
    email = (email or "").strip() if isinstance(email, str) else ""
    if len(email) > EMAIL_MAX or not EMAIL_RE.match(email):
        raise RuleError("invalid e-mail", {"email": ["must be an e-mail address"]})
    return email


def sign_in_email(email):
    """The address typed at sign-in, stripped ("" if it is not text: no account has it)."""
    return (email or "").strip() if isinstance(email, str) else ""


def check_language(language):
    if language not in LANGUAGES:
        raise RuleError("invalid language", {"language": ["en or ru"]})


def check_password(password):
    if not isinstance(password, str) or len(password) < PASSWORD_MIN:
        raise RuleError("weak password", {"password": ["at least %d characters" % PASSWORD_MIN]})
    if len(password) > PASSWORD_MAX:
        raise RuleError("password too long", {"password": ["at most %d characters" % PASSWORD_MAX]})
    if password.strip() == "" or len(set(password)) < 4:
        raise RuleError("weak password", {"password": ["too simple"]})


def new_link_token():
    """The raw token of a letter's one-time link; only its hash is stored."""
    return secrets.token_urlsafe(32)


def token_hash(raw):
    return hashlib.sha256(raw.encode()).hexdigest()


def check_link_token(raw):
    """A token from a link has the length new_link_token gives (anything else is not worth a query)."""
    if not isinstance(raw, str) or not 16 <= len(raw) <= 100:
        raise RuleError("invalid token", {"token": ["invalid or expired"]})


def session_state(expires_at, last_seen_at, now, idle_seconds=None):
    """'expired' (past its end), 'idle' (unused longer than idle_seconds: it ends now), 'stale' (live, its
    last_seen_at is worth writing) or 'live'."""
    if expires_at <= now:
        return "expired"
    unused = (now - last_seen_at).total_seconds()
    if idle_seconds and unused > float(idle_seconds):
        return "idle"
    return "stale" if unused > TOUCH_AFTER_SECONDS else "live"
