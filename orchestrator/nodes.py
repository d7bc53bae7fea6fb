"""Nodes as the coordinator sees them: what they declare when they enroll, their heartbeats, and
the assignment reports they send; plus the snapshots the allocator works on.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
import uuid
from collections.abc import Sequence
from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from drift.orchestrator.allocator import DeviceView, NodeView, TxBand
from drift.orchestrator.jobs import MAX_FREQ_HZ
from drift.orchestrator.states import ACTIVE_ASSIGNMENT, NodeStatus
from drift.orchestrator.storage.models import Assignment, Device, Node

log = logging.getLogger(__name__)

#: Printable text without control characters (PostgreSQL refuses NUL in text).
Name = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=1, max_length=100, pattern=r"^[^\x00-\x1f\x7f]+$"
    ),
]

SyncSource = Literal["gps", "pps", "ptp", "ntp", "10mhz_ref", "system"]

#: A 1-sigma clock uncertainty to assume for each source when the node does not say.
TYPICAL_SYNC_UNCERTAINTY_S: dict[str, float] = {
    "gps": 50e-9,
    "pps": 100e-9,
    "ptp": 1e-6,
    "ntp": 5e-3,
    "10mhz_ref": 1e-2,  # frequency, not time: no better than the system clock
    "system": 1e-2,
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class DeviceSpec(_Strict):
    driver: Name
    serial: Name | None = None
    freq_min_hz: float = Field(gt=0, le=MAX_FREQ_HZ)
    freq_max_hz: float = Field(gt=0, le=MAX_FREQ_HZ)
    max_bandwidth_hz: float = Field(gt=0, le=1e9)
    tx: bool = False

    @model_validator(mode="after")
    def _range(self) -> Self:
        if self.freq_max_hz <= self.freq_min_hz:
            raise ValueError("freq_max_hz must be above freq_min_hz")
        return self


class TxBandSpec(_Strict):
    low_hz: float = Field(gt=0, le=MAX_FREQ_HZ)
    high_hz: float = Field(gt=0, le=MAX_FREQ_HZ)
    max_power_dbm: float = Field(ge=-100, le=70)

    @model_validator(mode="after")
    def _range(self) -> Self:
        if self.high_hz <= self.low_hz:
            raise ValueError("high_hz must be above low_hz")
        return self


class Location(_Strict):
    lat_deg: float = Field(ge=-90, le=90)
    lon_deg: float = Field(ge=-180, le=180)
    alt_m: float = Field(default=0.0, ge=-500, le=100_000)


class NodeCapabilities(_Strict):
    """Node-wide settings, stored in ``nodes.capabilities``."""

    max_jobs: int = Field(default=1, ge=1, le=64)
    #: the operator of the node allows it to transmit at all
    tx_opt_in: bool = False
    #: where and how strongly its licence allows transmitting
    tx_bands: list[TxBandSpec] = Field(default_factory=list, max_length=64)


class SyncState(_Strict):
    source: SyncSource = "system"
    uncertainty_s: float | None = Field(default=None, gt=0, le=3600)

    @property
    def effective_uncertainty_s(self) -> float:
        return (
            self.uncertainty_s
            if self.uncertainty_s is not None
            else TYPICAL_SYNC_UNCERTAINTY_S[self.source]
        )


class Enrollment(_Strict):
    """What a node sends with its one-time enrollment token."""

    token: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    name: Name
    location: Location
    devices: list[DeviceSpec] = Field(min_length=1, max_length=32)
    capabilities: NodeCapabilities = Field(default_factory=NodeCapabilities)
    sync: SyncState = Field(default_factory=SyncState)
    heartbeat_timeout_s: float | None = Field(default=None, gt=0, le=3600)


class NodeHealth(_Strict):
    """What a node's agent says about itself with each heartbeat."""

    cpu_percent: float = Field(ge=0, le=100)
    load_1m: float = Field(default=0.0, ge=0, le=1e6)
    running_jobs: int = Field(ge=0, le=1024)
    #: samples the device dropped (overflows) since the agent started
    dropped_samples: int = Field(default=0, ge=0)
    #: frames waiting in the agent's disk spool for the collector
    spooled_frames: int = Field(default=0, ge=0)
    device_ok: bool = True
    last_error: Annotated[str, StringConstraints(max_length=500, pattern=r"^[^\x00]*$")] | None = None


class Heartbeat(_Strict):
    sync: SyncState | None = None
    health: NodeHealth | None = None


def apply_enrollment(node: Node, enrollment: Enrollment, default_timeout_s: float) -> None:
    node.name = enrollment.name
    node.lat_deg = enrollment.location.lat_deg
    node.lon_deg = enrollment.location.lon_deg
    node.alt_m = enrollment.location.alt_m
    node.capabilities = enrollment.capabilities.model_dump(mode="json")
    node.sync_source = enrollment.sync.source
    node.sync_uncertainty_s = enrollment.sync.effective_uncertainty_s
    node.heartbeat_timeout_s = enrollment.heartbeat_timeout_s or default_timeout_s
    node.devices = [
        Device(
            driver=d.driver,
            serial=d.serial,
            capabilities=d.model_dump(mode="json", exclude={"driver", "serial"}),
        )
        for d in enrollment.devices
    ]


def node_loads(
    session: Session, node_ids: Sequence[uuid.UUID] | None = None
) -> dict[uuid.UUID, int]:
    """Active assignments per node."""
    q = (
        select(Assignment.node_id, func.count())
        .where(Assignment.state.in_(list(ACTIVE_ASSIGNMENT)))
        .group_by(Assignment.node_id)
    )
    if node_ids is not None:
        q = q.where(Assignment.node_id.in_(list(node_ids)))
    return {node_id: int(n) for node_id, n in session.execute(q)}


class NodeViews:
    """The nodes as the allocator sees them, read for every scheduler tick. What a node
    declared at enrollment (location, devices, capabilities) never changes afterwards, so it
    is read once per node (and all of it again every ``refresh_s``); status, sync and load
    are read fresh each time."""

    def __init__(self, refresh_s: float = 60.0) -> None:
        self.refresh_s = refresh_s
        self._static: dict[uuid.UUID, NodeView] = {}
        self._read_at = -math.inf
        #: the views handed out by the last load, with the state they were made from
        self._views: dict[uuid.UUID, tuple[NodeView, tuple, NodeView]] = {}

    def load(self, session: Session) -> dict[str, NodeView]:
        rows = session.execute(select(Node.id, Node.status, Node.sync_uncertainty_s)).all()
        if time.monotonic() - self._read_at > self.refresh_s:
            self._static = self._read_static(session, None)
            self._read_at = time.monotonic()
        missing = [r[0] for r in rows if r[0] not in self._static]
        if missing:
            self._static.update(self._read_static(session, missing))
        loads = node_loads(session)
        out: dict[str, NodeView] = {}
        views = {}
        for node_id, status, sync_s in rows:
            static = self._static.get(node_id)
            if static is None:
                continue
            state = (status == NodeStatus.ONLINE, sync_s, loads.get(node_id, 0))
            last = self._views.get(node_id)
            if last is not None and last[0] is static and last[1] == state:
                view = last[2]  # unchanged since the last tick (views are frozen)
            else:
                view = dataclasses.replace(static, online=state[0], sync_uncertainty_s=sync_s,
                                           load=state[2])
            views[node_id] = (static, state, view)
            out[str(node_id)] = view
        self._views = views
        return out

    @staticmethod
    def _read_static(session: Session, ids: list[uuid.UUID] | None) -> dict[uuid.UUID, NodeView]:
        """Location, devices and capabilities of these nodes (None: all)."""
        dq = select(Device.node_id, Device.capabilities)
        nq = select(Node.id, Node.lat_deg, Node.lon_deg, Node.alt_m, Node.capabilities)
        if ids is not None:
            dq, nq = dq.where(Device.node_id.in_(ids)), nq.where(Node.id.in_(ids))
        devices: dict[uuid.UUID, list[DeviceView]] = {}
        for node_id, caps in session.execute(dq):
            devices.setdefault(node_id, []).append(DeviceView(
                freq_min_hz=caps["freq_min_hz"],
                freq_max_hz=caps["freq_max_hz"],
                max_bandwidth_hz=caps["max_bandwidth_hz"],
                tx=bool(caps.get("tx", False)),
            ))
        out: dict[uuid.UUID, NodeView] = {}
        for node_id, lat, lon, alt, capabilities in session.execute(nq):
            caps = NodeCapabilities.model_validate(capabilities or {})
            out[node_id] = NodeView(
                id=str(node_id),
                lat_deg=lat,
                lon_deg=lon,
                alt_m=alt,
                max_jobs=caps.max_jobs,
                devices=tuple(devices.get(node_id, ())),
                tx_opt_in=caps.tx_opt_in,
                tx_bands=tuple(TxBand(b.low_hz, b.high_hz, b.max_power_dbm)
                               for b in caps.tx_bands),
            )
        return out

