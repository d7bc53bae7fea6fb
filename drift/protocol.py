"""The node protocol: what node agents and the coordinator say to each other, as pydantic models
used by both ends (the agent builds and reads them; the API validates and serves them).

Enrollment and heartbeats (``POST /nodes/enroll``, ``POST /nodes/{id}/heartbeat`` and the
channel's ``heartbeat`` messages), assignments as a node receives them and the reports it sends
back, and the node channel's path, close codes and messages (see
:mod:`drift.node.channel` for the conversation). Nothing here touches a database.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from drift.curve import KEY_PATTERN

#: Highest frequency any supported device tunes to (USRP B210, HackRF: 6 GHz), with margin.
MAX_FREQ_HZ = 7.0e9

#: Printable text without control characters (PostgreSQL refuses NUL in text).
Name = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=1, max_length=100, pattern=r"^[^\x00-\x1f\x7f]+$"
    ),
]

#: a PEM certificate signing request (checked by the CA when it signs)
CSR = Annotated[
    str,
    StringConstraints(
        min_length=1, max_length=8192, pattern=r"^-----BEGIN CERTIFICATE REQUEST-----"
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


#: the most elements an array device reports
MAX_ARRAY_ELEMENTS = 64


class ArrayGeometry(_Strict):
    """A coherent array's layout (one clock and LO for every channel): element m is channel
    m, at ``element_enu_m[m]`` (east, north, up, metres from the node's position). A ULA
    lies along east at orientation 0 (element 0 westmost), a UCA has element 0 due north of
    its centre and the others clockwise; ``orientation_deg`` turns either clockwise seen
    from above."""

    geometry: Literal["ula", "uca"]
    elements: int = Field(ge=2, le=MAX_ARRAY_ELEMENTS)
    #: ULA: element spacing
    spacing_m: float | None = Field(default=None, gt=0, le=100)
    #: UCA: radius
    radius_m: float | None = Field(default=None, gt=0, le=100)
    orientation_deg: float = Field(default=0.0, ge=-360, le=360)
    element_enu_m: list[tuple[float, float, float]] = Field(max_length=MAX_ARRAY_ELEMENTS)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        size = "spacing_m" if self.geometry == "ula" else "radius_m"
        if getattr(self, size) is None:
            raise ValueError(f"{size}: a {self.geometry.upper()} needs it")
        if len(self.element_enu_m) != self.elements:
            raise ValueError(
                f"element_enu_m: {len(self.element_enu_m)} positions for {self.elements} elements"
            )
        if any(not abs(c) <= 100 for p in self.element_enu_m for c in p):
            raise ValueError("element_enu_m: every offset within 100 m of the node")
        return self


class DeviceSpec(_Strict):
    driver: Name
    serial: Name | None = None
    freq_min_hz: float = Field(gt=0, le=MAX_FREQ_HZ)
    freq_max_hz: float = Field(gt=0, le=MAX_FREQ_HZ)
    max_bandwidth_hz: float = Field(gt=0, le=1e9)
    tx: bool = False
    #: coherent receive channels (one clock, one LO)
    channels: int = Field(default=1, ge=1, le=MAX_ARRAY_ELEMENTS)
    #: the antenna array the channels feed (a device with several channels and no array
    #: cannot measure bearings)
    array: ArrayGeometry | None = None

    @model_validator(mode="after")
    def _range(self) -> Self:
        if self.freq_max_hz <= self.freq_min_hz:
            raise ValueError("freq_max_hz must be above freq_min_hz")
        if self.array is not None and self.array.elements != self.channels:
            raise ValueError(f"array: {self.array.elements} elements but {self.channels} channels")
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
    #: the licence the node transmits under (a call sign, a licence number)
    tx_licence: Name | None = None
    #: the gain of the node's antenna (dBi), taken out of path-loss measurements
    antenna_gain_dbi: float = Field(default=0.0, ge=-30, le=40)


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


#: A CurveZMQ public key: 32 bytes as 40 characters of Z85 (see drift.curve)
CurveKey = Annotated[str, StringConstraints(pattern=KEY_PATTERN)]


class Enrollment(_Strict):
    """What a node sends with its one-time enrollment token."""

    token: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    name: Name
    location: Location
    devices: list[DeviceSpec] = Field(min_length=1, max_length=32)
    capabilities: NodeCapabilities = Field(default_factory=NodeCapabilities)
    sync: SyncState = Field(default_factory=SyncState)
    heartbeat_timeout_s: float | None = Field(default=None, gt=0, le=3600)
    #: a certificate signing request (PEM) on a key the node made: the coordinator returns a
    #: client certificate for it (see drift.orchestrator.pki)
    csr: CSR | None = None
    #: the public half of the Curve key pair the node made for the data plane (its secret
    #: half never leaves the node); frames reach the collector from this key only
    curve_public_key: CurveKey | None = None

    @model_validator(mode="after")
    def _transmit_claim(self) -> Self:
        """A node claims to transmit only as its node.yaml's ``transmit`` section says: opted
        in, with its licensed bands and licence, on a device that can transmit there. A claim
        short of that is refused, not stored."""
        caps = self.capabilities
        if not caps.tx_opt_in:
            if caps.tx_bands or caps.tx_licence:
                raise ValueError(
                    "capabilities.tx_bands, tx_licence: given without tx_opt_in "
                    "(transmit.enabled in the node's node.yaml)"
                )
            return self
        if not caps.tx_bands:
            raise ValueError("capabilities.tx_bands: a node that transmits needs licensed bands")
        if not caps.tx_licence:
            raise ValueError("capabilities.tx_licence: a node that transmits needs its licence")
        tx_devices = [d for d in self.devices if d.tx]
        if not tx_devices:
            raise ValueError("capabilities.tx_opt_in: none of the node's devices can transmit")
        for i, b in enumerate(caps.tx_bands):
            if not any(
                d.freq_min_hz <= b.low_hz and b.high_hz <= d.freq_max_hz for d in tx_devices
            ):
                raise ValueError(
                    f"capabilities.tx_bands.{i}: {b.low_hz:g}-{b.high_hz:g} Hz is outside what "
                    "the node's transmitting devices tune to"
                )
        return self


class CertificateRequest(_Strict):
    """What a node sends to renew its certificate (``POST /nodes/{id}/certificate``): a CSR
    on a new key, before the current certificate expires, and the public half of a new Curve
    key pair (the data-plane key is rotated with the certificate, in one step)."""

    csr: CSR
    #: none keeps the node's current Curve key
    curve_public_key: CurveKey | None = None


class CurveKeyUpdate(_Strict):
    """A node's new Curve public key (``PUT /nodes/{id}/curve-key``)."""

    curve_public_key: CurveKey


class DataPlane(BaseModel):
    """How a node sends its frames to the collector: with the enrollment answer and at
    ``GET /nodes/{id}/data-plane``."""

    #: "curve": the relay is a CurveZMQ client of the collector, with the node's own key
    #: pair; "insecure": plaintext (the coordinator was configured so)
    security: Literal["curve", "insecure"]
    #: the collector's Curve public key (with "curve")
    server_public_key: CurveKey | None = None
    #: the public key the coordinator holds for this node (none: not registered yet)
    node_public_key: CurveKey | None = None
    #: the collector refuses larger frames (all three parts together)
    max_frame_bytes: int = Field(gt=0)


#: the most devices a node enrolls (and reports metrics and calibration for)
MAX_DEVICES = 32


class DeviceMetrics(_Strict):
    """One device's state as the agent last saw it (the overview's ``device_metrics``). A
    device is named as the node enrolled it (driver, serial); the coordinator keeps metrics of
    enrolled devices only. Counts are since the agent started; a field the device cannot
    tell (no temperature sensor, no device time to count lost samples by) is None."""

    driver: Name
    serial: Name | None = None
    #: board temperature from the device's sensor, degrees Celsius
    temperature_c: float | None = Field(default=None, ge=-60, le=150)
    #: the sample rate of the running capture (None: not streaming)
    sample_rate_hz: float | None = Field(default=None, gt=0, le=1e9)
    #: samples the device lost (counted from gaps in its time stamps)
    dropped_samples: int | None = Field(default=None, ge=0, le=2**62)
    #: overflows the driver reported
    overflows: int = Field(default=0, ge=0, le=2**62)
    #: the device clock's 1-sigma uncertainty as its sensor says (None: no such sensor)
    sync_uncertainty_s: float | None = Field(default=None, ge=0, le=3600)
    clock_locked: bool | None = None


class ArrayCalibrationDoc(_Strict):
    """An array device's channel errors against channel 0, measured from a reference at a
    known place (``drift calibrate --array``); removed from the channels before bearings are
    estimated. The format of ``gnuradio.drift.df.ArrayCalibration`` files, with its times."""

    elements: int = Field(ge=2, le=MAX_ARRAY_ELEMENTS)
    phase_deg: list[Annotated[float, Field(ge=-360, le=360)]] = Field(max_length=MAX_ARRAY_ELEMENTS)
    gain_db: list[Annotated[float, Field(ge=-60, le=60)]] = Field(max_length=MAX_ARRAY_ELEMENTS)
    delay_samples: list[Annotated[float, Field(ge=-1e6, le=1e6)]] = Field(
        max_length=MAX_ARRAY_ELEMENTS
    )
    sample_rate_hz: float = Field(gt=0, le=1e9)
    center_freq_hz: float = Field(gt=0, le=MAX_FREQ_HZ)
    interp_half_taps: int = Field(default=16, ge=1, le=256)
    measured: dt.datetime
    valid_until: dt.datetime | None = None
    #: how it was measured (the reference, its bearing)
    notes: Annotated[str, StringConstraints(max_length=500, pattern=r"^[^\x00]*$")] = ""

    @model_validator(mode="after")
    def _lengths(self) -> Self:
        for name in ("phase_deg", "gain_db", "delay_samples"):
            if len(getattr(self, name)) != self.elements:
                raise ValueError(f"{name}: {self.elements} values needed, one per channel")
        if any(t is not None and t.tzinfo is None for t in (self.measured, self.valid_until)):
            raise ValueError("measured, valid_until: with a time zone")
        return self


class DeviceCalibration(_Strict):
    """A device's calibration record (written by ``drift calibrate``), as the agent reports
    it: the coordinator keeps it in the devices table."""

    driver: Name
    serial: Name | None = None
    #: LO error, ppm (actual minus nominal, over nominal)
    lo_error_ppm: float = Field(ge=-1000, le=1000)
    #: the PSD offset (dBFS -> dBm at the antenna) by frequency: (Hz, dB) points
    gain_points: list[tuple[Annotated[float, Field(gt=0, le=MAX_FREQ_HZ)], float]] = Field(
        default_factory=list, max_length=64
    )
    #: when the record was started
    created: dt.datetime
    #: its latest accepted measurement (a record gathers several); none: when created
    measured: dt.datetime | None = None
    valid_until: dt.datetime | None = None
    #: an array device's channel calibration (``drift calibrate --array``), valid on its own
    array: ArrayCalibrationDoc | None = None

    @model_validator(mode="after")
    def _gains(self) -> Self:
        if any(not -100 <= db <= 100 for _, db in self.gain_points):
            raise ValueError("gain_points: offsets must be within +-100 dB")
        times = (self.created, self.measured, self.valid_until)
        if any(t is not None and t.tzinfo is None for t in times):
            raise ValueError("created, measured, valid_until: with a time zone")
        return self

    @property
    def gain_offset_db(self) -> float | None:
        """The offset at the lowest measured frequency (what a one-point record holds)."""
        return min(self.gain_points)[1] if self.gain_points else None


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
    #: per device: temperature, sample rate, losses, sync (see DeviceMetrics)
    devices: list[DeviceMetrics] = Field(default_factory=list, max_length=MAX_DEVICES)
    last_error: Annotated[str, StringConstraints(max_length=500, pattern=r"^[^\x00]*$")] | None = (
        None
    )


class Heartbeat(_Strict):
    sync: SyncState | None = None
    health: NodeHealth | None = None
    #: the devices' calibration records: sent when they change (and now and then again);
    #: none leaves what the coordinator holds as it is
    calibration: list[DeviceCalibration] | None = Field(default=None, max_length=MAX_DEVICES)


# --- assignments -------------------------------------------------------------------------------

AssignmentStateName = Literal[
    "assigned", "running", "completed", "failed", "cancelled", "reassigned"
]


class NodeAssignment(BaseModel):
    """An assignment as the node's agent needs it to run the flowgraph."""

    id: uuid.UUID
    job_id: uuid.UUID
    job_type: str
    template: str
    role: str
    state: AssignmentStateName
    attempts: int
    priority: int
    parameters: dict[str, Any]
    #: the absolute instant the node starts capturing (job types whose nodes capture
    #: together); None: at once
    start_time: dt.datetime | None = None
    #: true the first time this attempt of the assignment is handed to its node, through any
    #: coordinator replica; later reads are repeats
    first_delivery: bool = True


class Transmission(_Strict):
    """What a node transmitted for an assignment, as it logged it: the band, the power, the
    licence, the job's window and when the transmission really ended, and what ended it
    ("flowgraph": it ran its course; "watchdog": the node stopped it at the job's end)."""

    center_hz: float = Field(gt=0, le=MAX_FREQ_HZ)
    bandwidth_hz: float = Field(ge=0, le=1e9)
    power_dbm: float = Field(ge=-100, le=70)
    licence: Name | None = None
    planned_start: dt.datetime
    planned_end: dt.datetime
    ended: dt.datetime | None = None
    stopped_by: Annotated[str, StringConstraints(max_length=40, pattern=r"^[a-z ()]+$")]


class AssignmentReport(_Strict):
    state: Literal["running", "completed", "failed"]
    error: Annotated[str, StringConstraints(max_length=2000, pattern=r"^[^\x00]*$")] | None = None
    #: with "completed": the frames sent for the assignment, by type (the job's analysis
    #: waits until the coordinator has stored them)
    frames: (
        dict[Literal["psd", "detection", "iq"], Annotated[int, Field(ge=0, le=1 << 40)]] | None
    ) = None
    #: with "failed": the node's device is gone (unplugged, stopped streaming); the
    #: coordinator moves the work to another node instead of retrying it here
    device_lost: bool = False
    #: with "completed" or "failed" of a transmitting assignment: what it transmitted
    transmission: Transmission | None = None


# --- the node channel ---------------------------------------------------------------------------

#: the channel's WebSocket path under /api/v1
CHANNEL_PATH = "/nodes/{node_id}/channel"

CLOSE_UNAUTHORIZED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_TOO_SLOW = 4408
CLOSE_REPLACED = 4409


class HeartbeatMessage(Heartbeat):
    type: Literal["heartbeat"]
    seq: int = Field(ge=0, le=2**63 - 1)


def channel_url(coordinator: str, node_id: str) -> str:
    """ws(s)://host:port/api/v1/nodes/{id}/channel for an http(s):// coordinator URL."""
    base = coordinator.rstrip("/")
    if base.startswith("https://"):
        base = "wss://" + base[len("https://") :]
    elif base.startswith("http://"):
        base = "ws://" + base[len("http://") :]
    return base + "/api/v1" + CHANNEL_PATH.format(node_id=node_id)
