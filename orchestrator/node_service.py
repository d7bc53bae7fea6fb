"""Nodes as a service: the queries and writes behind the node routes (listing, enrolment,
assignment reports); the routes only translate HTTP to these calls. Secrets come in hashed."""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from drift.orchestrator.nodes import apply_enrollment, node_loads
from drift.orchestrator.pki import Issued
from drift.orchestrator.scheduler import report_assignment
from drift.orchestrator.settings import Settings
from drift.orchestrator.states import JobStatus, NodeStatus
from drift.orchestrator.storage import Assignment, Device, EnrollmentToken, Node
from drift.protocol import AssignmentReport, Enrollment

log = logging.getLogger("drift.transmissions")


class EnrollmentRefused(Exception):
    """The enrolment token is unknown, already used or expired."""


class NoSuchAssignment(LookupError):
    """No assignment with this id belongs to the node."""


class CurveKeyTaken(Exception):
    """Another node holds this Curve public key."""


def list_nodes(session: Session, status: NodeStatus | None = None) -> list[tuple[Node, int]]:
    """Every node (or those with this status) with its load (active assignments)."""
    q = select(Node).options(selectinload(Node.devices)).order_by(Node.name, Node.id)
    if status is not None:
        q = q.where(Node.status == status)
    nodes = session.scalars(q).all()
    loads = node_loads(session)
    return [(n, loads.get(n.id, 0)) for n in nodes]


def get_node(session: Session, node_id: uuid.UUID) -> tuple[Node, int] | None:
    node = session.get(Node, node_id, options=[selectinload(Node.devices)])
    if node is None:
        return None
    return node, node_loads(session, [node.id]).get(node.id, 0)


@dataclass(frozen=True)
class DeviceState:
    """One enrolled device of an online node: its latest metrics and calibration."""

    node_id: uuid.UUID
    driver: str
    serial: str | None
    metrics: dict
    last_calibrated: dt.datetime | None


def online_devices(session: Session) -> list[DeviceState]:
    """Every device of the online nodes with the metrics of its node's latest heartbeat
    (matched by driver and serial; empty when it reported none)."""
    rows = session.execute(
        select(Node.id, Node.health, Device.driver, Device.serial, Device.last_calibrated)
        .join(Device, Device.node_id == Node.id)
        .where(Node.status == NodeStatus.ONLINE)
    ).all()
    out = []
    for node_id, health, driver, serial, last_calibrated in rows:
        reported = {
            (m.get("driver"), m.get("serial")): m
            for m in (health or {}).get("devices") or ()
            if isinstance(m, dict)
        }
        out.append(
            DeviceState(
                node_id, driver, serial, reported.get((driver, serial), {}), last_calibrated
            )
        )
    return out


def online_count(session: Session) -> int:
    return (
        session.scalar(
            select(func.count()).select_from(Node).where(Node.status == NodeStatus.ONLINE)
        )
        or 0
    )


def new_enrollment_token(
    session: Session, token_hash: str, created_by: uuid.UUID, ttl_s: float, now: dt.datetime
) -> EnrollmentToken:
    token = EnrollmentToken(
        token_hash=token_hash,
        created_by=created_by,
        created_at=now,
        expires_at=now + dt.timedelta(seconds=ttl_s),
    )
    session.add(token)
    session.commit()
    return token


def enroll(
    session: Session,
    body: Enrollment,
    token_hash: str,
    credential_hash: str,
    default_timeout_s: float,
    now: dt.datetime,
    sign: Callable[[uuid.UUID], Issued] | None = None,
) -> tuple[Node, Issued | None]:
    """A new node for a one-time token, committed, with its certificate when the enrollment
    had a CSR (``sign`` signs it for the new node's id; its
    :class:`~drift.orchestrator.pki.CertificateRequestError` leaves the token unused);
    :class:`EnrollmentRefused` when the token is unknown, used or expired (one use only: the
    conditional update wins for exactly one), :class:`CurveKeyTaken` when another node holds
    the Curve key it brings."""
    if body.curve_public_key is not None and _key_holder(session, body.curve_public_key):
        raise CurveKeyTaken("this Curve public key belongs to another node")
    node = Node(
        id=uuid.uuid4(),
        status=NodeStatus.ONLINE,
        last_seen=now,
        created_at=now,
        credential_hash=credential_hash,
        curve_public_key=body.curve_public_key,
    )
    issued = sign(node.id) if body.csr is not None and sign is not None else None
    if issued is not None:
        node.cert_serial, node.cert_not_after = issued.serial, issued.not_after
    apply_enrollment(node, body, default_timeout_s)
    session.add(node)
    try:
        session.flush()
    except IntegrityError:  # the same key, enrolled concurrently
        session.rollback()
        raise CurveKeyTaken("this Curve public key belongs to another node") from None
    claimed = session.execute(
        update(EnrollmentToken)
        .where(
            EnrollmentToken.token_hash == token_hash,
            EnrollmentToken.used_at.is_(None),
            EnrollmentToken.expires_at > now,
        )
        .values(used_at=now, node_id=node.id)
    ).rowcount
    if claimed != 1:
        session.rollback()
        raise EnrollmentRefused("enrollment token unknown, already used or expired")
    session.commit()
    return node, issued


def renew_certificate(
    session: Session, node_id: uuid.UUID, issued: Issued, curve_public_key: str | None = None
) -> bool:
    """Make ``issued`` the node's current certificate (the previous one is refused from now
    on), and ``curve_public_key`` its data-plane key when given (the old key is refused by
    the collector within its key refresh), in one commit; False when the node is gone or
    revoked, :class:`CurveKeyTaken` when another node holds the key."""
    values: dict[str, object] = {"cert_serial": issued.serial, "cert_not_after": issued.not_after}
    if curve_public_key is not None:
        holder = _key_holder(session, curve_public_key)
        if holder is not None and holder != node_id:
            raise CurveKeyTaken("this Curve public key belongs to another node")
        values["curve_public_key"] = curve_public_key
    try:
        changed = session.execute(
            update(Node).where(Node.id == node_id, Node.revoked_at.is_(None)).values(**values)
        ).rowcount
        session.commit()
    except IntegrityError:
        session.rollback()
        raise CurveKeyTaken("this Curve public key belongs to another node") from None
    return changed == 1


def revoke(session: Session, node_id: uuid.UUID, now: dt.datetime) -> Node | None:
    """Revoke a node and commit: its certificate, credential (and data-plane key) are refused
    from now on, and the scheduler moves its work to other nodes at its next tick. None: no
    such node. Revoking twice keeps the first time."""
    node = session.get(Node, node_id, options=[selectinload(Node.devices)])
    if node is None:
        return None
    if node.revoked_at is None:
        node.revoked_at = now
    session.commit()
    return node


def _key_holder(session: Session, key: str) -> uuid.UUID | None:
    return session.scalar(select(Node.id).where(Node.curve_public_key == key))


def curve_public_key(session: Session, node_id: uuid.UUID) -> str | None:
    """The Curve public key the coordinator holds for a node."""
    return session.scalar(select(Node.curve_public_key).where(Node.id == node_id))


def set_curve_public_key(session: Session, node_id: uuid.UUID, key: str) -> None:
    """Register (or replace) a node's Curve public key and commit; :class:`CurveKeyTaken`
    when another node holds it. The collector takes the new key at its next handshake and
    stops taking frames from the old one within its key refresh."""
    holder = _key_holder(session, key)
    if holder is not None and holder != node_id:
        raise CurveKeyTaken("this Curve public key belongs to another node")
    session.execute(update(Node).where(Node.id == node_id).values(curve_public_key=key))
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise CurveKeyTaken("this Curve public key belongs to another node") from None


@dataclass(frozen=True)
class ReportOutcome:
    changed: bool
    #: the job's status after the report (``analysing``: its analysis is due)
    job_status: JobStatus


def report(
    session: Session,
    node_id: uuid.UUID,
    assignment_id: uuid.UUID,
    body: AssignmentReport,
    settings: Settings,
    now: dt.datetime,
) -> ReportOutcome:
    """Apply a node's report on one of its assignments and commit. Raises
    :class:`NoSuchAssignment`, and IllegalTransition when the report does not fit."""
    assignment = session.get(Assignment, assignment_id)
    if assignment is None or assignment.node_id != node_id:
        raise NoSuchAssignment(assignment_id)
    if body.transmission is not None:
        tx = body.transmission
        log.info(
            "node %s transmitted %g dBm at %g MHz (%g kHz) under licence %s for assignment "
            "%s, %s to %s (ended %s, stopped by %s)",
            node_id,
            tx.power_dbm,
            tx.center_hz / 1e6,
            tx.bandwidth_hz / 1e3,
            tx.licence,
            assignment_id,
            tx.planned_start.isoformat(),
            tx.planned_end.isoformat(),
            tx.ended.isoformat() if tx.ended else "?",
            tx.stopped_by,
        )
        assignment.transmission = tx.model_dump(mode="json")
    changed = report_assignment(
        session,
        assignment,
        body.state,
        now,
        settings,
        body.error,
        body.frames,
        device_lost=body.device_lost,
    )
    outcome = ReportOutcome(changed, JobStatus(assignment.job.status))
    session.commit()
    return outcome
