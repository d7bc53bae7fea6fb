"""The results jobs end with, as pydantic models, and their GeoJSON.

One model per kind of result, told apart by ``kind``: a direction-finding job's
:class:`LocationResult` (a position with its uncertainty, made for TDOA, RSS and bearings alike,
and for fusing them: every measurement is a typed entry of ``measurements``), a spectrum scan's
:class:`ScanResult` (signals merged across nodes) and a custom flowgraph's
:class:`FramesResult` (what each node delivered). They are stored as JSON in ``job_results``
and served by ``GET /api/v1/jobs/{id}/result``; :func:`to_geojson` gives the GeoJSON of the ones
with a place on the map.
"""

from __future__ import annotations

import datetime as dt
import math
import uuid
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from drift.orchestrator.detections import MergedSignal


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class GeoPosition(_Model):
    """WGS84."""

    lat_deg: float
    lon_deg: float
    alt_m: float = 0.0


class Ellipse(_Model):
    """A horizontal confidence ellipse about the position."""

    semi_major_m: float
    semi_minor_m: float
    #: azimuth of the major axis, clockwise from north, [0, 180)
    orientation_deg: float
    confidence: float = 0.95


class FixQuality(_Model):
    """How well the measurements fit the solution, and how the geometry scales errors."""

    #: weighted squared residual at the solution; about `dof` when the stated measurement
    #: errors are right
    chi2: float | None = None
    #: measurements minus unknowns
    dof: int = 0
    #: probability of a chi2 at least this large if the model holds (None when dof is 0)
    p_value: float | None = None
    #: geometric dilution of precision: horizontal position error per unit of ranging error
    gdop: float | None = None


class NodeReport(_Model):
    """One node's part in a location: where it was, when it captured, what it heard."""

    node_id: str
    name: str
    position: GeoPosition
    #: the assignment's end: "completed" (it delivered), "failed", "cancelled", "reassigned"
    state: str
    #: whether its capture went into the fix
    used: bool
    sync_source: str
    #: 1-sigma uncertainty of its clock, as it declared it
    time_uncertainty_s: float
    first_sample_time: dt.datetime | None = None
    #: the same, as UNIX seconds (its clock)
    first_sample_unix_s: float | None = None
    #: the first sample's time minus the job's common capture start (its clock)
    start_offset_s: float | None = None
    samples: int | None = None
    sample_rate_hz: float | None = None
    #: per-sample signal-to-noise ratio in the emitter's band
    snr_db: float | None = None
    #: why it was not used, or what went wrong
    note: str | None = None


class TdoaMeasurement(_Model):
    """Arrival time at `node_id` minus at `reference_node_id`, clock offsets removed."""

    kind: Literal["tdoa"] = "tdoa"
    node_id: str
    reference_node_id: str
    delay_s: float
    #: the total 1-sigma: the delay estimate's and the clocks'
    std_s: float
    #: the delay estimate's own 1-sigma (predicted from the measured spectra)
    estimate_std_s: float
    psr_db: float | None = None
    snr_db: float | None = None


class PowerMeasurement(_Model):
    """Calibrated received power of the emitter's band at one node (noise removed)."""

    kind: Literal["rss"] = "rss"
    node_id: str
    power_dbm: float
    #: in-band noise power the measurement was corrected for
    noise_dbm: float
    snr_db: float


class BearingSpectrum(_Model):
    """An array's pseudo-spectrum over azimuth (its maximum at 0 dB)."""

    azimuth_deg: list[float]
    power_db: list[float]


class BearingMeasurement(_Model):
    """Angle of arrival at an array node: a true azimuth, clockwise from north."""

    kind: Literal["bearing"] = "bearing"
    node_id: str
    azimuth_deg: float
    #: the total 1-sigma: the noise's (CRB) and the array model's misfit together
    std_deg: float
    #: the stochastic Cramer-Rao bound at the measured SNR and snapshots
    crb_std_deg: float | None = None
    #: the bearing error the phases the array model does not explain amount to (channel
    #: errors left, multipath): large for an uncalibrated array
    model_std_deg: float | None = None
    #: RMS of the channel phases the array model leaves unexplained at the bearing
    phase_misfit_deg: float | None = None
    #: per element, estimated from the covariance
    snr_db: float | None = None
    #: music, bartlett or mvdr
    estimator: str | None = None
    snapshots: int | None = None
    #: whether the array's channel calibration was applied
    calibrated: bool = False
    #: which calibration, or why none was applied
    calibration: str | None = None
    spectrum: BearingSpectrum | None = None


Measurement = Annotated[
    TdoaMeasurement | PowerMeasurement | BearingMeasurement, Field(discriminator="kind")
]


class ClockOffset(_Model):
    """A node's clock minus the reference node's, measured from the reference transmitter."""

    node_id: str
    offset_s: float
    std_s: float
    freq_offset_hz: float | None = None


class CaptureTiming(_Model):
    """How well the nodes' captures started together."""

    planned_start: dt.datetime
    #: the latest first sample minus the earliest (each on its node's clock)
    first_sample_spread_s: float
    #: the largest |first sample - planned start|
    max_start_offset_s: float


class MethodFix(_Model):
    """One method's own fix from a hybrid job's measurements (its TDOAs alone, its bearings
    alone), beside the fused one: what combining them gained."""

    method: Literal["tdoa", "aoa"]
    usable: bool
    reason: str | None = None
    position: GeoPosition | None = None
    ellipse_95: Ellipse | None = None
    covariance_enu_m2: list[list[float]] | None = None
    quality: FixQuality | None = None


class ResultBase(_Model):
    job_id: uuid.UUID
    #: when the analysis stored it; set by the analysis worker
    created_at: dt.datetime | None = None
    #: CPU seconds the analysis took
    analysis_cpu_s: float | None = None


class LocationResult(ResultBase):
    """Where the emitter is: a position with its covariance and 95 % ellipse, or, when the
    measurements cannot give one, ``usable: false`` and the reason (never a confident wrong
    answer)."""

    kind: Literal["location"] = "location"
    method: Literal["tdoa", "rss", "aoa", "hybrid"]
    usable: bool
    #: why the fix is unusable, or what limits it
    reason: str | None = None
    position: GeoPosition | None = None
    ellipse_95: Ellipse | None = None
    #: east/north covariance (m^2) in the local frame about `origin`
    covariance_enu_m2: list[list[float]] | None = None
    #: origin of the local east/north frame of the covariance: the nodes' centroid
    origin: GeoPosition
    quality: FixQuality | None = None
    nodes: list[NodeReport]
    measurements: list[Measurement] = Field(default_factory=list)
    clock_offsets: list[ClockOffset] | None = None
    #: hybrid: each method's own fix from the same measurements
    components: list[MethodFix] | None = None
    capture: CaptureTiming | None = None
    center_freq_hz: float
    bandwidth_hz: float
    reference: dict[str, Any] | None = None


class ScanNode(_Model):
    node_id: str
    name: str
    position: GeoPosition
    #: the assignment's end: "completed" (it delivered), "failed", "cancelled", "reassigned"
    state: str
    #: PSD frames (hops) it sent
    psd_frames: int
    #: signals it detected (tracks)
    detections: int


class ScanResult(ResultBase):
    """A spectrum scan's signals, merged across nodes (one signal seen by three nodes is one
    entry with three sightings); the spectrum itself is at ``GET /spectrum/{job_id}``."""

    kind: Literal["scan"] = "scan"
    start_freq_hz: float
    stop_freq_hz: float
    #: the frequency resolution the detections were merged at (the nodes' widest bin)
    bin_hz: float
    signals: list[MergedSignal]
    nodes: list[ScanNode]


class FramesNode(_Model):
    node_id: str
    name: str
    state: str
    #: frames stored, by frame type ("psd", "detection", "iq")
    frames: dict[str, int]
    #: frames missing from the sequence numbers
    lost: int


class FramesResult(ResultBase):
    """What each node of a custom flowgraph delivered."""

    kind: Literal["frames"] = "frames"
    nodes: list[FramesNode]


class PropagationLink(_Model):
    """The path from the transmitter to one receiver, as the receiver measured it."""

    node_id: str
    name: str
    position: GeoPosition
    #: the assignment's end: "completed" (it delivered), "failed", "cancelled", "reassigned"
    state: str
    #: straight-line (3-D) distance from the transmitter
    distance_m: float
    #: calibrated power in the test band at the receiver's antenna connector (noise removed)
    received_power_dbm: float | None = None
    noise_power_dbm: float | None = None
    snr_db: float | None = None
    #: EIRP (transmit power plus the transmitter's antenna gain) minus the received power
    #: less the receiver's antenna gain: the path's own loss
    path_loss_db: float | None = None
    #: the same path in free space (Friis), and the measured loss above it
    free_space_loss_db: float
    excess_loss_db: float | None = None
    #: the transmitter's antenna gain and this receiver's, as their nodes declared them
    rx_antenna_gain_dbi: float = 0.0
    #: when the measured capture began (the receiver's clock), and how long it is
    first_sample_time: dt.datetime | None = None
    measured_s: float | None = None
    note: str | None = None


class PathLossFit(_Model):
    """Log-distance model over the receivers: PL(d) = FSPL(d0) + 10 n log10(d / d0) + X,
    X ~ N(0, sigma), with free space at d0 = 1 m as the reference (free space is n = 2)."""

    reference_distance_m: float = 1.0
    #: free-space loss at the reference distance (fixed, not fitted)
    reference_loss_db: float
    exponent: float
    #: 1-sigma of the fitted exponent (from the residuals; None with one receiver)
    exponent_std: float | None = None
    #: the residuals' standard deviation (the shadowing), None with fewer than 2 receivers
    shadowing_sigma_db: float | None = None
    receivers: int


class PropagationResult(ResultBase):
    """A propagation test: per receiver the path loss and distance, and a log-distance fit."""

    kind: Literal["propagation"] = "propagation"
    usable: bool
    reason: str | None = None
    freq_hz: float
    bandwidth_hz: float
    waveform: str
    tx_power_dbm: float
    tx_antenna_gain_dbi: float = 0.0
    eirp_dbm: float
    transmitter: dict[str, Any]
    #: the job's common start and its duration
    start_time: dt.datetime | None = None
    duration_s: float
    links: list[PropagationLink]
    fit: PathLossFit | None = None


JobResultBody = Annotated[
    LocationResult | ScanResult | FramesResult | PropagationResult, Field(discriminator="kind")
]


# --- GeoJSON -----------------------------------------------------------------------------


def _point(p: GeoPosition) -> dict[str, Any]:
    return {"type": "Point", "coordinates": [p.lon_deg, p.lat_deg, p.alt_m]}


def ellipse_ring(center: GeoPosition, ellipse: Ellipse, n_points: int = 72) -> list[list[float]]:
    """The ellipse as a closed ring of [lon, lat] (counter-clockwise, RFC 7946), drawn in the
    local east/north plane about its centre."""
    import pymap3d

    az = math.radians(ellipse.orientation_deg)
    ring = []
    for k in range(n_points):
        t = -2 * math.pi * k / n_points  # counter-clockwise on the map
        a = ellipse.semi_major_m * math.cos(t)
        b = ellipse.semi_minor_m * math.sin(t)
        east = a * math.sin(az) + b * math.cos(az)
        north = a * math.cos(az) - b * math.sin(az)
        lat, lon, _ = pymap3d.enu2geodetic(
            east, north, 0.0, center.lat_deg, center.lon_deg, center.alt_m
        )
        ring.append([float(lon), float(lat)])
    ring.append(ring[0])
    return ring


def _node_feature(
    node_id: str, name: str, position: GeoPosition, props: dict[str, Any]
) -> dict[str, Any]:
    return {
        "type": "Feature",
        "id": f"node-{node_id}",
        "geometry": _point(position),
        "properties": {"role": "node", "node_id": node_id, "name": name, **props},
    }


def _bearing_reach_m(result: LocationResult) -> float:
    """How far a bearing line is drawn: past the fix (or across the nodes when none)."""
    import pymap3d

    nodes = [n.position for n in result.nodes]
    far = 1000.0
    for a in nodes:
        for b in [*nodes, *([result.position] if result.position is not None else [])]:
            e, n, _ = pymap3d.geodetic2enu(
                b.lat_deg, b.lon_deg, b.alt_m, a.lat_deg, a.lon_deg, a.alt_m
            )
            far = max(far, math.hypot(float(e), float(n)))
    return 1.5 * far


def _bearing_line(start: GeoPosition, azimuth_deg: float, length_m: float) -> list[list[float]]:
    import pymap3d

    az = math.radians(azimuth_deg)
    lat, lon, _ = pymap3d.enu2geodetic(
        length_m * math.sin(az),
        length_m * math.cos(az),
        0.0,
        start.lat_deg,
        start.lon_deg,
        start.alt_m,
    )
    return [[start.lon_deg, start.lat_deg], [float(lon), float(lat)]]


def to_geojson(
    result: LocationResult | ScanResult | FramesResult | PropagationResult,
) -> dict[str, Any]:
    """A FeatureCollection: for a location, the fix as a Point (with its properties), its 95 %
    ellipse as a Polygon (a hybrid fix's methods' own ellipses too, role
    ``component_ellipse``), each bearing as a LineString from its node, each node as a Point
    (and the reference transmitter); for a scan, each node as a Point with what it detected;
    for a propagation test, the transmitter and each receiver as Points and each link as a
    LineString with its loss. Raises ValueError for results with no place
    on the map."""
    features: list[dict[str, Any]] = []
    if isinstance(result, LocationResult):
        if result.usable and result.position is not None:
            props = {
                "role": "fix",
                "job_id": str(result.job_id),
                "method": result.method,
                "center_freq_hz": result.center_freq_hz,
                "ellipse_95": result.ellipse_95.model_dump() if result.ellipse_95 else None,
                "quality": result.quality.model_dump() if result.quality else None,
            }
            features.append(
                {
                    "type": "Feature",
                    "id": "fix",
                    "geometry": _point(result.position),
                    "properties": props,
                }
            )
            if result.ellipse_95 is not None:
                features.append(
                    {
                        "type": "Feature",
                        "id": "ellipse_95",
                        "geometry": {
                            "type": "Polygon",
                            "coordinates": [ellipse_ring(result.position, result.ellipse_95)],
                        },
                        "properties": {
                            "role": "ellipse",
                            "confidence": 0.95,
                            **result.ellipse_95.model_dump(),
                        },
                    }
                )
        for comp in result.components or []:
            if comp.usable and comp.position is not None and comp.ellipse_95 is not None:
                features.append(
                    {
                        "type": "Feature",
                        "id": f"ellipse_95-{comp.method}",
                        "geometry": {
                            "type": "Polygon",
                            "coordinates": [ellipse_ring(comp.position, comp.ellipse_95)],
                        },
                        "properties": {
                            "role": "component_ellipse",
                            "method": comp.method,
                            **comp.ellipse_95.model_dump(),
                        },
                    }
                )
        positions = {node.node_id: node.position for node in result.nodes}
        reach = _bearing_reach_m(result)
        for m in result.measurements:
            if isinstance(m, BearingMeasurement) and m.node_id in positions:
                features.append(
                    {
                        "type": "Feature",
                        "id": f"bearing-{m.node_id}",
                        "geometry": {
                            "type": "LineString",
                            "coordinates": _bearing_line(
                                positions[m.node_id], m.azimuth_deg, reach
                            ),
                        },
                        "properties": {
                            "role": "bearing",
                            "node_id": m.node_id,
                            "azimuth_deg": m.azimuth_deg,
                            "std_deg": m.std_deg,
                            "calibrated": m.calibrated,
                        },
                    }
                )
        for node in result.nodes:
            features.append(
                _node_feature(
                    node.node_id,
                    node.name,
                    node.position,
                    {
                        "state": node.state,
                        "used": node.used,
                        "sync_source": node.sync_source,
                        "time_uncertainty_s": node.time_uncertainty_s,
                        "snr_db": node.snr_db,
                        "first_sample_time": (
                            node.first_sample_time.isoformat() if node.first_sample_time else None
                        ),
                    },
                )
            )
        if result.reference is not None:
            r = result.reference
            features.append(
                {
                    "type": "Feature",
                    "id": "reference",
                    "geometry": _point(
                        GeoPosition(
                            lat_deg=r["lat_deg"], lon_deg=r["lon_deg"], alt_m=r.get("alt_m", 0.0)
                        )
                    ),
                    "properties": {"role": "reference", **r},
                }
            )
        return {
            "type": "FeatureCollection",
            "features": features,
            "properties": {
                "job_id": str(result.job_id),
                "kind": result.kind,
                "usable": result.usable,
                "reason": result.reason,
            },
        }
    if isinstance(result, ScanResult):
        for node in result.nodes:
            seen = [
                {"center_freq_hz": s.center_freq_hz, "power_dbm": sg.power_dbm}
                for s in result.signals
                for sg in s.sightings
                if sg.node_id == node.node_id
            ]
            features.append(
                _node_feature(
                    node.node_id,
                    node.name,
                    node.position,
                    {"state": node.state, "psd_frames": node.psd_frames, "signals": seen},
                )
            )
        return {
            "type": "FeatureCollection",
            "features": features,
            "properties": {"job_id": str(result.job_id), "kind": result.kind},
        }
    if isinstance(result, PropagationResult):
        tx = result.transmitter
        tx_pos = GeoPosition(**tx["position"])
        features.append(
            _node_feature(
                tx["node_id"],
                tx["name"],
                tx_pos,
                {
                    "role": "transmitter",
                    "state": tx["state"],
                    "eirp_dbm": result.eirp_dbm,
                    "freq_hz": result.freq_hz,
                },
            )
        )
        for link in result.links:
            features.append(
                _node_feature(
                    link.node_id,
                    link.name,
                    link.position,
                    {
                        "role": "receiver",
                        "state": link.state,
                        "received_power_dbm": link.received_power_dbm,
                    },
                )
            )
            features.append(
                {
                    "type": "Feature",
                    "id": f"link-{link.node_id}",
                    "geometry": {
                        "type": "LineString",
                        "coordinates": [
                            [tx_pos.lon_deg, tx_pos.lat_deg, tx_pos.alt_m],
                            [link.position.lon_deg, link.position.lat_deg, link.position.alt_m],
                        ],
                    },
                    "properties": {
                        "role": "link",
                        "node_id": link.node_id,
                        "name": link.name,
                        "distance_m": link.distance_m,
                        "path_loss_db": link.path_loss_db,
                        "free_space_loss_db": link.free_space_loss_db,
                        "excess_loss_db": link.excess_loss_db,
                        "snr_db": link.snr_db,
                    },
                }
            )
        return {
            "type": "FeatureCollection",
            "features": features,
            "properties": {
                "job_id": str(result.job_id),
                "kind": result.kind,
                "usable": result.usable,
                "reason": result.reason,
                "fit": result.fit.model_dump() if result.fit else None,
            },
        }
    raise ValueError(f"a {result.kind} result has no place on a map")
