"""Password hashing (argon2), bearer tokens (JWT) and random credentials."""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime as dt
import hashlib
import os
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
#: the longest password taken (characters); a longer one is refused before any hashing
MAX_PASSWORD_CHARS = 256


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
        """True if it matches; an unknown user costs the same time as a wrong password.
        A password over :data:`MAX_PASSWORD_CHARS` never matches and is not hashed."""
        if len(password) > MAX_PASSWORD_CHARS:
            return False
        try:
            return (
                self._hasher.verify(stored_hash or self._dummy, password)
                and stored_hash is not None
            )
        except (VerificationError, InvalidHashError):
            return False


def _lower_priority(nice: int) -> None:
    """Run this thread (and the threads argon2 starts from it, which inherit it) at a lower
    CPU priority than the rest of the process: on a busy machine the event loop, and with it
    heartbeats and dispatch, goes first."""
    if nice <= 0:
        return
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)  # Linux: this thread
    except (OSError, AttributeError):
        pass


class Busy(Exception):
    """Too many password checks wait already; the caller should come back later."""


class PasswordChecks:
    """Password checks (argon2: a few hundred milliseconds of CPU and tens of MiB each) run
    in a pool of their own, `workers` at a time, never in a database transaction and never
    on the event loop or the request threads. At most `max_waiting` wait for their turn; one
    more is refused with :class:`Busy`, so a flood of log-ins costs a bounded amount of CPU
    and memory and leaves the rest of the coordinator (heartbeats, dispatch) its share."""

    def __init__(
        self, passwords: Passwords, workers: int, max_waiting: int, nice: int = 10
    ) -> None:
        self.passwords = passwords
        self.max_waiting = max_waiting
        self._pool = concurrent.futures.ThreadPoolExecutor(
            workers, thread_name_prefix="argon2", initializer=_lower_priority, initargs=(nice,)
        )
        self._workers = workers
        self._waiting = 0
        self._gate: asyncio.Semaphore | None = None

    async def verify(self, stored_hash: str | None, password: str) -> bool:
        if len(password) > MAX_PASSWORD_CHARS:
            return False
        if self._gate is None:
            self._gate = asyncio.Semaphore(self._workers)
        if self._waiting >= self.max_waiting:
            raise Busy()
        self._waiting += 1
        try:
            async with self._gate:
                loop = asyncio.get_running_loop()
                return await loop.run_in_executor(
                    self._pool, self.passwords.verify, stored_hash, password
                )
        finally:
            self._waiting -= 1

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


@dataclass(frozen=True)
class Tokens:
    key: str
    lifetime_s: int
    #: tokens already verified: token -> (user id, credentials version, expiry as UNIX time)
    _verified: OrderedDict = field(default_factory=OrderedDict, repr=False, compare=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)
    VERIFIED_MAX: ClassVar[int] = 4096

    def issue(self, user_id: uuid.UUID, credentials_version: int, now: dt.datetime) -> str:
        """A bearer token for the user as its credentials stand (``cv``): a later password
        change, disable or role change (which bumps the user's version) revokes it."""
        claims = {
            "sub": str(user_id),
            "cv": int(credentials_version),
            "iat": int(now.timestamp()),
            "exp": int(now.timestamp()) + self.lifetime_s,
            "typ": "access",
        }
        return jwt.encode(claims, self.key, algorithm=ALGORITHM)

    def subject(self, token: str) -> tuple[uuid.UUID, int] | None:
        """The user id and credentials version in a valid, unexpired access token; None
        otherwise. A token's signature is checked once; its expiry every time."""
        with self._lock:
            seen = self._verified.get(token)
        if seen is not None:
            return (seen[0], seen[1]) if time.time() < seen[2] else None
        try:
            claims = jwt.decode(
                token, self.key, algorithms=[ALGORITHM], options={"require": ["exp", "sub", "cv"]}
            )
            if claims.get("typ") != "access":
                return None
            user_id = uuid.UUID(str(claims["sub"]))
            version = claims["cv"]
            if not isinstance(version, int) or isinstance(version, bool):
                return None
        except (jwt.PyJWTError, ValueError):
            return None
        with self._lock:
            self._verified[token] = (user_id, version, float(claims["exp"]))
            while len(self._verified) > self.VERIFIED_MAX:
                self._verified.popitem(last=False)
        return user_id, version
