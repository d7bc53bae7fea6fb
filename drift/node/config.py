"""A node's configuration, ``node.yaml`` (see ``drift node --help`` and docs/jobs-and-nodes.md)."""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Literal
from urllib.parse import urlparse

from pydantic import BaseModel, ConfigDict, Field, model_validator

from drift import yamlconf
from drift.protocol import MAX_FREQ_HZ


class ConfigError(ValueError):
    """A node configuration that cannot be used; the message names the file and the field."""


class LocationConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    lat_deg: float = Field(ge=-90, le=90)
    lon_deg: float = Field(ge=-180, le=180)
    alt_m: float = 0.0


class SyncConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    source: Literal["gps", "pps", "ptp", "ntp", "10mhz_ref", "system"] = "system"
    uncertainty_s: float | None = Field(default=None, gt=0, le=3600)


class TransmitBand(BaseModel):
    """A band the node's licence allows it to transmit in, up to a power (at the antenna
    connector, dBm)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    low_hz: float = Field(gt=0, le=MAX_FREQ_HZ)
    high_hz: float = Field(gt=0, le=MAX_FREQ_HZ)
    max_power_dbm: float = Field(ge=-100, le=70)

    @model_validator(mode="after")
    def _range(self) -> TransmitBand:
        if self.high_hz <= self.low_hz:
            raise ValueError("high_hz must be above low_hz")
        return self


class TransmitConfig(BaseModel):
    """``transmit:`` in node.yaml: whether this node may transmit at all, where and how
    strongly. Without it (or with ``enabled: false``) the node never transmits: the
    coordinator never chooses it to, and the agent refuses a transmitting assignment."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    enabled: bool = False
    bands: list[TransmitBand] = Field(default_factory=list, max_length=64)
    #: the licence the transmissions are made under (a call sign, a licence number)
    licence: str | None = Field(
        default=None, min_length=1, max_length=100, pattern=r"^[^\x00-\x1f\x7f]+$"
    )

    @model_validator(mode="after")
    def _complete(self) -> TransmitConfig:
        if self.enabled and not self.bands:
            raise ValueError(
                "transmit.bands: a node that transmits needs at least one licensed band"
            )
        if self.enabled and not self.licence:
            raise ValueError(
                "transmit.licence: a node that transmits needs the licence it transmits under"
            )
        return self

    def allows(self, center_hz: float, bandwidth_hz: float, power_dbm: float) -> str | None:
        """None when this configuration allows the transmission, else why not."""
        if not self.enabled:
            return "transmitting is not enabled in this node's node.yaml (transmit.enabled)"
        low, high = center_hz - bandwidth_hz / 2, center_hz + bandwidth_hz / 2
        inside = [b for b in self.bands if b.low_hz <= low and high <= b.high_hz]
        if not inside:
            return (
                f"{low / 1e6:.6g}-{high / 1e6:.6g} MHz is outside this node's licensed bands "
                f"(transmit.bands: "
                + ", ".join(f"{b.low_hz / 1e6:.6g}-{b.high_hz / 1e6:.6g} MHz" for b in self.bands)
                + ")"
            )
        limit = max(b.max_power_dbm for b in inside)
        if power_dbm > limit:
            return (
                f"{power_dbm:g} dBm is over this node's licensed {limit:g} dBm in "
                f"{low / 1e6:.6g}-{high / 1e6:.6g} MHz (transmit.bands.max_power_dbm)"
            )
        return None


class ArrayConfig(BaseModel):
    """The antenna array a multi-channel device's channels feed (channel m: element m), for
    devices that cannot tell it themselves (a KrakenSDR, a two-channel Pluto or B210). A ULA
    lies along east at orientation 0 (element 0 westmost), a UCA has element 0 due north of
    its centre and the others clockwise; ``orientation_deg`` turns either clockwise seen
    from above."""

    model_config = ConfigDict(extra="forbid")
    geometry: Literal["ula", "uca"]
    elements: int = Field(ge=2, le=64)
    spacing_m: float | None = Field(default=None, gt=0, le=100)
    radius_m: float | None = Field(default=None, gt=0, le=100)
    orientation_deg: float = Field(default=0.0, ge=-360, le=360)

    @model_validator(mode="after")
    def _size(self) -> ArrayConfig:
        size, other = (
            ("spacing_m", "radius_m") if self.geometry == "ula" else ("radius_m", "spacing_m")
        )
        if getattr(self, size) is None or getattr(self, other) is not None:
            raise ValueError(f"a {self.geometry.upper()} takes {size} (and not {other})")
        return self

    @property
    def size_m(self) -> float:
        return float(self.spacing_m if self.geometry == "ula" else self.radius_m)

    def layout(self) -> dict:
        """As a device reports it (drift.protocol.ArrayGeometry)."""
        from drift.sim.synth import element_enu_m

        size = "spacing_m" if self.geometry == "ula" else "radius_m"
        return {
            "geometry": self.geometry,
            "elements": self.elements,
            size: self.size_m,
            "orientation_deg": self.orientation_deg,
            "element_enu_m": [[float(c) for c in p] for p in element_enu_m(self)],
        }


class AgentConfig(BaseModel):
    """``node.yaml``."""

    model_config = ConfigDict(extra="forbid")

    #: the coordinator's base URL: https://coordinator.example.org:8000 (TLS; the node then
    #: authenticates with its certificate), or http://127.0.0.1:8000 on one machine
    coordinator: str = Field(pattern=r"^https?://[^/\s]+(/\S*)?$")
    #: the CA (PEM) that signed the coordinator's server certificate; default: the system's
    #: trusted CAs. Relative paths are relative to this file.
    ca_file: Path | None = None
    #: one-time enrollment token from an admin (only needed until the node has a credential)
    enrollment_token: str | None = None
    name: str = Field(default_factory=platform.node, min_length=1, max_length=100)
    #: device string of the device layer (driver=rtlsdr,..., osmosdr:..., sim=FILE,node=ID)
    device: str
    #: where the node is; simulated nodes default to their scenario position
    location: LocationConfig | None = None
    sync: SyncConfig | None = None
    #: the antenna array of a multi-channel device (``channels=M`` in its device string);
    #: simulated array nodes default to their scenario's
    array: ArrayConfig | None = None
    #: where this agent keeps its credential, spool and job directories
    state_dir: Path = Path("./var/node")
    #: the collector's ZeroMQ endpoint; default: the coordinator's host, port 5560
    collector: str | None = None
    heartbeat_interval_s: float = Field(default=2.0, gt=0, le=600)
    heartbeat_timeout_s: float | None = Field(default=None, gt=0, le=3600)
    #: keep a WebSocket to the coordinator (heartbeats, assignments pushed at once); false:
    #: HTTP only (a heartbeat and an assignment poll every interval), e.g. behind a proxy
    #: that does not pass WebSockets
    channel: bool = True
    max_jobs: int = Field(default=1, ge=1, le=64)
    #: extra seconds a flowgraph may run past its job's duration before it is stopped
    grace_s: float = Field(default=30.0, ge=0)
    #: a timed capture's flowgraph is launched this long before the capture's start, so that
    #: its device streams when the start comes (it drops the samples before it)
    capture_prestart_s: float = Field(default=3.0, ge=0, le=600)
    #: after the device was lost, how often to check whether it is back (plugged in again)
    device_probe_interval_s: float = Field(default=30.0, gt=0, le=86400)
    #: custom_flowgraph jobs (uploaded .grc files, which are Python run as this agent's
    #: user): "approved" runs those an admin of the coordinator approved, and only the
    #: approved bytes (checked by their SHA-256); "refuse" runs none, and reports why
    custom_flowgraphs: Literal["refuse", "approved"] = "approved"
    #: the antenna's gain (dBi), taken out of path-loss measurements; simulated nodes default
    #: to their scenario's, others to 0
    antenna_gain_dbi: float | None = Field(default=None, ge=-30, le=40)
    #: whether, where and how strongly this node may transmit (propagation tests)
    transmit: TransmitConfig = Field(default_factory=TransmitConfig)

    @property
    def tls(self) -> bool:
        return self.coordinator.startswith("https://")

    @property
    def collector_endpoint(self) -> str:
        if self.collector:
            return self.collector
        host = urlparse(self.coordinator).hostname or "127.0.0.1"
        return f"tcp://{host}:5560"


def load_config(path: str | Path) -> AgentConfig:
    path = Path(path)
    try:
        cfg = yamlconf.load(path, AgentConfig)
    except yamlconf.YamlError as exc:
        raise ConfigError(str(exc)) from None
    if not cfg.state_dir.is_absolute():
        cfg.state_dir = (path.parent / cfg.state_dir).resolve()
    if cfg.ca_file is not None:
        if not cfg.ca_file.is_absolute():
            cfg.ca_file = (path.parent / cfg.ca_file).resolve()
        if not cfg.ca_file.is_file():
            raise ConfigError(f"{path}: ca_file: {cfg.ca_file}: no such file")
    return cfg
