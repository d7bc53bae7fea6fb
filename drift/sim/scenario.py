"""Scenario files: YAML validated with pydantic; errors name the file, the line and the field.

Top-level keys: seed, propagation, emitters, nodes, and epoch (when the positions hold;
needed when an emitter moves). Every entity has an id and a position
{lat, lon, alt} (degrees, metres). See examples/scenarios/ for a complete file.
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


class Node(_Model):
    id: str = Field(min_length=1)
    position: Position
    device: str
    noise_figure_db: float = Field(6.0, ge=0, le=40)
    antenna_gain_dbi: float = Field(0.0, ge=-30, le=40)
    gain_db: float | None = Field(None, description="receiver gain; None: a sensible default")
    gain_error_db: float = Field(0.0, ge=-20, le=20,
                                 description="actual minus nominal gain: what calibration finds")
    clock: Clock = Clock()

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
        None, description="when the positions hold (moving emitters move from there); UTC")
    propagation: Propagation = Propagation()
    emitters: list[Emitter] = Field(default_factory=list)
    nodes: list[Node] = Field(min_length=1)

    @model_validator(mode="after")
    def epoch_for_motion(self):
        moving = [e.id for e in self.emitters if e.velocity is not None]
        if moving and self.epoch is None:
            raise ValueError(f"emitters with a velocity ({', '.join(moving)}) need the "
                             "scenario's epoch: the time their positions hold")
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
        root, data = yamlconf.parse(text, name, "a mapping with seed, propagation, emitters, "
                                    "nodes")
    except yamlconf.YamlError as exc:
        raise ScenarioError(str(exc)) from None
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        # waveform union members are not part of the path a user writes
        raise ScenarioError(str(yamlconf.describe(exc, root, name, lambda loc: tuple(
            p for p in loc if not (isinstance(p, str) and p in WAVEFORM_TAGS))))) from None


def load_scenario(path: str) -> Scenario:
    try:
        with open(path) as f:
            text = f.read()
    except OSError as exc:
        raise ScenarioError(f"{path}: {exc.strerror}") from None
    return parse_scenario(text, path)
