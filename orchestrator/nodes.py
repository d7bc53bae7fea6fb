"""Nodes as the coordinator sees them: what they declare when they enroll, their heartbeats, and
the assignment reports they send; plus the snapshots the allocator works on.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import math
import time
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from drift.orchestrator.allocator import DeviceView, NodeView, TxBand
from drift.orchestrator.states import ACTIVE_ASSIGNMENT, NodeStatus
from drift.orchestrator.storage.models import Assignment, Device, Node
from drift.protocol import Enrollment, NodeCapabilities

log = logging.getLogger(__name__)


def calibration_valid(doc: dict[str, Any] | None, now: dt.datetime | None = None) -> bool:
    """A device's calibration document (``devices.calibration``) is there and still valid."""
    if not doc:
        return False
    until = doc.get("valid_until")
    if not until:
        return True
    try:
        t = dt.datetime.fromisoformat(until)
    except (TypeError, ValueError):
        return False
    t = t if t.tzinfo else t.replace(tzinfo=dt.UTC)
    return t > (now or dt.datetime.now(dt.UTC))


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
    is read once per node (and all of it again every ``refresh_s``); status, sync, load and
    whether a device of the node holds a valid calibration record are read fresh each time."""

    def __init__(self, refresh_s: float = 60.0) -> None:
        self.refresh_s = refresh_s
        self._static: dict[uuid.UUID, NodeView] = {}
        self._read_at = -math.inf
        #: device id -> (last_calibrated, calibration document) as last read
        self._calibrations: dict[uuid.UUID, tuple[dt.datetime, dict[str, Any] | None]] = {}
        #: the views handed out by the last load, with the state they were made from
        self._views: dict[uuid.UUID, tuple[NodeView, tuple, NodeView]] = {}

    def load(self, session: Session) -> dict[str, NodeView]:
        rows = session.execute(
            select(Node.id, Node.status, Node.sync_uncertainty_s, Node.health)
        ).all()
        if time.monotonic() - self._read_at > self.refresh_s:
            self._static = self._read_static(session, None)
            self._read_at = time.monotonic()
        missing = [r[0] for r in rows if r[0] not in self._static]
        if missing:
            self._static.update(self._read_static(session, missing))
        loads = node_loads(session)
        calibrated = self._calibrated(session)
        out: dict[str, NodeView] = {}
        views = {}
        for node_id, status, sync_s, health in rows:
            static = self._static.get(node_id)
            if static is None:
                continue
            # a node whose device is lost is there, but cannot take work
            usable = status == NodeStatus.ONLINE and (health or {}).get("device_ok") is not False
            state = (usable, sync_s, loads.get(node_id, 0), node_id in calibrated)
            last = self._views.get(node_id)
            if last is not None and last[0] is static and last[1] == state:
                view = last[2]  # unchanged since the last tick (views are frozen)
            else:
                view = dataclasses.replace(
                    static,
                    online=state[0],
                    sync_uncertainty_s=sync_s,
                    load=state[2],
                    calibrated=state[3],
                )
            views[node_id] = (static, state, view)
            out[str(node_id)] = view
        self._views = views
        return out

    def _calibrated(self, session: Session) -> set[uuid.UUID]:
        """Nodes with a device whose calibration record is valid now. A record's document is
        read once (when its device's ``last_calibrated`` changes), not at every tick."""
        rows = session.execute(
            select(Device.id, Device.node_id, Device.last_calibrated).where(
                Device.last_calibrated.is_not(None)
            )
        ).all()
        known = self._calibrations
        new = [dev_id for dev_id, _, made in rows if known.get(dev_id, (None,))[0] != made]
        if new:
            for dev_id, made, doc in session.execute(
                select(Device.id, Device.last_calibrated, Device.calibration).where(
                    Device.id.in_(new)
                )
            ):
                known[dev_id] = (made, doc)
        now = dt.datetime.now(dt.UTC)
        return {
            node_id
            for dev_id, node_id, _ in rows
            if dev_id in known and calibration_valid(known[dev_id][1], now)
        }

    @staticmethod
    def _read_static(session: Session, ids: list[uuid.UUID] | None) -> dict[uuid.UUID, NodeView]:
        """Location, devices and capabilities of these nodes (None: all)."""
        dq = select(Device.node_id, Device.capabilities)
        nq = select(Node.id, Node.lat_deg, Node.lon_deg, Node.alt_m, Node.capabilities)
        if ids is not None:
            dq, nq = dq.where(Device.node_id.in_(ids)), nq.where(Node.id.in_(ids))
        devices: dict[uuid.UUID, list[DeviceView]] = {}
        for node_id, caps in session.execute(dq):
            devices.setdefault(node_id, []).append(
                DeviceView(
                    freq_min_hz=caps["freq_min_hz"],
                    freq_max_hz=caps["freq_max_hz"],
                    max_bandwidth_hz=caps["max_bandwidth_hz"],
                    tx=bool(caps.get("tx", False)),
                    channels=int(caps.get("channels") or 1),
                    array=caps.get("array") is not None,
                )
            )
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
                tx_bands=tuple(TxBand(b.low_hz, b.high_hz, b.max_power_dbm) for b in caps.tx_bands),
            )
        return out
