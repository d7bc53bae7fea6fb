"""Users and their API keys as a service: the queries and writes behind the users, API-key and
log-in routes (which only translate HTTP to these calls). Secrets come in already hashed."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from drift.orchestrator.states import Role
from drift.orchestrator.storage import ApiKey, User


class Conflict(Exception):
    """The change contradicts what is stored (the message says what)."""


def user_by_name(session: Session, username: str) -> User | None:
    return session.scalar(select(User).where(User.username == username))


@dataclass(frozen=True)
class LoginRecord:
    """What checking a log-in needs of a user, read in a transaction that has ended before
    the (slow) password check starts."""

    id: uuid.UUID
    password_hash: str
    disabled: bool
    credentials_version: int


#: a username longer than this cannot exist (the column's width)
MAX_USERNAME_CHARS = 64


def login_record(sessions: sessionmaker[Session], username: str) -> LoginRecord | None:
    """The user a log-in names, or None. Reads in a short read-only session of `sessions`
    (on SQLite one that takes no write lock) and closes it: the password is checked
    afterwards, outside any transaction."""
    if not username or len(username) > MAX_USERNAME_CHARS:
        return None
    with sessions() as session:
        row = session.execute(
            select(User.id, User.password_hash, User.disabled, User.credentials_version).where(
                User.username == username
            )
        ).first()
    return LoginRecord(*row) if row is not None else None


def list_users(session: Session) -> list[User]:
    return list(session.scalars(select(User).order_by(User.username)))


def create_user(
    session: Session,
    username: str,
    password_hash: str,
    role: Role,
    permissions: list[str],
    now: dt.datetime,
) -> User:
    """A new user, committed; :class:`Conflict` when the name is taken."""
    if session.scalar(select(User.id).where(User.username == username)) is not None:
        raise Conflict(f"username {username!r} is taken")
    user = User(
        username=username,
        password_hash=password_hash,
        role=role,
        permissions=sorted(set(permissions)),
        created_at=now,
    )
    session.add(user)
    session.commit()
    return user


def update_user(
    session: Session,
    user_id: uuid.UUID,
    by: User,
    *,
    role: Role | None = None,
    permissions: list[str] | None = None,
    disabled: bool | None = None,
    password_hash: str | None = None,
) -> User | None:
    """Change a user and commit; None when there is no such user. An admin cannot demote or
    disable itself (:class:`Conflict`). A new password, a disable or a new role bumps the
    user's credentials version, which revokes every bearer token issued before."""
    user = session.get(User, user_id)
    if user is None:
        return None
    if user.id == by.id and (disabled or (role and role != user.role)):
        raise Conflict("an admin cannot demote or disable itself")
    revoke = (
        password_hash is not None
        or (disabled and not user.disabled)
        or (role is not None and role != user.role)
    )
    if role is not None:
        user.role = role
    if permissions is not None:
        user.permissions = sorted(set(permissions))
    if disabled is not None:
        user.disabled = disabled
    if password_hash is not None:
        user.password_hash = password_hash
    if revoke:
        user.credentials_version = (user.credentials_version or 0) + 1
    session.commit()
    return user


def create_api_key(
    session: Session,
    user: User,
    name: str,
    key_hash: str,
    expires_at: dt.datetime | None,
    now: dt.datetime,
) -> ApiKey:
    key = ApiKey(
        user_id=user.id, name=name, key_hash=key_hash, created_at=now, expires_at=expires_at
    )
    session.add(key)
    session.commit()
    return key


def list_api_keys(session: Session, user_id: uuid.UUID) -> list[ApiKey]:
    return list(
        session.scalars(select(ApiKey).where(ApiKey.user_id == user_id).order_by(ApiKey.created_at))
    )


def list_all_api_keys(session: Session) -> list[tuple[ApiKey, str]]:
    """Every user's keys with their owners' names, by owner, then oldest first (for admins)."""
    rows = session.execute(
        select(ApiKey, User.username)
        .join(User, User.id == ApiKey.user_id)
        .order_by(User.username, ApiKey.created_at)
    ).all()
    return [(key, username) for key, username in rows]


def delete_api_key(session: Session, key_id: uuid.UUID, by: User) -> bool:
    """Delete a key of `by`'s (any key, for an admin) and commit; False when there is none."""
    key = session.get(ApiKey, key_id)
    if key is None or (key.user_id != by.id and by.role != Role.ADMIN):
        return False
    session.delete(key)
    session.commit()
    return True
