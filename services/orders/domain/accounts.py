"""Pure rules of customer accounts (docs/partners.md): what an e-mail address, a password and a one-time token
must look like, and when a session is over. No I/O here (hashing passwords is in services/orders/passwords.py)."""
import hashlib
import hmac
import re
import secrets

import pyotp
from zxcvbn import zxcvbn

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


# zxcvbn (offline: its lists of common passwords, words and names ship with the package) scores 0-4; below this
# the password is among the first million guesses an attacker tries ("password1234", "qwertyuiop", "1q2w3e4r5t").
PASSWORD_MIN_SCORE = 2
PASSWORD_SCORED_CHARS = 72   # zxcvbn refuses longer input (its time grows with the length); the first 72 decide


def check_password(password, user_inputs=()):
    """RuleError naming the field `password` unless it is long enough and not a common or guessable one
    (`user_inputs`: the e-mail address and its parts, which a password must not be built from)."""
    if not isinstance(password, str) or len(password) < PASSWORD_MIN:
        raise RuleError("weak password", {"password": ["at least %d characters" % PASSWORD_MIN]})
    if len(password) > PASSWORD_MAX:
        raise RuleError("password too long", {"password": ["at most %d characters" % PASSWORD_MAX]})
    if password.strip() == "" or len(set(password)) < 4:
        raise RuleError("weak password", {"password": ["too simple"]})
    inputs = [str(i) for i in user_inputs if i]
    for item in list(inputs):
        inputs.extend(part for part in re.split(r"[@.+_-]", item) if len(part) >= 3)
    if zxcvbn(password[:PASSWORD_SCORED_CHARS], user_inputs=inputs)["score"] < PASSWORD_MIN_SCORE:
        raise RuleError("common password", {"password": [
            "too common or too easy to guess: it is among the passwords attackers try first"]})


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


# -- sign-in throttling (per e-mail and client address) ------------------------------------------------------------
class SignInPolicy:
    """`free` failures in a row cost nothing; each further one blocks the next attempt from that address for that
    e-mail for `base_seconds` * 2^(n-1), at most `max_seconds`. A row unused for `forget_seconds` starts over."""

    def __init__(self, free=5, base_seconds=2.0, max_seconds=900.0, forget_seconds=86400.0):
        self.free = int(free)
        self.base_seconds = float(base_seconds)
        self.max_seconds = float(max_seconds)
        self.forget_seconds = float(forget_seconds)

    def delay_after(self, failures):
        """Seconds the failure number `failures` blocks the next attempt for."""
        over = int(failures) - self.free
        if over <= 0:
            return 0.0
        return min(self.max_seconds, self.base_seconds * 2 ** min(over - 1, 30))


def throttle_key(email):
    """The e-mail as typed at sign-in, folded: unknown addresses are throttled alike (no enumeration)."""
    return sign_in_email(email).lower()[:EMAIL_MAX]


# -- the second factor (TOTP, RFC 6238, as staff have: gateway/security/totp.py) ----------------------------------
def new_totp_secret():
    return pyotp.random_base32()


def totp_uri(secret, email, issuer):
    return pyotp.TOTP(secret).provisioning_uri(name=email, issuer_name=issuer)


def match_totp(secret, code, last_step, now_seconds):
    """The 30-second step `code` belongs to (now, one step either side for clock drift), or None. A step at or
    before `last_step` is never accepted again: a code works once."""
    code = (code or "").strip().replace(" ", "") if isinstance(code, str) else ""
    if len(code) != 6 or not code.isdigit():
        return None
    totp = pyotp.TOTP(secret)
    now_step = int(now_seconds) // totp.interval
    for step in (now_step, now_step - 1, now_step + 1):
        if step > last_step and hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None
