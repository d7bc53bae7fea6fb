"""Log in: the OAuth2 password flow, answered with a JWT bearer token."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, status
from fastapi.security import OAuth2PasswordRequestForm

from drift.api.deps import RuntimeDep, SessionDep, utcnow
from drift.api.schemas import Token
from drift.orchestrator.account_service import user_by_name

router = APIRouter(prefix="/auth", tags=["auth"])


@router.post("/token", response_model=Token, responses={401: {"description": "wrong credentials"}})
def login(
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    runtime: RuntimeDep,
    session: SessionDep,
) -> Token:
    user = user_by_name(session, form.username)
    ok = runtime.passwords.verify(user.password_hash if user else None, form.password)
    if user is None or not ok or user.disabled:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "wrong username or password",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return Token(
        access_token=runtime.tokens.issue(user.id, utcnow()),
        expires_in=runtime.tokens.lifetime_s,
    )
