"""Job requests: one pydantic model per job type, units in the field names.

The models validate what a client submits (``POST /api/v1/jobs``); the registry in
:mod:`drift.orchestrator.registry` ties each one to its allocator strategy and flowgraph template.
Every model refuses unknown fields, NaN and infinities, so nothing the database or a node cannot
take gets stored.
"""

from __future__ import annotations

from typing import Annotated, Literal, Self
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from drift.protocol import MAX_FREQ_HZ

MAX_DURATION_S = 7 * 24 * 3600.0
MAX_NODES = 256

FrequencyHz = Annotated[float, Field(gt=0, le=MAX_FREQ_HZ)]
DurationS = Annotated[float, Field(gt=0, le=MAX_DURATION_S)]
Priority = Annotated[int, Field(ge=0, le=100, description="higher runs first")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)


class AreaOfInterest(_Strict):
    """A circle on the ground where the emitter is expected."""

    lat_deg: float = Field(ge=-90, le=90)
    lon_deg: float = Field(ge=-180, le=180)
    radius_m: float = Field(default=1000.0, gt=0, le=500_000)


class JobBase(_Strict):
    priority: Priority = 0


class SpectrumScanJob(JobBase):
    """Calibrated PSD over a frequency range, swept in hops, on 1..N geographically spread nodes."""

    type: Literal["spectrum_scan"] = "spectrum_scan"
    start_freq_hz: FrequencyHz
    stop_freq_hz: FrequencyHz
    bin_hz: float = Field(gt=0, le=10e6)
    duration_s: DurationS
    interval_s: float = Field(default=1.0, gt=0, le=3600)
    node_count: int = Field(default=1, ge=1, le=MAX_NODES)
    #: run on exactly these nodes instead of letting the allocator choose
    node_ids: list[UUID] | None = Field(default=None, min_length=1, max_length=MAX_NODES)
    gain_db: float | None = Field(default=None, ge=-20, le=100)

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.stop_freq_hz <= self.start_freq_hz:
            raise ValueError("stop_freq_hz must be above start_freq_hz")
        if self.bin_hz > self.stop_freq_hz - self.start_freq_hz:
            raise ValueError("bin_hz must not exceed the span stop_freq_hz - start_freq_hz")
        if self.interval_s > self.duration_s:
            raise ValueError("interval_s must not exceed duration_s")
        if self.node_ids is not None and len(set(self.node_ids)) != len(self.node_ids):
            raise ValueError("node_ids must not repeat a node")
        return self


#: The fewest nodes each direction-finding method can fix a position with.
#: (hybrid: one array node's bearing and two timing nodes' TDOA, a ray and a hyperbola)
DF_MIN_NODES = {"tdoa": 3, "aoa": 2, "rss": 3, "hybrid": 3}

#: The widest band a node captures for direction finding (ADALM-Pluto, USRP B210: 56 MHz).
MAX_CAPTURE_BANDWIDTH_HZ = 56e6
#: A direction-finding capture samples this much faster than the span of the signals it must
#: hold, where the device allows (room for the filters' roll-off).
CAPTURE_MARGIN = 0.25
#: The longest direction-finding capture, in samples per node (128 MiB of complex64).
MAX_CAPTURE_SAMPLES = 1 << 24


class ReferenceTransmitter(_Strict):
    """A transmitter at a known position whose signal every node hears: its arrival times
    give the nodes' clock offsets (and LO offsets), so unsynchronised nodes can do TDOA."""

    lat_deg: float = Field(ge=-90, le=90)
    lon_deg: float = Field(ge=-180, le=180)
    alt_m: float = Field(default=0.0, ge=-500, le=20_000)
    center_freq_hz: FrequencyHz
    bandwidth_hz: float = Field(gt=0, le=MAX_CAPTURE_BANDWIDTH_HZ)
    #: search the nodes' LO offsets up to this: 0 for receivers whose LOs are disciplined
    #: (GPS, 10 MHz reference); a few ppm of the frequency for free-running ones (RTL-SDR)
    max_freq_offset_hz: float = Field(default=0.0, ge=0, le=100e3)


class DirectionFindingJob(JobBase):
    """Locate an emitter: TDOA across synchronised nodes (or unsynchronised ones with a
    reference transmitter), AoA from arrays, both at once (hybrid: array nodes' bearings
    and synchronised single-channel nodes' TDOAs in one fit), RSS otherwise. Every node
    captures the same
    band from the same absolute instant; the coordinator's analysis turns the captures into
    a position with its uncertainty."""

    type: Literal["direction_finding"] = "direction_finding"
    center_freq_hz: FrequencyHz
    bandwidth_hz: float = Field(gt=0, le=MAX_CAPTURE_BANDWIDTH_HZ)
    method: Literal["tdoa", "aoa", "rss", "hybrid"] = "tdoa"
    area: AreaOfInterest
    #: how long every node captures (the captures start together)
    duration_s: DurationS
    node_count: int = Field(default=4, ge=2, le=MAX_NODES)
    #: how far from the area's centre a node may be and still take part
    max_range_m: float = Field(default=50_000.0, gt=0, le=2_000_000)
    #: the clock uncertainty a node may have for TDOA (1-sigma); with a reference
    #: transmitter the clocks are measured, so any node may take part
    max_sync_uncertainty_s: float = Field(default=1e-6, gt=0, le=3600.0)
    #: a transmitter at a known position, heard in the same capture (TDOA only)
    reference: ReferenceTransmitter | None = None
    #: AoA and hybrid: the bearing estimator of each array node (None: MUSIC)
    estimator: Literal["music", "bartlett", "mvdr"] | None = None
    #: hybrid only: how many of the node_count nodes are array nodes (bearings); the others
    #: are synchronised single-channel nodes (TDOA). None: node_count // 2, at least 1
    array_nodes: int | None = Field(default=None, ge=1, le=MAX_NODES)

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.node_count < DF_MIN_NODES[self.method]:
            raise ValueError(
                f"node_count must be at least {DF_MIN_NODES[self.method]} for {self.method}"
            )
        if self.center_freq_hz - self.bandwidth_hz / 2 <= 0:
            raise ValueError("bandwidth_hz reaches below 0 Hz around center_freq_hz")
        if self.reference is not None and self.method != "tdoa":
            raise ValueError("reference: only TDOA uses a reference transmitter")
        if self.estimator is not None and self.method not in ("aoa", "hybrid"):
            raise ValueError("estimator: only AoA and hybrid jobs estimate bearings")
        if self.array_nodes is not None:
            if self.method != "hybrid":
                raise ValueError("array_nodes: only hybrid jobs mix array and timing nodes")
            if self.array_nodes > self.node_count - 2:
                raise ValueError(
                    f"array_nodes must leave at least 2 of node_count ({self.node_count}) "
                    "for TDOA: at most "
                    f"{self.node_count - 2}"
                )
        center, width = self.capture_band_hz
        if width > MAX_CAPTURE_BANDWIDTH_HZ:
            raise ValueError(
                f"reference: the capture must hold the emitter and the reference, "
                f"{width / 1e6:.3g} MHz; no supported device captures more than "
                f"{MAX_CAPTURE_BANDWIDTH_HZ / 1e6:g} MHz"
            )
        if center - width / 2 <= 0:
            raise ValueError("reference: the capture band reaches below 0 Hz")
        rate = width * (1 + CAPTURE_MARGIN)
        samples = self.duration_s * rate
        if samples > MAX_CAPTURE_SAMPLES:
            raise ValueError(
                f"duration_s: {self.duration_s:g} s at {rate / 1e6:.3g} MS/s is "
                f"{samples:.3g} samples a node; the limit is {MAX_CAPTURE_SAMPLES} "
                f"({MAX_CAPTURE_SAMPLES / rate:.3g} s at this bandwidth)"
            )
        return self

    @property
    def array_count(self) -> int:
        """Hybrid: the array nodes it takes (the rest time the signal); 0 for other methods."""
        if self.method != "hybrid":
            return 0
        return self.array_nodes or max(1, self.node_count // 2)

    @property
    def capture_band_hz(self) -> tuple[float, float]:
        """(centre, width) of the band every node captures: the emitter's, and the
        reference's when there is one (both in one capture)."""
        lo = self.center_freq_hz - self.bandwidth_hz / 2
        hi = self.center_freq_hz + self.bandwidth_hz / 2
        if self.reference is not None:
            r = self.reference
            lo = min(lo, r.center_freq_hz - r.bandwidth_hz / 2)
            hi = max(hi, r.center_freq_hz + r.bandwidth_hz / 2)
        return (lo + hi) / 2, hi - lo


class PropagationTestJob(JobBase):
    """One node transmits a sounding signal; receivers at varied distances measure the path."""

    type: Literal["propagation_test"] = "propagation_test"
    freq_hz: FrequencyHz
    bandwidth_hz: float = Field(default=100e3, gt=0, le=56e6)
    tx_power_dbm: float = Field(ge=-60, le=50)
    duration_s: DurationS
    #: transmit from this node instead of letting the allocator choose
    tx_node_id: UUID | None = None
    receiver_count: int = Field(default=3, ge=1, le=MAX_NODES)
    max_sync_uncertainty_s: float = Field(default=1e-6, gt=0, le=1.0)
    #: what the transmitter sends: a carrier, or a PN sequence of BPSK chips at half the band
    waveform: Literal["cw", "pn"] = "cw"

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.freq_hz - self.bandwidth_hz / 2 <= 0:
            raise ValueError("bandwidth_hz reaches below 0 Hz around freq_hz")
        return self


ParameterName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")]
ParameterValue = (
    bool | int | float | Annotated[str, StringConstraints(max_length=1000, pattern=r"^[^\x00]*$")]
)


class CustomFlowgraphJob(JobBase):
    """Run an uploaded, admin-approved ``.grc`` template; its parameter blocks are the schema
    of ``parameters`` (checked against the template when the job is submitted)."""

    type: Literal["custom_flowgraph"] = "custom_flowgraph"
    template_id: UUID
    #: the SHA-256 of the approved template's content: set when the job is accepted (a
    #: client may pin it), and nodes run only content with this hash
    template_sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    parameters: dict[ParameterName, ParameterValue] = Field(default_factory=dict, max_length=64)
    #: the band the flowgraph tunes across: nodes must cover it
    start_freq_hz: FrequencyHz
    stop_freq_hz: FrequencyHz
    duration_s: DurationS
    node_count: int = Field(default=1, ge=1, le=MAX_NODES)
    node_ids: list[UUID] | None = Field(default=None, min_length=1, max_length=MAX_NODES)

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.stop_freq_hz <= self.start_freq_hz:
            raise ValueError("stop_freq_hz must be above start_freq_hz")
        if self.node_ids is not None and len(set(self.node_ids)) != len(self.node_ids):
            raise ValueError("node_ids must not repeat a node")
        return self
