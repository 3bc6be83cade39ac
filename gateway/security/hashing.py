"""How staff secrets are kept: passwords as argon2 hashes, bearer tokens and session ids as their SHA-256 only
(a copy of the tables does not let anyone sign in)."""
import hashlib
import secrets

from argon2 import PasswordHasher

hasher = PasswordHasher()
# Verifying against a dummy hash for unknown users keeps the response time the same (no user enumeration).
DUMMY_HASH = hasher.hash(secrets.token_hex(16))


def check_password(password):
    if not isinstance(password, str) or len(password) < 12:
        raise ValueError("password must have at least 12 characters")
    if len(password) > 256:
        raise ValueError("password must have at most 256 characters")


def sha256_hex(raw):
    """The stored form of a random token or session id."""
    return hashlib.sha256(raw.encode()).hexdigest()
