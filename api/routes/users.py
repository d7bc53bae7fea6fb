"""Users: who am I, and (admin) create, list and change users (drift.orchestrator.account_service
does the work)."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, HTTPException, status

from drift.api.deps import Admin, CurrentUser, ReadSessionDep, RuntimeDep, SessionDep, utcnow
from drift.api.schemas import UserCreate, UserPublic, UserUpdate
from drift.orchestrator import account_service as accounts

router = APIRouter(prefix="/users", tags=["users"])


@router.get("/me", response_model=UserPublic)
def me(user: CurrentUser):
    return user


@router.get("", response_model=list[UserPublic])
def list_users(_: Admin, session: ReadSessionDep):
    return accounts.list_users(session)


@router.post("", response_model=UserPublic, status_code=status.HTTP_201_CREATED)
def create_user(body: UserCreate, _: Admin, runtime: RuntimeDep, session: SessionDep):
    try:
        return accounts.create_user(
            session,
            body.username,
            runtime.passwords.hash(body.password),
            body.role,
            body.permissions,
            utcnow(),
        )
    except accounts.Conflict as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None


@router.patch("/{user_id}", response_model=UserPublic)
def update_user(
    user_id: uuid.UUID, body: UserUpdate, admin: Admin, runtime: RuntimeDep, session: SessionDep
):
    try:
        user = accounts.update_user(
            session,
            user_id,
            admin,
            role=body.role,
            permissions=body.permissions,
            disabled=body.disabled,
            password_hash=None if body.password is None else runtime.passwords.hash(body.password),
        )
    except accounts.Conflict as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    if user is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such user")
    runtime.principals.clear()  # takes effect here at once (other replicas: auth_cache_s)
    return user
