"""Log in: the OAuth2 password flow, answered with a JWT bearer token.

Failed log-ins are counted per account and per client address
(:mod:`drift.orchestrator.throttle`): past ``login_max_failures`` in ``login_window_s`` the
account (or address) gets 429 with ``Retry-After`` until the window ends, without its
password being checked. Every failure and refusal is a line in the ``drift.security`` log
(user and address, never the password). The password is checked (argon2) after the user's
row has been read and its transaction closed, in a pool of its own
(:class:`~drift.api.security.PasswordChecks`), so log-ins never hold the database.
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.security import OAuth2PasswordRequestForm
from starlette.concurrency import run_in_threadpool

from drift.api.deps import RuntimeDep, field_error, utcnow
from drift.api.schemas import Token
from drift.api.security import MAX_PASSWORD_CHARS, Busy
from drift.orchestrator import account_service as accounts

router = APIRouter(prefix="/auth", tags=["auth"])

security_log = logging.getLogger("drift.security")


def shown(username: str) -> str:
    """A username as the log shows it: quoted and escaped (no forged log lines), cut short."""
    return repr(username if len(username) <= 64 else username[:64] + "...")


@router.post(
    "/token",
    response_model=Token,
    responses={
        401: {"description": "wrong credentials"},
        429: {"description": "too many failed log-ins of this account or from this address"},
        503: {"description": "too many log-ins at once"},
    },
)
async def login(
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    request: Request,
    runtime: RuntimeDep,
) -> Token:
    username = form.username
    address = request.client.host if request.client else "unknown"
    if len(form.password) > MAX_PASSWORD_CHARS:
        # refused before any hashing: argon2 reads every byte of what it is given
        raise field_error(
            ("body", "password"), f"longer than the {MAX_PASSWORD_CHARS} characters taken"
        )
    verdict = await run_in_threadpool(runtime.throttle.check, username, address)
    if not verdict.allowed:
        security_log.warning(
            "log-in refused: user %s from %s: too many failures of this %s; retry in %d s",
            shown(username),
            address,
            verdict.reason,
            verdict.retry_after_s,
        )
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            "too many failed log-ins; try again later",
            headers={"Retry-After": str(verdict.retry_after_s)},
        )
    record = await run_in_threadpool(accounts.login_record, runtime.read_sessions, username)
    try:
        ok = await runtime.password_checks.verify(
            record.password_hash if record else None, form.password
        )
    except Busy:
        security_log.warning(
            "log-in refused: user %s from %s: too many at once", shown(username), address
        )
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            "too many log-ins at once; try again shortly",
            headers={"Retry-After": "1"},
        ) from None
    if record is None or not ok or record.disabled:
        account_failures, address_failures = await run_in_threadpool(
            runtime.throttle.failed, username, address
        )
        why = "no such user" if record is None else "disabled" if ok else "wrong password"
        security_log.warning(
            "log-in failed: user %s from %s (%s); %d failures of this account and %d from "
            "this address in the current window",
            shown(username),
            address,
            why,
            account_failures,
            address_failures,
        )
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "wrong username or password",
            headers={"WWW-Authenticate": "Bearer"},
        )
    await run_in_threadpool(runtime.throttle.succeeded, username)
    security_log.info("log-in: user %s from %s", shown(username), address)
    return Token(
        access_token=runtime.tokens.issue(record.id, record.credentials_version, utcnow()),
        expires_in=runtime.tokens.lifetime_s,
    )
