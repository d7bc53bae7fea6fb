"""API keys: a user makes keys that act as that user (shown once, stored hashed)."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, HTTPException, status
from sqlalchemy import select

from drift.api.deps import (
    CurrentUser,
    ReadSessionDep,
    RuntimeDep,
    SessionDep,
    field_error,
    has_role,
    utcnow,
)
from drift.api.schemas import ApiKeyCreate, ApiKeyCreated, ApiKeyPublic
from drift.api.security import API_KEY_PREFIX, digest, new_secret
from drift.orchestrator.states import Role
from drift.orchestrator.storage import ApiKey

router = APIRouter(prefix="/api-keys", tags=["api keys"])


@router.post("", response_model=ApiKeyCreated, status_code=status.HTTP_201_CREATED)
def create_key(body: ApiKeyCreate, user: CurrentUser, session: SessionDep) -> ApiKeyCreated:
    now = utcnow()
    if body.expires_at is not None and body.expires_at <= now:
        raise field_error(("body", "expires_at"), "expires_at is in the past")
    secret = new_secret(API_KEY_PREFIX)
    key = ApiKey(
        user_id=user.id,
        name=body.name,
        key_hash=digest(secret),
        created_at=now,
        expires_at=body.expires_at,
    )
    session.add(key)
    session.commit()
    return ApiKeyCreated(
        id=key.id, name=key.name, created_at=key.created_at, expires_at=key.expires_at, key=secret
    )


@router.get("", response_model=list[ApiKeyPublic])
def list_keys(user: CurrentUser, session: ReadSessionDep) -> list[ApiKey]:
    return list(
        session.scalars(select(ApiKey).where(ApiKey.user_id == user.id).order_by(ApiKey.created_at))
    )


@router.delete("/{key_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_key(
    key_id: uuid.UUID, user: CurrentUser, runtime: RuntimeDep, session: SessionDep
) -> None:
    key = session.get(ApiKey, key_id)
    if key is None or (key.user_id != user.id and not has_role(user, Role.ADMIN)):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such API key")
    session.delete(key)
    session.commit()
    runtime.principals.clear()  # refused here at once (other replicas: within auth_cache_s)
