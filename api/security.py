"""Password hashing (argon2), bearer tokens (JWT) and random credentials."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import ClassVar

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
    #: tokens already verified: token -> (user id, expiry as a UNIX time)
    _verified: OrderedDict = field(default_factory=OrderedDict, repr=False, compare=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)
    VERIFIED_MAX: ClassVar[int] = 4096

    def issue(self, user_id: uuid.UUID, now: dt.datetime) -> str:
        claims = {
            "sub": str(user_id),
            "iat": int(now.timestamp()),
            "exp": int(now.timestamp()) + self.lifetime_s,
            "typ": "access",
        }
        return jwt.encode(claims, self.key, algorithm=ALGORITHM)

    def subject(self, token: str) -> uuid.UUID | None:
        """The user id in a valid, unexpired access token; None otherwise. A token's
        signature is checked once; its expiry every time."""
        with self._lock:
            seen = self._verified.get(token)
        if seen is not None:
            return seen[0] if time.time() < seen[1] else None
        try:
            claims = jwt.decode(
                token, self.key, algorithms=[ALGORITHM], options={"require": ["exp", "sub"]}
            )
            if claims.get("typ") != "access":
                return None
            user_id = uuid.UUID(str(claims["sub"]))
        except (jwt.PyJWTError, ValueError):
            return None
        with self._lock:
            self._verified[token] = (user_id, float(claims["exp"]))
            while len(self._verified) > self.VERIFIED_MAX:
                self._verified.popitem(last=False)
        return user_id
