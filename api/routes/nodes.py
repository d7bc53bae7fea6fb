"""Nodes: list and read (users); enrollment, heartbeat and assignments (the node itself).

A node enrolls once with a one-time token an admin made, and gets a credential it sends as
``X-Node-Token`` from then on and, for the certificate request it sends along, a client
certificate it renews before expiry; on TLS connections nodes authenticate with that
certificate (see ``drift.api.deps.node_identity``). Every node route has the node's id in its
path and refuses a credential of another node (403). An admin may revoke a node.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Annotated

from fastapi import APIRouter, Body, HTTPException, Query, Response, status
from pydantic import TypeAdapter
from starlette.concurrency import run_in_threadpool

from drift.api.deps import (
    Admin,
    CurrentNode,
    NodeAuthDep,
    ReadSessionDep,
    RuntimeDep,
    SessionDep,
    Viewer,
    field_error,
    unknown_node,
    utcnow,
)
from drift.api.hub import node_assignment
from drift.api.runtime import Runtime
from drift.api.schemas import (
    Enrolled,
    EnrollmentTokenCreate,
    EnrollmentTokenCreated,
    HeartbeatAck,
    NodeCertificate,
    NodePublic,
)
from drift.api.security import ENROLLMENT_TOKEN_PREFIX, NODE_CREDENTIAL_PREFIX, digest, new_secret
from drift.orchestrator import node_service
from drift.orchestrator.dispatch import deliverable, dispatch_latency_s
from drift.orchestrator.events import ANALYSIS_DUE, ASSIGNMENTS_CHANGED
from drift.orchestrator.lifecycle import IllegalTransition
from drift.orchestrator.pki import CertificateRequestError, Issued
from drift.orchestrator.states import JobStatus, NodeStatus
from drift.protocol import (
    CLOSE_UNAUTHORIZED,
    AssignmentReport,
    CertificateRequest,
    CurveKeyUpdate,
    DataPlane,
    Enrollment,
    Heartbeat,
    NodeAssignment,
)

log = logging.getLogger(__name__)

router = APIRouter(prefix="/nodes", tags=["nodes"])

NODE_AUTH = {
    401: {"description": "no or unknown node credential"},
    403: {"description": "the credential belongs to another node"},
}


def _public(node, load: int) -> NodePublic:
    out = NodePublic.model_validate(node)
    out.load = load
    return out


_NODE_LIST = TypeAdapter(list[NodePublic])


def render_nodes(runtime: Runtime, status_: NodeStatus | None) -> bytes:
    """The node list as JSON bytes, from a read-only session."""
    with runtime.read_sessions() as session:
        return _NODE_LIST.dump_json(
            [_public(n, load) for n, load in node_service.list_nodes(session, status_)]
        )


@router.get("", response_model=list[NodePublic])
async def list_nodes(
    _: Viewer,
    runtime: RuntimeDep,
    status_: Annotated[NodeStatus | None, Query(alias="status")] = None,
) -> Response:
    """Every node (or those with this status). The list may be up to ``node_list_cache_s``
    (default 1 s) old: it is rendered once and served to every caller in that time."""
    body = runtime.node_lists.get(status_)
    if body is None:
        # one render at a time per filter: callers that miss together share it
        inflight = runtime.node_list_renders
        rendering = inflight.get(status_)
        if rendering is None:
            rendering = inflight[status_] = asyncio.ensure_future(
                run_in_threadpool(render_nodes, runtime, status_)
            )
            rendering.add_done_callback(lambda _: inflight.pop(status_, None))
        body = await asyncio.shield(rendering)
        runtime.node_lists.put(status_, body)
    return Response(body, media_type="application/json")


@router.get("/{node_id}", response_model=NodePublic)
def get_node(node_id: uuid.UUID, _: Viewer, session: ReadSessionDep) -> NodePublic:
    found = node_service.get_node(session, node_id)
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such node")
    return _public(*found)


@router.post(
    "/enrollment-tokens",
    response_model=EnrollmentTokenCreated,
    status_code=status.HTTP_201_CREATED,
)
def create_enrollment_token(
    admin: Admin,
    runtime: RuntimeDep,
    session: SessionDep,
    body: Annotated[EnrollmentTokenCreate | None, Body()] = None,
) -> EnrollmentTokenCreated:
    ttl_s = (body.ttl_s if body else None) or runtime.settings.enrollment_token_ttl_s
    secret = new_secret(ENROLLMENT_TOKEN_PREFIX)
    token = node_service.new_enrollment_token(session, digest(secret), admin.id, ttl_s, utcnow())
    return EnrollmentTokenCreated(token=secret, expires_at=token.expires_at)


@router.post(
    "/enroll",
    response_model=Enrolled,
    status_code=status.HTTP_201_CREATED,
    responses={
        401: {"description": "token unknown, used or expired"},
        409: {"description": "another node holds this Curve public key"},
    },
)
def enroll(body: Enrollment, runtime: RuntimeDep, session: SessionDep) -> Enrolled:
    """Trade a one-time enrollment token for a node id, a node credential and, for the
    enrollment's ``csr``, the node's client certificate (signed by the coordinator's CA; a
    CSR that cannot be signed is a 422 and leaves the token unused). The node's Curve public
    key (``curve_public_key``) is what its frames must come from; the answer says how to
    reach the collector (its public key)."""
    secret = new_secret(NODE_CREDENTIAL_PREFIX)
    validity_s = runtime.settings.node_certificate_validity_s
    try:
        node, issued = node_service.enroll(
            session,
            body,
            digest(body.token),
            digest(secret),
            runtime.settings.heartbeat_timeout_s,
            utcnow(),
            sign=lambda node_id: runtime.ca.sign_node(body.csr, node_id, validity_s),
        )
    except CertificateRequestError as exc:
        raise field_error(("body", "csr"), str(exc)) from None
    except node_service.EnrollmentRefused as exc:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, str(exc), headers={"WWW-Authenticate": "enrollment-token"}
        ) from None
    except node_service.CurveKeyTaken as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    log.info("node %s (%s) enrolled", node.id, node.name)
    return Enrolled(
        node_id=node.id,
        credential=secret,
        heartbeat_timeout_s=node.heartbeat_timeout_s,
        certificate=_certificate(runtime, issued) if issued else None,
        data_plane=runtime.data_plane(node.curve_public_key),
    )


def _certificate(runtime: Runtime, issued: Issued) -> NodeCertificate:
    return NodeCertificate(
        certificate=issued.pem,
        ca_certificate=runtime.ca.cert_pem,
        serial=issued.serial,
        expires_at=issued.not_after,
    )


@router.post(
    "/{node_id}/certificate",
    response_model=NodeCertificate,
    responses={
        **NODE_AUTH,
        409: {"description": "another node holds this Curve public key"},
        422: {"description": "the CSR cannot be signed"},
    },
)
def renew_certificate(
    node: NodeAuthDep, body: CertificateRequest, runtime: RuntimeDep, session: SessionDep
) -> NodeCertificate:
    """A new client certificate for a new key (the node renews before its certificate
    expires), and with ``curve_public_key`` the node's new data-plane key. From the answer
    on, only the new certificate is accepted from the node, and the collector refuses frames
    from its old Curve key within its key refresh."""
    try:
        issued = runtime.ca.sign_node(
            body.csr, node.id, runtime.settings.node_certificate_validity_s
        )
    except CertificateRequestError as exc:
        raise field_error(("body", "csr"), str(exc)) from None
    try:
        renewed = node_service.renew_certificate(session, node.id, issued, body.curve_public_key)
    except node_service.CurveKeyTaken as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    if not renewed:
        raise unknown_node("node unknown or revoked")
    runtime.principals.clear()
    log.info(
        "node %s renewed its certificate (serial %s)%s",
        node.id,
        issued.serial,
        f" and its Curve key ({body.curve_public_key})" if body.curve_public_key else "",
    )
    return _certificate(runtime, issued)


@router.post(
    "/{node_id}/revoke",
    response_model=NodePublic,
    responses={404: {"description": "no such node"}},
)
def revoke_node(
    node_id: uuid.UUID, admin: Admin, runtime: RuntimeDep, session: SessionDep
) -> NodePublic:
    """Revoke a node (a node lost, stolen or retired): its certificate and credential are
    refused from now on, on every replica within ``auth_cache_s``, its node channel closes at
    its next heartbeat, and the scheduler moves its work to other nodes. A revoked node must
    enroll again (a new identity) to rejoin."""
    node = node_service.revoke(session, node_id, utcnow())
    if node is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such node")
    runtime.principals.clear()
    channel = runtime.hub.channels.get(node_id) if runtime.hub else None
    if channel is not None:
        channel.close(CLOSE_UNAUTHORIZED, "the node was revoked")
    log.warning("node %s (%s) revoked by %s", node.id, node.name, admin.username)
    return _public(*node_service.get_node(session, node_id))


@router.get("/{node_id}/data-plane", response_model=DataPlane, responses=NODE_AUTH)
def data_plane(node: NodeAuthDep, runtime: RuntimeDep, session: ReadSessionDep) -> DataPlane:
    """How this node sends its frames: the collector's Curve public key, and the public key
    the coordinator holds for the node (none: it must register one before it can send)."""
    return runtime.data_plane(node_service.curve_public_key(session, node.id))


@router.put(
    "/{node_id}/curve-key",
    response_model=DataPlane,
    responses={**NODE_AUTH, 409: {"description": "another node holds this Curve public key"}},
)
def set_curve_key(
    node: NodeAuthDep, body: CurveKeyUpdate, runtime: RuntimeDep, session: SessionDep
) -> DataPlane:
    """Register or replace this node's Curve public key (a node enrolled before it had one,
    or one that made a new key pair); frames from its old key are refused from then on."""
    try:
        node_service.set_curve_public_key(session, node.id, body.curve_public_key)
    except node_service.CurveKeyTaken as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    log.info("node %s registered Curve public key %s", node.id, body.curve_public_key)
    return runtime.data_plane(body.curve_public_key)


@router.post("/{node_id}/heartbeat", response_model=HeartbeatAck, responses=NODE_AUTH)
async def heartbeat(
    node: NodeAuthDep,
    runtime: RuntimeDep,
    body: Annotated[Heartbeat | None, Body()] = None,
) -> HeartbeatAck:
    now = utcnow()
    if not await runtime.hub.beats.record(node.id, body or Heartbeat(), now):
        raise unknown_node("unknown node credential")  # removed since it was cached
    return HeartbeatAck(
        status=NodeStatus.ONLINE,
        heartbeat_timeout_s=node.heartbeat_timeout_s,
        server_time=now,
    )


def pending_for(runtime: Runtime, node_id: uuid.UUID) -> list[NodeAssignment]:
    now = utcnow()
    out, latencies = [], []
    with runtime.read_sessions() as session:
        for a in deliverable(session, node_id, now):
            first = runtime.ledger.first_delivery(a.id, a.attempts)
            if first:
                latencies.append((node_id, dispatch_latency_s(a.updated_at, a.not_before, now)))
            out.append(node_assignment(a, first))
    runtime.ledger.note_dispatch(latencies)
    return out


@router.get("/{node_id}/assignments", response_model=list[NodeAssignment], responses=NODE_AUTH)
async def my_assignments(node: NodeAuthDep, runtime: RuntimeDep) -> list[NodeAssignment]:
    """What this node should run now (reading it changes nothing but the first-delivery mark;
    report to move it on)."""
    return await run_in_threadpool(pending_for, runtime, node.id)


@router.post(
    "/{node_id}/assignments/{assignment_id}/report",
    responses={
        **NODE_AUTH,
        404: {"description": "no such assignment for this node"},
        409: {"description": "the report does not fit the assignment's state"},
    },
)
def report(
    node: CurrentNode,
    assignment_id: uuid.UUID,
    body: AssignmentReport,
    runtime: RuntimeDep,
    session: SessionDep,
) -> dict[str, bool]:
    """Tell the coordinator an assignment started, completed or failed (repeats are harmless)."""
    try:
        outcome = node_service.report(
            session, node.id, assignment_id, body, runtime.settings, utcnow()
        )
    except node_service.NoSuchAssignment:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such assignment for this node") from None
    except IllegalTransition as e:
        raise HTTPException(
            status.HTTP_409_CONFLICT, f"assignment is {e.current}; cannot report {body.state}"
        ) from e
    changed = outcome.changed
    if changed:
        ASSIGNMENTS_CHANGED.wake([node.id])
    if outcome.job_status == JobStatus.ANALYSING:
        ANALYSIS_DUE.wake()
    return {"changed": changed}
