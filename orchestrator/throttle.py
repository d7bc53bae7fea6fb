"""Failed log-ins counted per account and per client address, so that guessing passwords
meets a wall: after ``max_failures`` failures in a window, further tries of that account (or
from that address) are refused without checking the password until the window ends.

A window opens with its first failure and lasts ``window_s``; the count is forgotten when it
ends (or, for an account, when its right password is given). With Redis
(``DRIFT_REDIS_URL``) the counts are shared by every coordinator replica (an ``INCR`` on a key
that expires with the window), so spreading guesses over replicas gains nothing; without it
they are kept in this process.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Protocol

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Verdict:
    """Whether a try may go ahead; if not, how long until it may (whole seconds, >= 1)."""

    allowed: bool
    retry_after_s: int = 0
    #: what is throttled: "account" or "address"
    reason: str = ""


class LoginThrottle(Protocol):
    def check(self, account: str, address: str) -> Verdict: ...

    def failed(self, account: str, address: str) -> tuple[int, int]:
        """Count a failure; the counts of the account and the address in their windows."""
        ...

    def succeeded(self, account: str) -> None: ...


def _account_key(account: str) -> str:
    return "acct:" + account[:128]


def _address_key(address: str) -> str:
    return "addr:" + address[:64]


class LocalThrottle:
    """Counts in this process (one coordinator). Bounded: the oldest windows go first."""

    MAX_KEYS = 100_000

    def __init__(self, max_failures: int, max_failures_per_address: int, window_s: float):
        self.limits = {"acct": max_failures, "addr": max_failures_per_address}
        self.window_s = window_s
        self._windows: OrderedDict[str, tuple[float, int]] = OrderedDict()
        self._lock = threading.Lock()

    def _get(self, key: str, now: float) -> tuple[float, int] | None:
        window = self._windows.get(key)
        if window is not None and window[0] <= now:
            del self._windows[key]
            return None
        return window

    def check(self, account: str, address: str) -> Verdict:
        now = time.monotonic()
        with self._lock:
            for key, reason in (
                (_account_key(account), "account"),
                (_address_key(address), "address"),
            ):
                window = self._get(key, now)
                if window is not None and window[1] >= self.limits[key[:4]]:
                    return Verdict(False, max(1, math.ceil(window[0] - now)), reason)
        return Verdict(True)

    def failed(self, account: str, address: str) -> tuple[int, int]:
        now = time.monotonic()
        counts = []
        with self._lock:
            for key in (_account_key(account), _address_key(address)):
                window = self._get(key, now)
                end, count = window if window is not None else (now + self.window_s, 0)
                self._windows[key] = (end, count + 1)
                self._windows.move_to_end(key)
                counts.append(count + 1)
            while len(self._windows) > self.MAX_KEYS:
                self._windows.popitem(last=False)
        return counts[0], counts[1]

    def succeeded(self, account: str) -> None:
        with self._lock:
            self._windows.pop(_account_key(account), None)


#: count a failure: INCR, and open the window with the first one
_FAIL = """
local n = redis.call('incr', KEYS[1])
if n == 1 then redis.call('pexpire', KEYS[1], ARGV[1]) end
return n
"""


class RedisThrottle:
    """Counts in Redis, shared by every replica on it. Should Redis not answer, the counts
    of this process stand in (the log says so)."""

    PREFIX = "drift:login-failures:"

    def __init__(
        self, url: str, max_failures: int, max_failures_per_address: int, window_s: float
    ) -> None:
        import redis

        self._redis = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self._fail = self._redis.register_script(_FAIL)
        self.limits = {"acct": max_failures, "addr": max_failures_per_address}
        self.window_s = window_s
        self._fallback = LocalThrottle(max_failures, max_failures_per_address, window_s)

    def check(self, account: str, address: str) -> Verdict:
        keys = [(_account_key(account), "account"), (_address_key(address), "address")]
        try:
            pipe = self._redis.pipeline(transaction=False)
            for key, _ in keys:
                pipe.get(self.PREFIX + key)
                pipe.pttl(self.PREFIX + key)
            replies = pipe.execute()
        except Exception as exc:
            log.warning("login throttle: Redis unavailable (%s); counting in this process", exc)
            return self._fallback.check(account, address)
        for i, (key, reason) in enumerate(keys):
            count, ttl_ms = replies[2 * i], replies[2 * i + 1]
            if count is not None and int(count) >= self.limits[key[:4]]:
                return Verdict(False, max(1, math.ceil(max(ttl_ms, 0) / 1000)), reason)
        return Verdict(True)

    def failed(self, account: str, address: str) -> tuple[int, int]:
        window_ms = max(1, int(self.window_s * 1000))
        try:
            return (
                int(self._fail(keys=[self.PREFIX + _account_key(account)], args=[window_ms])),
                int(self._fail(keys=[self.PREFIX + _address_key(address)], args=[window_ms])),
            )
        except Exception as exc:
            log.warning("login throttle: Redis unavailable (%s); counting in this process", exc)
            return self._fallback.failed(account, address)

    def succeeded(self, account: str) -> None:
        try:
            self._redis.delete(self.PREFIX + _account_key(account))
        except Exception as exc:
            log.warning("login throttle: Redis unavailable (%s)", exc)
        self._fallback.succeeded(account)


def make_throttle(
    redis_url: str | None, max_failures: int, max_failures_per_address: int, window_s: float
) -> LoginThrottle:
    if redis_url:
        return RedisThrottle(redis_url, max_failures, max_failures_per_address, window_s)
    return LocalThrottle(max_failures, max_failures_per_address, window_s)
