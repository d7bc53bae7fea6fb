"""API keys: a user makes keys that act as that user (shown once, stored hashed), optionally
expiring (``expires_at``: refused from then on); admins list every user's keys and may delete
any."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, HTTPException, status

from drift.api.deps import (
    Admin,
    CurrentUser,
    ReadSessionDep,
    RuntimeDep,
    SessionDep,
    field_error,
    utcnow,
)
from drift.api.schemas import ApiKeyCreate, ApiKeyCreated, ApiKeyOwned, ApiKeyPublic
from drift.api.security import API_KEY_PREFIX, digest, new_secret
from drift.orchestrator import account_service as accounts

router = APIRouter(prefix="/api-keys", tags=["api keys"])


@router.post("", response_model=ApiKeyCreated, status_code=status.HTTP_201_CREATED)
def create_key(body: ApiKeyCreate, user: CurrentUser, session: SessionDep) -> ApiKeyCreated:
    now = utcnow()
    if body.expires_at is not None and body.expires_at <= now:
        raise field_error(("body", "expires_at"), "expires_at is in the past")
    secret = new_secret(API_KEY_PREFIX)
    key = accounts.create_api_key(session, user, body.name, digest(secret), body.expires_at, now)
    return ApiKeyCreated(
        id=key.id, name=key.name, created_at=key.created_at, expires_at=key.expires_at, key=secret
    )


@router.get("", response_model=list[ApiKeyPublic])
def list_keys(user: CurrentUser, session: ReadSessionDep):
    return accounts.list_api_keys(session, user.id)


@router.get("/all", response_model=list[ApiKeyOwned])
def list_every_key(_: Admin, session: ReadSessionDep) -> list[ApiKeyOwned]:
    """Every user's API keys (admins): who holds which, and which have expired."""
    now = utcnow()
    return [
        ApiKeyOwned(
            id=key.id,
            name=key.name,
            created_at=key.created_at,
            expires_at=key.expires_at,
            user_id=key.user_id,
            username=username,
            expired=key.expires_at is not None and key.expires_at <= now,
        )
        for key, username in accounts.list_all_api_keys(session)
    ]


@router.delete("/{key_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_key(
    key_id: uuid.UUID, user: CurrentUser, runtime: RuntimeDep, session: SessionDep
) -> None:
    if not accounts.delete_api_key(session, key_id, user):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such API key")
    runtime.principals.clear()  # refused here at once (other replicas: within auth_cache_s)
