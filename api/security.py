"""Password hashing (argon2), bearer tokens (JWT) and random credentials."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import uuid
from dataclasses import dataclass

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

ALGORITHM = "HS256"
API_KEY_PREFIX = "drk_"
NODE_CREDENTIAL_PREFIX = "drn_"
ENROLLMENT_TOKEN_PREFIX = "dre_"


def new_secret(prefix: str) -> str:
    """A 256-bit random credential with a prefix that tells what it is."""
    return prefix + secrets.token_urlsafe(32)


def digest(secret: str) -> str:
    """SHA-256 of a random credential; what the database keeps (no slow hash needed)."""
    return hashlib.sha256(secret.encode()).hexdigest()


class Passwords:
    def __init__(self, time_cost: int, memory_kib: int) -> None:
        self._hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_kib)
        self._dummy = self._hasher.hash(secrets.token_urlsafe(16))

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify(self, stored_hash: str | None, password: str) -> bool:
        """True if it matches; an unknown user costs the same time as a wrong password."""
        try:
            return (
                self._hasher.verify(stored_hash or self._dummy, password)
                and stored_hash is not None
            )
        except (VerificationError, InvalidHashError):
            return False


@dataclass(frozen=True)
class Tokens:
    key: str
    lifetime_s: int

    def issue(self, user_id: uuid.UUID, now: dt.datetime) -> str:
        claims = {
            "sub": str(user_id),
            "iat": int(now.timestamp()),
            "exp": int(now.timestamp()) + self.lifetime_s,
            "typ": "access",
        }
        return jwt.encode(claims, self.key, algorithm=ALGORITHM)

    def subject(self, token: str) -> uuid.UUID | None:
        """The user id in a valid, unexpired access token; None otherwise."""
        try:
            claims = jwt.decode(
                token, self.key, algorithms=[ALGORITHM], options={"require": ["exp", "sub"]}
            )
            if claims.get("typ") != "access":
                return None
            return uuid.UUID(str(claims["sub"]))
        except (jwt.PyJWTError, ValueError):
            return None
