"""Scenario files: YAML validated with pydantic; errors name the file, the line and the field.

Top-level keys: seed, propagation, emitters, nodes, and epoch (when the positions hold;
needed when an emitter moves). Every entity has an id and a position
{lat, lon, alt} (degrees, metres). A node may be a coherent array (`array:`, see Array).
See examples/scenarios/ for complete files and docs/simulator.md for the format.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .. import hardware, yamlconf

WAVEFORM_TAGS = ("cw", "fm", "chirp", "psk", "noise", "ofdm")


class ScenarioError(ValueError):
    """An invalid scenario; the message names the file, the line and the field."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Position(_Model):
    lat: float = Field(ge=-90, le=90, description="latitude, degrees (WGS84)")
    lon: float = Field(ge=-180, le=180, description="longitude, degrees (WGS84)")
    alt: float = Field(0.0, ge=-500, le=100e3, description="height above the ellipsoid, m")


class Velocity(_Model):
    east_mps: float = 0.0
    north_mps: float = 0.0
    up_mps: float = 0.0


class Schedule(_Model):
    """On/off pattern: on for duty_cycle * period_s of every period, starting at offset_s."""

    period_s: float = Field(1.0, gt=0)
    duty_cycle: float = Field(1.0, gt=0, le=1)
    offset_s: float = 0.0


class Cw(_Model):
    type: Literal["cw"]


class Fm(_Model):
    type: Literal["fm"]
    audio: Literal["tone", "noise"] = "tone"
    audio_freq_hz: float = Field(1e3, gt=0, description="tone frequency")
    audio_bandwidth_hz: float = Field(15e3, gt=0, description="noise audio bandwidth")
    deviation_hz: float = Field(75e3, gt=0)


class Chirp(_Model):
    type: Literal["chirp"]
    bandwidth_hz: float = Field(gt=0)
    period_s: float = Field(gt=0)


class Psk(_Model):
    type: Literal["psk"]
    order: Literal[2, 4] = 2
    symbol_rate_hz: float = Field(gt=0)
    rolloff: float = Field(0.35, gt=0, le=1)


class Noise(_Model):
    type: Literal["noise"]
    bandwidth_hz: float = Field(gt=0)


class Ofdm(_Model):
    type: Literal["ofdm"]
    subcarriers: int = Field(64, ge=2, le=4096)
    spacing_hz: float = Field(15e3, gt=0)
    cp_fraction: float = Field(0.07, ge=0, lt=1)


Waveform = Annotated[Cw | Fm | Chirp | Psk | Noise | Ofdm, Field(discriminator="type")]


class Emitter(_Model):
    id: str = Field(min_length=1)
    position: Position
    frequency_hz: float = Field(gt=0)
    eirp_dbm: float = Field(ge=-100, le=100)
    waveform: Waveform
    schedule: Schedule = Schedule()
    velocity: Velocity | None = None


class Clock(_Model):
    offset_s: float = Field(0.0, description="node time minus true time at t = 0")
    drift_ppm: float = Field(0.0, ge=-1000, le=1000)
    lo_error_ppm: float = Field(0.0, ge=-1000, le=1000)
    source: Literal["gps", "ptp", "ntp", "none"] = "gps"
    uncertainty_s: float = Field(20e-9, ge=0)


class GainTilt(_Model):
    """A front end's gain error that grows linearly with the tuned centre frequency: at
    centre f the gain error is gain_error_db + db_per_mhz * (f - center_hz) / 1e6."""

    db_per_mhz: float = Field(ge=-10, le=10)
    center_hz: float = Field(gt=0)


class RandomErrors(_Model):
    """Per-channel errors drawn from a seeded normal distribution (seed: the scenario's)."""

    sigma: float = Field(ge=0, description="standard deviation of each channel's error")


ChannelErrors = list[float] | RandomErrors


class Array(_Model):
    """A coherent multi-channel receiver (KrakenSDR-like): M antennas, one LO and one clock.

    Element positions are East-North-Up offsets from the node's position. At orientation 0 a
    ULA lies west to east (element 0 westmost, broadside north) and a UCA has element 0 due
    north of the centre, the others clockwise; orientation_deg turns the array clockwise seen
    from above. This is the layout of gnuradio.drift.df.aoa.ula_positions/uca_positions, so
    NodeReceiver.element_positions_wl() can be handed to the AoA estimators directly.
    Sizes are in metres (spacing_m, radius_m) or in wavelengths at design_frequency_hz
    (spacing_wl, radius_wl).

    Channel errors (each a list of M values or {sigma: S} for seeded random ones): phase_deg
    and gain_db multiply a channel's whole output (signal and noise) by gain * exp(j phase);
    delay_samples delays a channel's output stream by that many samples of the stream's rate
    (fractional allowed; positive: later), as an inter-channel buffer offset does.
    """

    geometry: Literal["ula", "uca"]
    elements: int = Field(ge=2, le=64)
    spacing_m: float | None = Field(None, gt=0, description="ULA element spacing")
    spacing_wl: float | None = Field(None, gt=0, description="ULA spacing in wavelengths")
    radius_m: float | None = Field(None, gt=0, description="UCA radius")
    radius_wl: float | None = Field(None, gt=0, description="UCA radius in wavelengths")
    design_frequency_hz: float | None = Field(None, gt=0, description="frequency of the _wl sizes")
    orientation_deg: float = 0.0
    phase_deg: ChannelErrors = Field(default_factory=list)
    gain_db: ChannelErrors = Field(default_factory=list)
    delay_samples: ChannelErrors = Field(default_factory=list)

    @model_validator(mode="after")
    def consistent(self):
        if self.geometry == "ula":
            sizes, other = ("spacing_m", "spacing_wl"), ("radius_m", "radius_wl")
        else:
            sizes, other = ("radius_m", "radius_wl"), ("spacing_m", "spacing_wl")
        given = [f for f in sizes if getattr(self, f) is not None]
        if len(given) != 1:
            raise ValueError(f"a {self.geometry.upper()} needs exactly one of {' or '.join(sizes)}")
        wrong = [f for f in other if getattr(self, f) is not None]
        if wrong:
            raise ValueError(f"{wrong[0]} does not apply to a {self.geometry.upper()}")
        if given[0].endswith("_wl") and self.design_frequency_hz is None:
            raise ValueError(
                f"{given[0]} needs design_frequency_hz (the frequency of the wavelength)"
            )
        for name in ("phase_deg", "gain_db", "delay_samples"):
            v = getattr(self, name)
            if isinstance(v, list) and v and len(v) != self.elements:
                raise ValueError(f"{name} has {len(v)} values for {self.elements} elements")
        return self

    @property
    def size_m(self) -> float:
        """ULA spacing or UCA radius in metres."""
        for f in ("spacing_m", "radius_m"):
            if getattr(self, f) is not None:
                return getattr(self, f)
        wl = 299_792_458.0 / self.design_frequency_hz
        return (self.spacing_wl if self.spacing_wl is not None else self.radius_wl) * wl


class Node(_Model):
    id: str = Field(min_length=1)
    position: Position
    device: str
    noise_figure_db: float = Field(6.0, ge=0, le=40)
    antenna_gain_dbi: float = Field(0.0, ge=-30, le=40)
    gain_db: float | None = Field(None, description="receiver gain; None: a sensible default")
    gain_error_db: float = Field(
        0.0, ge=-20, le=20, description="actual minus nominal gain: what calibration finds"
    )
    gain_tilt: GainTilt | None = Field(
        None, description="a gain error that changes with the tuned frequency"
    )
    clock: Clock = Clock()
    array: Array | None = Field(None, description="a coherent multi-channel array receiver")

    @property
    def channels(self) -> int:
        return 1 if self.array is None else self.array.elements

    @field_validator("device")
    @classmethod
    def known_device(cls, value: str) -> str:
        hardware.model(value)  # raises with the list of models
        return value

    @property
    def model(self) -> hardware.HardwareModel:
        return hardware.model(self.device)


class Propagation(_Model):
    model: Literal["free_space", "log_distance"] = "free_space"
    exponent: float = Field(2.0, ge=1, le=6)
    reference_distance_m: float = Field(1.0, gt=0)
    shadowing_sigma_db: float = Field(0.0, ge=0, le=20)


class Scenario(_Model):
    seed: int = Field(ge=0, lt=2**63)
    epoch: dt.datetime | None = Field(
        None, description="when the positions hold (moving emitters move from there); UTC"
    )
    propagation: Propagation = Propagation()
    emitters: list[Emitter] = Field(default_factory=list)
    nodes: list[Node] = Field(min_length=1)

    @model_validator(mode="after")
    def epoch_for_motion(self):
        moving = [e.id for e in self.emitters if e.velocity is not None]
        if moving and self.epoch is None:
            raise ValueError(
                f"emitters with a velocity ({', '.join(moving)}) need the "
                "scenario's epoch: the time their positions hold"
            )
        return self

    @property
    def epoch_s(self) -> float:
        """The epoch as UNIX seconds (0 when none is given)."""
        if self.epoch is None:
            return 0.0
        e = self.epoch if self.epoch.tzinfo else self.epoch.replace(tzinfo=dt.UTC)
        return e.timestamp()

    @model_validator(mode="after")
    def unique_ids(self):
        ids = [e.id for e in self.emitters] + [n.id for n in self.nodes]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"ids must be unique, repeated: {', '.join(dupes)}")
        return self

    def node(self, node_id: str) -> Node:
        for n in self.nodes:
            if n.id == node_id:
                return n
        raise ValueError(f"no node {node_id!r} in the scenario: {[n.id for n in self.nodes]}")


def parse_scenario(text: str, name: str = "<scenario>") -> Scenario:
    try:
        root, data = yamlconf.parse(text, name, "a mapping with seed, propagation, emitters, nodes")
    except yamlconf.YamlError as exc:
        raise ScenarioError(str(exc)) from None
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        # waveform union members are not part of the path a user writes
        raise ScenarioError(
            str(
                yamlconf.describe(
                    exc,
                    root,
                    name,
                    lambda loc: tuple(
                        p for p in loc if not (isinstance(p, str) and p in WAVEFORM_TAGS)
                    ),
                )
            )
        ) from None


def load_scenario(path: str) -> Scenario:
    try:
        with open(path) as f:
            text = f.read()
    except OSError as exc:
        raise ScenarioError(f"{path}: {exc.strerror}") from None
    return parse_scenario(text, path)
