"""FastAPI dependencies: the session, who is calling, and what they may do."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Path, Request, Security, status
from fastapi.security import APIKeyHeader, OAuth2PasswordBearer
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import HTTPConnection

from drift.api import tls
from drift.api.runtime import Runtime
from drift.api.security import digest
from drift.orchestrator.pki import read_peer
from drift.orchestrator.states import Role
from drift.orchestrator.storage import ApiKey, Node, User

oauth2 = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token", auto_error=False)
api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="a user's API key")
node_token_header = APIKeyHeader(
    name="X-Node-Token", auto_error=False, description="a node's credential from enrollment"
)

ROLE_RANK = {Role.VIEWER: 0, Role.OPERATOR: 1, Role.ADMIN: 2}


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


async def get_runtime(request: Request) -> Runtime:
    return request.app.state.runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def get_session(runtime: RuntimeDep) -> Iterator[Session]:
    """A session per request; handlers commit what they change, the rest is rolled back."""
    with runtime.sessions() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


def get_read_session(runtime: RuntimeDep) -> Iterator[Session]:
    """A session for handlers that only read (on SQLite: no write lock taken)."""
    with runtime.read_sessions() as session:
        yield session


ReadSessionDep = Annotated[Session, Depends(get_read_session)]


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


def _lookup_user(runtime: Runtime, user_id: uuid.UUID) -> User | None:
    with runtime.read_sessions() as session:
        user = session.get(User, user_id)
        if user is not None:
            session.expunge(user)
        return user


def _lookup_key(runtime: Runtime, key_digest: str) -> tuple[User | None, dt.datetime | None]:
    with runtime.read_sessions() as session:
        key = session.scalar(select(ApiKey).where(ApiKey.key_hash == key_digest))
        if key is None:
            return None, None
        user = session.get(User, key.user_id)
        if user is not None:
            session.expunge(user)
        return user, key.expires_at


def authenticate(runtime: Runtime, token: str | None, api_key: str | None) -> User:
    """The user behind a bearer token or an API key (looked up at most every
    ``auth_cache_s``); raises 401. Blocking on a cache miss: call from a thread."""
    if token:
        claims = runtime.tokens.subject(token)
        if claims is None:
            raise _unauthorized("invalid or expired token")
        user_id, version = claims
        user = runtime.principals.get(("user", user_id))
        if user is None:
            user = _lookup_user(runtime, user_id)
            if user is not None:
                runtime.principals.put(("user", user_id), user)
        if user is not None and user.credentials_version != version:
            # the password, role or state changed since the token was issued
            raise _unauthorized("token revoked; log in again")
    elif api_key:
        key_digest = digest(api_key)
        cached = runtime.principals.get(("key", key_digest))
        if cached is None:
            cached = _lookup_key(runtime, key_digest)
            if cached[0] is not None:
                runtime.principals.put(("key", key_digest), cached)
        user, expires_at = cached
        if user is None or (expires_at is not None and expires_at <= utcnow()):
            raise _unauthorized("invalid or expired API key")
    else:
        raise _unauthorized()
    if user is None or user.disabled:
        raise _unauthorized("user unknown or disabled")
    return user


def _cached(runtime: Runtime, token: str | None, api_key: str | None) -> bool:
    """Whether authenticate() would answer without the database."""
    if token:
        claims = runtime.tokens.subject(token)
        return claims is None or runtime.principals.get(("user", claims[0])) is not None
    if api_key:
        return runtime.principals.get(("key", digest(api_key))) is not None
    return True


async def current_user(
    runtime: RuntimeDep,
    token: Annotated[str | None, Security(oauth2)],
    api_key: Annotated[str | None, Security(api_key_header)],
) -> User:
    """The user behind a bearer token (from /auth/token) or an API key; 401 otherwise.

    The user is a detached snapshot (read its fields; load it in the handler's session to
    change it)."""
    if _cached(runtime, token, api_key):
        return authenticate(runtime, token, api_key)
    return await run_in_threadpool(authenticate, runtime, token, api_key)


CurrentUser = Annotated[User, Depends(current_user)]


def has_role(user: User, role: Role) -> bool:
    return ROLE_RANK[Role(user.role)] >= ROLE_RANK[role]


def require(role: Role) -> Callable[[User], Awaitable[User]]:
    async def check(user: CurrentUser) -> User:
        if not has_role(user, role):
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"needs the {role} role")
        return user

    return check


Viewer = Annotated[User, Depends(require(Role.VIEWER))]
Operator = Annotated[User, Depends(require(Role.OPERATOR))]
Admin = Annotated[User, Depends(require(Role.ADMIN))]


@dataclass(frozen=True)
class NodeAuth:
    """A node's identity as its certificate or credential proved it."""

    id: uuid.UUID
    heartbeat_timeout_s: float


def _lookup_node(runtime: Runtime, credential_digest: str) -> NodeAuth | None:
    with runtime.read_sessions() as session:
        row = session.execute(
            select(Node.id, Node.heartbeat_timeout_s).where(
                Node.credential_hash == credential_digest, Node.revoked_at.is_(None)
            )
        ).first()
    return NodeAuth(row[0], row[1]) if row else None


def _lookup_certified(runtime: Runtime, node_id: uuid.UUID, serial: str) -> NodeAuth | str:
    """The node of a current certificate, or why the certificate is refused."""
    with runtime.read_sessions() as session:
        row = session.execute(
            select(Node.heartbeat_timeout_s, Node.cert_serial, Node.revoked_at).where(
                Node.id == node_id
            )
        ).first()
    if row is None:
        return "no such node (removed?)"
    if row.revoked_at is not None:
        return "the node was revoked; it must enroll again"
    if row.cert_serial != serial:
        return "client certificate not current: the node has renewed it since"
    return NodeAuth(node_id, row.heartbeat_timeout_s)


def unknown_node(detail: str) -> HTTPException:
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED, detail, headers={"WWW-Authenticate": "X-Node-Token"}
    )


async def node_identity(runtime: Runtime, conn: HTTPConnection) -> NodeAuth:
    """The node behind a request or WebSocket (looked up at most every ``auth_cache_s``);
    401. Its client certificate when it has one (which must be its current one: renewed or
    revoked ones are refused); on TLS connections (and behind a proxy that passes
    certificates) a certificate is required, elsewhere the ``X-Node-Token`` credential
    does."""
    cert = tls.client_certificate(conn, runtime.settings, runtime.ca)
    if cert is not None:
        peer = read_peer(cert)
        if peer.node_id is None:
            raise unknown_node("the client certificate is not a DRIFT node's")
        key = ("cert", peer.serial)
        auth = runtime.principals.get(key)
        if auth is None:
            auth = await run_in_threadpool(_lookup_certified, runtime, peer.node_id, peer.serial)
            if isinstance(auth, str):
                raise unknown_node(auth)
            runtime.principals.put(key, auth)
        return auth
    if tls.certificate_required(conn, runtime.settings):
        raise unknown_node(
            "nodes authenticate with their client certificate here; a node without one "
            "must enroll again (with a certificate request)"
        )
    credential = conn.headers.get("x-node-token")
    if not credential:
        raise unknown_node("node credential missing (X-Node-Token)")
    key = ("node", digest(credential))
    auth = runtime.principals.get(key)
    if auth is None:
        auth = await run_in_threadpool(_lookup_node, runtime, key[1])
        if auth is None:
            raise unknown_node("unknown node credential (or the node was revoked)")
        runtime.principals.put(key, auth)
    return auth


async def node_auth(
    request: Request,
    runtime: RuntimeDep,
    node_id: Annotated[uuid.UUID, Path(description="the node's id")],
    _credential: Annotated[str | None, Security(node_token_header)],
) -> NodeAuth:
    """The node whose certificate or credential came with the request, which must be the
    node in the path."""
    auth = await node_identity(runtime, request)
    if auth.id != node_id:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "a node can only act as itself")
    return auth


NodeAuthDep = Annotated[NodeAuth, Depends(node_auth)]


def current_node(auth: NodeAuthDep, session: SessionDep) -> Node:
    """The authenticated node, loaded in the request's session."""
    node = session.get(Node, auth.id)
    if node is None:  # removed since its credential was cached
        raise unknown_node("unknown node credential")
    return node


CurrentNode = Annotated[Node, Depends(current_node)]
