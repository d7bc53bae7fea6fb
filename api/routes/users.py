"""Users: who am I, and (admin) create, list and change users."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, HTTPException, status
from sqlalchemy import select

from drift.api.deps import Admin, CurrentUser, ReadSessionDep, RuntimeDep, SessionDep, utcnow
from drift.api.schemas import UserCreate, UserPublic, UserUpdate
from drift.orchestrator.storage import User

router = APIRouter(prefix="/users", tags=["users"])


@router.get("/me", response_model=UserPublic)
def me(user: CurrentUser) -> User:
    return user


@router.get("", response_model=list[UserPublic])
def list_users(_: Admin, session: ReadSessionDep) -> list[User]:
    return list(session.scalars(select(User).order_by(User.username)))


@router.post("", response_model=UserPublic, status_code=status.HTTP_201_CREATED)
def create_user(body: UserCreate, _: Admin, runtime: RuntimeDep, session: SessionDep) -> User:
    if session.scalar(select(User.id).where(User.username == body.username)) is not None:
        raise HTTPException(status.HTTP_409_CONFLICT, f"username {body.username!r} is taken")
    user = User(
        username=body.username,
        password_hash=runtime.passwords.hash(body.password),
        role=body.role,
        permissions=sorted(set(body.permissions)),
        created_at=utcnow(),
    )
    session.add(user)
    session.commit()
    return user


@router.patch("/{user_id}", response_model=UserPublic)
def update_user(
    user_id: uuid.UUID, body: UserUpdate, admin: Admin, runtime: RuntimeDep, session: SessionDep
) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such user")
    if user.id == admin.id and (body.disabled or (body.role and body.role != user.role)):
        raise HTTPException(status.HTTP_409_CONFLICT, "an admin cannot demote or disable itself")
    if body.role is not None:
        user.role = body.role
    if body.permissions is not None:
        user.permissions = sorted(set(body.permissions))
    if body.disabled is not None:
        user.disabled = body.disabled
    if body.password is not None:
        user.password_hash = runtime.passwords.hash(body.password)
    session.commit()
    runtime.principals.clear()  # takes effect here at once (other replicas: auth_cache_s)
    return user
