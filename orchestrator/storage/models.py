"""SQL tables of the coordinator (SQLAlchemy 2 declarative models).

Identifiers are UUIDs so that nodes, jobs and keys can be named before they reach the database and
across several coordinator replicas. JSON columns hold data whose shape is owned by a pydantic
model elsewhere (job parameters: :mod:`drift.orchestrator.jobs`; capabilities:
:mod:`drift.orchestrator.nodes`).
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import (
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from drift.orchestrator.states import AssignmentState, JobStatus, NodeStatus, Role

from .types import JSONDocument, UTCDateTime

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {
        dt.datetime: UTCDateTime,
        dict[str, Any]: JSONDocument,
        list[Any]: JSONDocument,
    }


class Node(Base):
    __tablename__ = "nodes"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(255))
    lat_deg: Mapped[float] = mapped_column(Float)
    lon_deg: Mapped[float] = mapped_column(Float)
    alt_m: Mapped[float] = mapped_column(Float, default=0.0)
    status: Mapped[str] = mapped_column(String(32), default=NodeStatus.OFFLINE, index=True)
    last_seen: Mapped[dt.datetime | None]
    heartbeat_timeout_s: Mapped[float] = mapped_column(Float)
    #: Node-wide capabilities (transmit opt-in and licence, concurrency); see nodes.NodeCapabilities
    capabilities: Mapped[dict[str, Any]] = mapped_column(default=dict)
    sync_source: Mapped[str] = mapped_column(String(32), default="system")
    #: 1-sigma time uncertainty of the node's clock, seconds
    sync_uncertainty_s: Mapped[float] = mapped_column(Float, default=1e-2)
    credential_hash: Mapped[str] = mapped_column(String(64), unique=True)
    #: serial (hex) of the node's current certificate: the only one accepted from it
    cert_serial: Mapped[str | None] = mapped_column(String(40), unique=True, index=True)
    cert_not_after: Mapped[dt.datetime | None]
    #: set by an admin: the node's certificate, credential and data-plane key are refused
    revoked_at: Mapped[dt.datetime | None]
    #: the node's CurveZMQ public key (Z85): the collector takes frames from this key only,
    #: and attributes them to this node; none: the node cannot send on a Curve data plane
    curve_public_key: Mapped[str | None] = mapped_column(String(40), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    #: the latest health the node reported with a heartbeat; see drift.protocol.NodeHealth
    health: Mapped[dict[str, Any]] = mapped_column(default=dict)

    devices: Mapped[list[Device]] = relationship(
        back_populates="node", cascade="all, delete-orphan", order_by="Device.id"
    )


class Device(Base):
    __tablename__ = "devices"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    node_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("nodes.id", ondelete="CASCADE"), index=True
    )
    driver: Mapped[str] = mapped_column(String(100))
    serial: Mapped[str | None] = mapped_column(String(255))
    #: freq_min_hz, freq_max_hz, max_bandwidth_hz, tx
    capabilities: Mapped[dict[str, Any]] = mapped_column(default=dict)
    calibration: Mapped[dict[str, Any] | None] = mapped_column(JSONDocument)
    last_calibrated: Mapped[dt.datetime | None]

    node: Mapped[Node] = relationship(back_populates="devices")


class User(Base):
    __tablename__ = "users"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16), default=Role.VIEWER)
    permissions: Mapped[list[Any]] = mapped_column(default=list)
    disabled: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    #: bumped by a password change, a disable or a role change; bearer tokens carry the
    #: version they were issued under, and one of an earlier version is refused
    credentials_version: Mapped[int] = mapped_column(Integer, default=0)


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(100))
    #: SHA-256 of the key (keys are 256-bit random, so a fast hash is enough)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime | None]
    last_used_at: Mapped[dt.datetime | None]


class EnrollmentToken(Base):
    __tablename__ = "enrollment_tokens"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime]
    used_at: Mapped[dt.datetime | None]
    node_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("nodes.id", ondelete="SET NULL"))


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        UniqueConstraint("owner_id", "idempotency_key", name="uq_jobs_owner_idempotency_key"),
        Index("ix_jobs_status_priority", "status", "priority"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    type: Mapped[str] = mapped_column(String(64), index=True)
    parameters: Mapped[dict[str, Any]]
    status: Mapped[str] = mapped_column(String(32), default=JobStatus.PENDING)
    priority: Mapped[int] = mapped_column(Integer, default=0)
    owner_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    idempotency_key: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)
    scheduled_at: Mapped[dt.datetime | None]
    started_at: Mapped[dt.datetime | None]
    #: when the job reached a final state (the collector takes its frames for a while after)
    finished_at: Mapped[dt.datetime | None] = mapped_column(index=True)
    #: node ids (strings) of the current, active allocation
    allocated_nodes: Mapped[list[Any]] = mapped_column(default=list)
    #: why the job waits (pending) or why it ended (failed / cancelled)
    pending_reason: Mapped[str | None] = mapped_column(Text)
    status_reason: Mapped[str | None] = mapped_column(Text)
    #: the absolute instant every node starts its capture (job types whose nodes capture
    #: together), set when the job is placed
    capture_start: Mapped[dt.datetime | None]
    #: the coordinator replica running this job's analysis, and until when its claim holds
    #: (another replica takes the job over after that)
    analysis_owner: Mapped[str | None] = mapped_column(String(64))
    analysis_lease_until: Mapped[dt.datetime | None]
    analysis_attempts: Mapped[int] = mapped_column(Integer, default=0)

    transitions: Mapped[list[JobTransition]] = relationship(
        back_populates="job", cascade="all, delete-orphan", order_by="JobTransition.seq"
    )
    assignments: Mapped[list[Assignment]] = relationship(
        back_populates="job", cascade="all, delete-orphan", order_by="Assignment.created_at"
    )


class JobResult(Base):
    """What a job's analysis made of its nodes' deliveries: one per job, written with the
    job's move to ``completed``. Its shape belongs to the job type's result model
    (:mod:`drift.orchestrator.analysis`)."""

    __tablename__ = "job_results"

    job_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True
    )
    #: the result model's name: "location", "scan", "frames"
    kind: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    #: seconds of CPU the analysis took (in its worker)
    cpu_s: Mapped[float] = mapped_column(Float, default=0.0)
    document: Mapped[dict[str, Any]]


class JobTransition(Base):
    __tablename__ = "job_transitions"
    __table_args__ = (UniqueConstraint("job_id", "seq", name="uq_job_transitions_job_seq"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    #: 0, 1, 2... per job; unique, so two writers racing on one job cannot both record a step
    seq: Mapped[int] = mapped_column(Integer)
    from_status: Mapped[str | None] = mapped_column(String(32))
    to_status: Mapped[str] = mapped_column(String(32))
    at: Mapped[dt.datetime]
    reason: Mapped[str] = mapped_column(Text)

    job: Mapped[Job] = relationship(back_populates="transitions")


class Assignment(Base):
    __tablename__ = "assignments"
    __table_args__ = (Index("ix_assignments_node_state", "node_id", "state"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    node_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("nodes.id", ondelete="CASCADE"))
    #: what the node does in the job: "receiver", "transmitter"
    role: Mapped[str] = mapped_column(String(32), default="receiver")
    state: Mapped[str] = mapped_column(String(32), default=AssignmentState.ASSIGNED)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    #: not handed to the node before this time (retry back-off)
    not_before: Mapped[dt.datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    #: frames the node sent for it, by frame type ("psd", "detection", "iq"), as it reported
    #: with "completed": the job's analysis waits until the store holds them
    frames_sent: Mapped[dict[str, Any] | None] = mapped_column(JSONDocument)
    #: what the node reported it transmitted (protocol.Transmission), for a transmitting one
    transmission: Mapped[dict[str, Any] | None] = mapped_column(JSONDocument)
    #: the assignment this one replaced (node lost), for the record
    replaces_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("assignments.id", ondelete="SET NULL")
    )

    job: Mapped[Job] = relationship(back_populates="assignments")
    node: Mapped[Node] = relationship()


class FlowgraphTemplate(Base):
    """An uploaded ``.grc`` for ``custom_flowgraph`` jobs; runnable once an admin approved it."""

    __tablename__ = "flowgraph_templates"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(100))
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    content: Mapped[str] = mapped_column(Text)
    #: the template's parameter blocks: [{name, type, default, label}]
    parameters: Mapped[list[Any]] = mapped_column(default=list)
    #: block ids that carry Python source of their own (the approver should read them)
    embedded_code: Mapped[list[Any]] = mapped_column(default=list)
    #: every piece of Python the flowgraph runs (grcc evaluates its expressions when it
    #: compiles it, the flowgraph when it runs): [{block, block_id, parameter, kind, code}],
    #: see drift.orchestrator.compiler.python_expressions; what an admin approves
    expressions: Mapped[list[Any]] = mapped_column(default=list)
    #: blocks that make the node transmit (SoapySDR, osmocom, UHD, IIO sinks): running the
    #: template needs the transmit permission
    transmit_blocks: Mapped[list[Any]] = mapped_column(default=list)
    uploaded_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    uploaded_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    approved_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    approved_at: Mapped[dt.datetime | None]
