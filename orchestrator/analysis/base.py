"""What an analysis is given and what it gives back.

An analysis turns what a job's nodes delivered into the job's result. It is a plain function
``analyse(job: AnalysisInput, store: TimeSeriesStore) -> Result`` named by the job type in
:mod:`drift.orchestrator.registry`; :mod:`drift.orchestrator.analysis.worker` runs it in a
worker process once the job's nodes are done. It reads the frames it needs from the
time-series store, and raises :class:`AnalysisError` with a reason a user can act on when no
result can be made (the job then fails with that reason).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any


class AnalysisError(Exception):
    """No result can be made from what the nodes delivered; the message says why, for the
    job's failure reason."""


@dataclass(frozen=True)
class Delivery:
    """One node's part in a job, as the coordinator knows it."""

    node_id: str
    name: str
    lat_deg: float
    lon_deg: float
    alt_m: float
    #: the node's time source and its declared 1-sigma uncertainty
    sync_source: str
    sync_uncertainty_s: float
    #: the assignment's state: "completed" (delivered), "failed", "cancelled", "reassigned"
    state: str
    role: str = "receiver"
    error: str | None = None
    #: frames the node reported sending, by type ("psd", "detection", "iq")
    frames_sent: dict[str, int] = field(default_factory=dict)
    #: the antenna gain the node declared (capabilities.antenna_gain_dbi)
    antenna_gain_dbi: float = 0.0
    #: the node's antenna array (drift.protocol.ArrayGeometry as a dict), if it has one
    array: dict[str, Any] | None = None
    #: that array's channel calibration as its device last reported it
    #: (drift.protocol.ArrayCalibrationDoc as a dict), expired or not
    array_calibration: dict[str, Any] | None = None

    @property
    def delivered(self) -> bool:
        return self.state == "completed"


@dataclass(frozen=True)
class AnalysisInput:
    job_id: str
    job_type: str
    #: the job's stored parameters (the request model's fields but type and priority)
    parameters: dict[str, Any]
    #: every assignment the job had, one per node (the latest per node)
    deliveries: tuple[Delivery, ...]
    #: the common capture start the nodes were given (timed job types)
    capture_start: dt.datetime | None = None
    #: the job's end of capture, as recorded (why it moved to analysis)
    reason: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def delivered(self) -> list[Delivery]:
        return [d for d in self.deliveries if d.delivered]
