"""FastAPI dependencies: the session, who is calling, and what they may do."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Iterator
from typing import Annotated

from drift.api.runtime import Runtime
from drift.api.security import digest
from drift.orchestrator.states import Role
from drift.orchestrator.storage import ApiKey, Node, User
from fastapi import Depends, HTTPException, Path, Request, Security, status
from fastapi.security import APIKeyHeader, OAuth2PasswordBearer
from sqlalchemy import select
from sqlalchemy.orm import Session

oauth2 = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token", auto_error=False)
api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="a user's API key")
node_token_header = APIKeyHeader(
    name="X-Node-Token", auto_error=False, description="a node's credential from enrollment"
)

ROLE_RANK = {Role.VIEWER: 0, Role.OPERATOR: 1, Role.ADMIN: 2}


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def get_runtime(request: Request) -> Runtime:
    return request.app.state.runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def get_session(runtime: RuntimeDep) -> Iterator[Session]:
    """A session per request; handlers commit what they change, the rest is rolled back."""
    with runtime.sessions() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


def field_error(loc: tuple[str | int, ...], message: str) -> HTTPException:
    """A 422 shaped like FastAPI's own validation errors, naming the field."""
    return HTTPException(
        status.HTTP_422_UNPROCESSABLE_CONTENT,
        [{"loc": list(loc), "msg": message, "type": "value_error"}],
    )


def _unauthorized(detail: str = "not authenticated") -> HTTPException:
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED, detail, headers={"WWW-Authenticate": "Bearer"}
    )


def current_user(
    runtime: RuntimeDep,
    session: SessionDep,
    token: Annotated[str | None, Security(oauth2)],
    api_key: Annotated[str | None, Security(api_key_header)],
) -> User:
    """The user behind a bearer token (from /auth/token) or an API key; 401 otherwise."""
    user: User | None = None
    if token:
        user_id = runtime.tokens.subject(token)
        if user_id is None:
            raise _unauthorized("invalid or expired token")
        user = session.get(User, user_id)
    elif api_key:
        key = session.scalar(select(ApiKey).where(ApiKey.key_hash == digest(api_key)))
        now = utcnow()
        if key is None or (key.expires_at is not None and key.expires_at <= now):
            raise _unauthorized("invalid or expired API key")
        user = session.get(User, key.user_id)
    else:
        raise _unauthorized()
    if user is None or user.disabled:
        raise _unauthorized("user unknown or disabled")
    return user


CurrentUser = Annotated[User, Depends(current_user)]


def has_role(user: User, role: Role) -> bool:
    return ROLE_RANK[Role(user.role)] >= ROLE_RANK[role]


def require(role: Role) -> Callable[[User], User]:
    def check(user: CurrentUser) -> User:
        if not has_role(user, role):
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"needs the {role} role")
        return user

    return check


Viewer = Annotated[User, Depends(require(Role.VIEWER))]
Operator = Annotated[User, Depends(require(Role.OPERATOR))]
Admin = Annotated[User, Depends(require(Role.ADMIN))]


def current_node(
    session: SessionDep,
    node_id: Annotated[uuid.UUID, Path(description="the node's id")],
    credential: Annotated[str | None, Security(node_token_header)],
) -> Node:
    """The node whose credential came with the request, which must be the node in the path."""
    if not credential:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "node credential missing (X-Node-Token)",
            headers={"WWW-Authenticate": "X-Node-Token"},
        )
    node = session.scalar(select(Node).where(Node.credential_hash == digest(credential)))
    if node is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "unknown node credential",
            headers={"WWW-Authenticate": "X-Node-Token"},
        )
    if node.id != node_id:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "a node can only act as itself")
    return node


CurrentNode = Annotated[Node, Depends(current_node)]
