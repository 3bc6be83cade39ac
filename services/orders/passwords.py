"""Customer passwords: argon2 hashes, computed off the eventlet hub."""
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from eventlet import tpool

hasher = PasswordHasher()
_dummy_hash = None


def hash_password(password):
    # argon2 costs ~50 ms of CPU: in a real thread, so the eventlet hub keeps serving other workers meanwhile.
    return tpool.execute(hasher.hash, password)


def verify_password(password_hash, password):
    try:
        return tpool.execute(hasher.verify, password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def dummy_hash():
    """A hash to verify against when the e-mail is unknown: the answer takes as long as for a real account."""
    global _dummy_hash
    if _dummy_hash is None:
        _dummy_hash = hash_password(secrets.token_hex(16))
    return _dummy_hash
