"""Angle of arrival: array nodes' coherent captures -> bearings -> a position.

Each array node's capture holds all its channels from one timestamp (``array_capture.grc``:
the channels interleaved sample by sample). Its channel errors are removed with the array
calibration its device last reported (``drift calibrate --array``), when that calibration is
still valid and was taken at the capture's sample rate and near its frequency; then the
bearing is estimated (``gnuradio.drift.df.estimate_bearings``: MUSIC by default, Bartlett or
MVDR on request) with element positions in wavelengths at the emitter's frequency, so it is a
true azimuth, clockwise from north.

Each bearing's standard deviation has two parts:

- the stochastic Cramer-Rao bound at the SNR measured from the covariance (the noise);
- the manifold's misfit: the phases of the covariance's principal eigenvector minus those
  of the steering vector at the bearing (a common phase removed) are what the array model
  does not explain (channel errors left, multipath); their RMS, mapped through the phase
  slopes of the elements at that bearing, is a bearing error the noise bound does not see.
  With calibrated channels it is of the order of the noise term; without calibration it is
  the channel errors themselves. Beyond 20 deg of unexplained phase the linearization no
  longer holds (the peak may be another lobe): the bearing is reported undetermined, with
  the std of a bearing uniform over the circle (104 deg), and left out of the fix. So an
  uncalibrated array reports a large std, never a confident wrong bearing.

Two or more bearings are triangulated (``df.triangulate_bearings``, weighted by their std)
into a position with its covariance and 95 % ellipse, in the result format of TDOA.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field

import numpy as np

from drift.orchestrator.analysis.base import AnalysisInput
from drift.orchestrator.analysis.results import (
    BearingMeasurement,
    BearingSpectrum,
    GeoPosition,
    LocationResult,
    NodeReport,
)
from drift.orchestrator.jobs import DirectionFindingJob

SPEED_OF_LIGHT_M_S = 299_792_458.0
#: snapshots of each capture used for the covariance
MAX_SNAPSHOTS = 1 << 18
#: a calibration measured further than this fraction of the capture's centre frequency
#: from it is not applied (channel phases change with frequency: 2.2 MHz at 434 MHz)
MAX_CALIBRATION_OFFSET = 0.005
#: sample rates this close (relative) are the same
SAME_RATE = 1e-6
#: phases the array model leaves unexplained up to this RMS move the bearing by their
#: linearized amount; beyond it the spectrum's peak may be another lobe altogether
MAX_LINEAR_MISFIT_DEG = 20.0
#: the std of a bearing the data do not determine: uniform over the circle, 360 / sqrt(12)
UNDETERMINED_STD_DEG = 360.0 / math.sqrt(12.0)


def _parse_time(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    t = dt.datetime.fromisoformat(text)
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


def array_calibration_for(
    doc: dict | None,
    elements: int,
    sample_rate_hz: float,
    center_freq_hz: float,
    at: dt.datetime,
):
    """(df.ArrayCalibration or None, why it is or is not applied)."""
    from gnuradio.drift import df

    if not doc:
        return None, "uncalibrated: the device has no array calibration"
    until = _parse_time(doc.get("valid_until"))
    if until is not None and until <= at:
        return None, f"uncalibrated: its array calibration expired at {until.isoformat()}"
    if int(doc.get("elements", 0)) != elements:
        return None, (
            f"uncalibrated: its array calibration is for {doc.get('elements')} channels, "
            f"the capture has {elements}"
        )
    rate = float(doc.get("sample_rate_hz") or 0)
    if abs(rate - sample_rate_hz) > SAME_RATE * sample_rate_hz:
        return None, (
            f"uncalibrated: its array calibration was measured at {rate:g} S/s, the capture "
            f"is at {sample_rate_hz:g} S/s (calibrate at the capture's rate)"
        )
    f_cal = float(doc.get("center_freq_hz") or 0)
    if abs(f_cal - center_freq_hz) > MAX_CALIBRATION_OFFSET * center_freq_hz:
        return None, (
            f"uncalibrated: its array calibration was measured at {f_cal / 1e6:.6g} MHz, "
            f"too far from the capture's {center_freq_hz / 1e6:.6g} MHz"
        )
    from gnuradio.drift.df import calibration

    fields = {k: doc[k] for k in calibration.FIELDS if k in doc}
    cal = df.ArrayCalibration.from_dict(fields, source="array calibration")
    measured = _parse_time(doc.get("measured"))
    when = f" measured {measured.isoformat()}" if measured else ""
    return cal, f"calibrated ({doc.get('notes') or 'array calibration'}{when})"


def manifold_misfit_deg(
    x: np.ndarray, positions_wl: np.ndarray, azimuth_deg: float
) -> tuple[float, float]:
    """(bearing error, phase misfit), both degrees: the phases the array model does not
    explain (RMS of the principal eigenvector's phases minus the steering vector's, a common
    phase removed) and the 1-sigma bearing error they amount to (the misfit over the norm
    of the elements' phase slopes at the bearing, their mean removed). Beyond
    MAX_LINEAR_MISFIT_DEG the bearing may sit on another lobe of the spectrum: it is then
    undetermined, UNDETERMINED_STD_DEG (a bearing uniform over the circle)."""
    from gnuradio.drift.df import aoa

    cov = aoa.spatial_covariance(x)
    _, vecs = np.linalg.eigh(cov)
    v = vecs[:, -1]
    a = aoa.steering_vectors(positions_wl, np.array([azimuth_deg]))[:, 0]
    r = v * np.conj(a)
    r = r * np.exp(-1j * np.angle(np.sum(r)))
    m = len(v)
    rms = math.sqrt(float(np.sum(np.angle(r) ** 2)) / max(m - 1, 1))
    az = math.radians(azimuth_deg)
    # d/d(az) of 2 pi p . u(az), u = (sin az, cos az, 0)
    p = np.asarray(positions_wl, dtype=float)
    slope = 2 * math.pi * (p[:, 0] * math.cos(az) - p[:, 1] * math.sin(az))
    slope = slope - slope.mean()
    norm = float(np.linalg.norm(slope))
    misfit = math.degrees(rms)
    if norm <= 0 or misfit > MAX_LINEAR_MISFIT_DEG:
        return UNDETERMINED_STD_DEG, misfit
    return math.degrees(rms / norm), misfit


def node_bearing(
    x: np.ndarray,
    enu_m: np.ndarray,
    freq_hz: float,
    estimator: str,
) -> tuple[BearingMeasurement, np.ndarray]:
    """One array's bearing from its (calibrated) snapshots; the measurement without its
    node and calibration fields filled in, and the element positions in wavelengths."""
    from gnuradio.drift import df

    positions_wl = np.asarray(enu_m, dtype=float) / (SPEED_OF_LIGHT_M_S / freq_hz)
    res = df.estimate_bearings(x, positions_wl, method=estimator)
    if not res.bearings:
        raise ValueError("no bearing: the pseudo-spectrum has no peak")
    b = res.bearings[0]
    model_std, misfit = manifold_misfit_deg(x, positions_wl, b.azimuth_deg)
    std = min(math.hypot(b.std_deg, model_std), UNDETERMINED_STD_DEG)
    meas = BearingMeasurement(
        node_id="",
        azimuth_deg=float(b.azimuth_deg) % 360.0,
        std_deg=float(std),
        crb_std_deg=float(b.std_deg),
        model_std_deg=float(model_std),
        phase_misfit_deg=float(misfit),
        snr_db=float(b.snr_db),
        estimator=estimator,
        snapshots=int(x.shape[1]),
        spectrum=BearingSpectrum(
            azimuth_deg=[float(a) for a in np.round(res.azimuth_grid_deg, 3)],
            power_db=[float(p) for p in np.round(res.spectrum_db, 2)],
        ),
    )
    return meas, positions_wl


def in_frame_deg(origin: GeoPosition, node, azimuth_deg: float) -> float:
    """A bearing measured from the node's own north as an azimuth in the local frame about
    `origin` (the two norths differ by the meridians' convergence: 0.03 deg for a node 3 km
    east or west at 48 deg latitude)."""
    import pymap3d

    az = math.radians(azimuth_deg)
    ahead = pymap3d.enu2geodetic(
        1000.0 * math.sin(az), 1000.0 * math.cos(az), 0.0, node.lat_deg, node.lon_deg, node.alt_m
    )
    e0, n0, _ = pymap3d.geodetic2enu(
        node.lat_deg, node.lon_deg, node.alt_m, origin.lat_deg, origin.lon_deg, origin.alt_m
    )
    e1, n1, _ = pymap3d.geodetic2enu(*ahead, origin.lat_deg, origin.lon_deg, origin.alt_m)
    return math.degrees(math.atan2(float(e1 - e0), float(n1 - n0))) % 360.0


@dataclass
class Bearings:
    """The bearings of a job's array nodes."""

    #: every bearing taken, usable or not
    measurements: list[BearingMeasurement] = field(default_factory=list)
    #: (capture, measurement) of the bearings a fix can use
    used: list[tuple] = field(default_factory=list)
    #: names of the nodes whose bearing is undetermined (shown, not used)
    undetermined: list[str] = field(default_factory=list)
    #: names of the nodes whose array was not calibrated
    uncalibrated: list[str] = field(default_factory=list)

    @property
    def uncalibrated_note(self) -> str | None:
        if not self.uncalibrated:
            return None
        return (
            "bearings of uncalibrated arrays ("
            + ", ".join(self.uncalibrated)
            + "): their std holds the channel errors the array model does not explain"
        )

    def sensors_and_azimuths(
        self, origin: GeoPosition
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The used bearings' nodes (east, north), azimuths in the local frame and stds."""
        return (
            np.stack([c.enu_m for c, _ in self.used]),
            np.array([in_frame_deg(origin, c.delivery, m.azimuth_deg) for c, m in self.used]),
            np.array([m.std_deg for _, m in self.used]),
        )


def take_bearings(spec: DirectionFindingJob, job: AnalysisInput, caps: list) -> Bearings:
    """Each array node's bearing from its capture (`caps`: location._NodeCapture), its
    calibration applied when valid; each node's report says what became of it."""
    estimator = spec.estimator or "music"
    at = job.capture_start or dt.datetime.now(dt.UTC)
    out = Bearings()
    for c in caps:
        d, cap, report = c.delivery, c.capture, c.report
        if not d.array:
            report.note = "no array: this node's device has no antenna array to take bearings"
            continue
        elements = int(d.array.get("elements", 0))
        if cap.channels != elements:
            report.note = (
                f"its capture has {cap.channels} channel(s), its array {elements} elements"
            )
            continue
        x = cap.channel_samples()[:, :MAX_SNAPSHOTS]
        report.samples = int(x.shape[1])
        cal, why = array_calibration_for(
            d.array_calibration, elements, cap.sample_rate_hz, cap.center_freq_hz, at
        )
        if cal is not None:
            x = cal.apply(x)
        try:
            meas, _ = node_bearing(x, d.array["element_enu_m"], spec.center_freq_hz, estimator)
        except ValueError as exc:
            report.note = f"no bearing: {exc}"
            continue
        meas = meas.model_copy(
            update={"node_id": d.node_id, "calibrated": cal is not None, "calibration": why}
        )
        report.snr_db = meas.snr_db
        notes = [] if cal is not None else [why]
        out.measurements.append(meas)
        if cal is None:
            out.uncalibrated.append(d.name)
        if meas.model_std_deg >= UNDETERMINED_STD_DEG:
            # in the result, but not in the fix: it could point anywhere
            notes.append(
                f"bearing undetermined: the array model leaves {meas.phase_misfit_deg:.0f} deg "
                "of channel phase unexplained; not used"
            )
            out.undetermined.append(d.name)
        else:
            report.used = True
            out.used.append((c, meas))
        report.note = "; ".join(notes) or None
    return out


def analyse_aoa(
    spec: DirectionFindingJob,
    job: AnalysisInput,
    origin: GeoPosition,
    reports: list[NodeReport],
    caps: list,
    fix_fields,
    location,
    timing,
) -> LocationResult:
    """The AoA location of a ``direction_finding`` job (see the module's docstring);
    `caps` are the delivered captures (location._NodeCapture)."""
    from gnuradio.drift import df

    b = take_bearings(spec, job, caps)
    measurements, used, undetermined = b.measurements, b.used, b.undetermined
    uncal_note = b.uncalibrated_note
    if len(used) < 2:
        return location(
            spec,
            job,
            origin,
            reports,
            usable=False,
            reason="; ".join(
                filter(
                    None,
                    [
                        f"{len(used)} of {len(job.deliveries)} nodes gave a usable bearing; "
                        "AoA needs 2 array nodes at distinct places",
                        (f"undetermined: {', '.join(undetermined)}" if undetermined else None),
                        uncal_note,
                    ],
                )
            ),
            measurements=measurements,
            capture=timing,
        )
    try:
        fix = df.triangulate_bearings(*b.sensors_and_azimuths(origin))
    except ValueError as exc:
        return location(
            spec,
            job,
            origin,
            reports,
            usable=False,
            reason="; ".join(filter(None, [f"no position: {exc}", uncal_note])),
            measurements=measurements,
            capture=timing,
        )
    return location(
        spec,
        job,
        origin,
        reports,
        reason=uncal_note,
        measurements=measurements,
        capture=timing,
        **fix_fields(fix, origin, None),
    )
