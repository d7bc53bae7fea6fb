"""Response and request bodies of the REST API (job requests live in drift.orchestrator.jobs)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    computed_field,
)

from drift.orchestrator.nodes import calibration_valid
from drift.orchestrator.states import PERMISSIONS, AssignmentState, JobStatus, NodeStatus, Role
from drift.protocol import DataPlane

T = TypeVar("T")


def _utc(value: dt.datetime) -> dt.datetime:
    """Naive means UTC; anything else is converted (an overflow is the caller's error)."""
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    try:
        return value.astimezone(dt.UTC)
    except OverflowError:
        raise ValueError("date-time out of range once converted to UTC") from None


UTCDateTime = Annotated[dt.datetime, AfterValidator(_utc)]

Username = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.@-]+$")
]
Password = Annotated[str, StringConstraints(min_length=12, max_length=256)]
Label = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=1, max_length=100, pattern=r"^[^\x00-\x1f\x7f]+$"
    ),
]
Permission = Literal[tuple(sorted(PERMISSIONS))]  # type: ignore[valid-type]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int
    limit: int
    offset: int


class Token(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int


# --- users and keys -------------------------------------------------------------------------


class UserPublic(_Out):
    id: uuid.UUID
    username: str
    role: Role
    permissions: list[str]
    disabled: bool
    created_at: dt.datetime


class UserCreate(_In):
    username: Username
    password: Password
    role: Role = Role.VIEWER
    permissions: list[Permission] = Field(default_factory=list, max_length=len(PERMISSIONS))


class UserUpdate(_In):
    role: Role | None = None
    permissions: list[Permission] | None = Field(default=None, max_length=len(PERMISSIONS))
    disabled: bool | None = None
    password: Password | None = None


class ApiKeyCreate(_In):
    name: Label
    expires_at: UTCDateTime | None = None


class ApiKeyPublic(_Out):
    id: uuid.UUID
    name: str
    created_at: dt.datetime
    expires_at: dt.datetime | None


class ApiKeyOwned(ApiKeyPublic):
    """A key in the admins' listing of every user's keys."""

    user_id: uuid.UUID
    username: str
    expired: bool = Field(description="past its expires_at: refused, still listed until deleted")


class ApiKeyCreated(ApiKeyPublic):
    key: str = Field(description="shown once; send it as the X-API-Key header")


# --- jobs -----------------------------------------------------------------------------------


class TransitionPublic(_Out):
    from_status: JobStatus | None
    to_status: JobStatus
    at: dt.datetime
    reason: str


class AssignmentPublic(_Out):
    id: uuid.UUID
    node_id: uuid.UUID
    role: str
    state: AssignmentState
    attempts: int
    not_before: dt.datetime | None
    last_error: str | None
    created_at: dt.datetime
    updated_at: dt.datetime
    replaces_id: uuid.UUID | None
    #: what the node reported it transmitted (band, power, licence, times), if it did
    transmission: dict[str, Any] | None = None


class JobPublic(_Out):
    id: uuid.UUID
    type: str
    status: JobStatus
    priority: int
    parameters: dict[str, Any]
    owner_id: uuid.UUID | None
    created_at: dt.datetime
    scheduled_at: dt.datetime | None
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    allocated_nodes: list[str]
    pending_reason: str | None = Field(description="why a pending job waits")
    status_reason: str | None = Field(description="why a job ended (failed, cancelled...)")


class JobDetail(JobPublic):
    transitions: list[TransitionPublic]
    assignments: list[AssignmentPublic]


class CancelRequest(_In):
    reason: Label | None = None


# --- nodes ----------------------------------------------------------------------------------


class DevicePublic(_Out):
    id: uuid.UUID
    driver: str
    serial: str | None
    capabilities: dict[str, Any]
    #: the record the node reported (lo_error_ppm, gain_offset_db, gain_points, created,
    #: valid_until), as ``drift calibrate`` made it; none: never calibrated
    calibration: dict[str, Any] | None
    last_calibrated: dt.datetime | None

    @computed_field
    @property
    def calibration_age_s(self) -> float | None:
        """Seconds since the device was last calibrated (none: never)."""
        if self.last_calibrated is None:
            return None
        made = self.last_calibrated
        made = made if made.tzinfo else made.replace(tzinfo=dt.UTC)
        return round((dt.datetime.now(dt.UTC) - made).total_seconds(), 3)

    @computed_field
    @property
    def calibration_valid(self) -> bool:
        """It has a calibration record whose validity has not ended."""
        return calibration_valid(self.calibration)


class NodePublic(_Out):
    id: uuid.UUID
    name: str
    lat_deg: float
    lon_deg: float
    alt_m: float
    status: NodeStatus
    last_seen: dt.datetime | None
    heartbeat_timeout_s: float
    capabilities: dict[str, Any]
    sync_source: str
    sync_uncertainty_s: float
    created_at: dt.datetime
    devices: list[DevicePublic]
    load: int = 0
    #: the latest health the node reported (cpu_percent, running_jobs, dropped_samples, ...)
    health: dict[str, Any] = Field(default_factory=dict)
    #: serial (hex) and expiry of the node's current client certificate; none: it has none
    cert_serial: str | None = None
    cert_not_after: dt.datetime | None = None
    #: when an admin revoked the node (none: not revoked)
    revoked_at: dt.datetime | None = None


class EnrollmentTokenCreate(_In):
    ttl_s: int | None = Field(default=None, gt=0, le=30 * 24 * 3600)


class EnrollmentTokenCreated(BaseModel):
    token: str = Field(description="one use; give it to the node's agent")
    expires_at: dt.datetime


class NodeCertificate(BaseModel):
    certificate: str = Field(description="the node's client certificate, PEM")
    ca_certificate: str = Field(description="the coordinator's CA that signed it, PEM")
    serial: str = Field(description="the certificate's serial number (hexadecimal)")
    expires_at: dt.datetime


class Enrolled(BaseModel):
    node_id: uuid.UUID
    credential: str = Field(description="shown once; the node sends it as X-Node-Token")
    heartbeat_timeout_s: float
    certificate: NodeCertificate | None = Field(
        default=None, description="for the enrollment's csr (none without one)"
    )
    data_plane: DataPlane = Field(description="how the node's relay reaches the collector")


class HeartbeatAck(BaseModel):
    status: NodeStatus
    heartbeat_timeout_s: float
    server_time: dt.datetime
