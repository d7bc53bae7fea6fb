"""Hybrid direction finding: array nodes' bearings and timing nodes' TDOAs in one fit.

A ``direction_finding`` job with ``method: hybrid`` runs on two kinds of node, chosen by the
allocator: array nodes (role ``array``), which capture every channel of their array
(``array_capture.grc``) and give a bearing each, exactly as in an AoA job
(:mod:`drift.orchestrator.analysis.aoa`: calibration applied, MUSIC by default, the std from
the CRB and the array model's misfit); and synchronised single-channel nodes (role
``receiver``), whose captures are correlated against the first of them as in a TDOA job
(GCC-ML, each delay's std from its spectra, the clocks' variances added). An array's channels
each have their own delay, calibrated only against one another, so an array node gives its
bearing, not its timing.

``df.locate_hybrid`` fits one position to all of them, each weighted by its own variance: the
covariance is the inverse of the TDOAs' and the bearings' Fisher information summed, so the
fused ellipse is never larger than either method's alone. One bearing and one TDOA already
fix a point (a ray meets a hyperbola), where the ray crosses the hyperbola's branch once.

Beside the fused fix, ``components`` holds each method's own fix from the same measurements
(TDOA alone when three or more timing nodes delivered, its branch the one nearest the fused
fix; bearings alone when two or more arrays gave one), for a map and for judging what
combining them gained.
"""

from __future__ import annotations

import functools
import logging

import numpy as np

from drift.orchestrator.allocator import ARRAY
from drift.orchestrator.analysis.aoa import take_bearings
from drift.orchestrator.analysis.base import AnalysisInput
from drift.orchestrator.analysis.location import (
    _capture_timing,
    _fix_fields,
    _location,
    _named,
    _NodeCapture,
    _span_s,
    band_snr,
    free_search_s,
    tdoa_measurements,
    timed_captures,
)
from drift.orchestrator.analysis.results import (
    GeoPosition,
    LocationResult,
    MethodFix,
    NodeReport,
)
from drift.orchestrator.jobs import DirectionFindingJob

log = logging.getLogger(__name__)

#: the fewest samples two captures must share to be correlated
MIN_COMMON_SAMPLES = 1024


class _Tdoas:
    """The timing nodes' TDOAs against the first of them, with their covariance."""

    def __init__(self, caps: list[_NodeCapture], tdoa_s, cov_s2, estimates):
        self.caps = caps
        self.sensors = np.stack([c.enu_m for c in caps])
        self.tdoa_s = np.asarray(tdoa_s, dtype=float)
        self.cov_s2 = np.asarray(cov_s2, dtype=float)
        self.estimates = estimates


def _measure_tdoas(
    spec: DirectionFindingJob, caps: list[_NodeCapture]
) -> tuple[_Tdoas | None, str | None]:
    """(the TDOAs, None) or (None, why there are none)."""
    from gnuradio.drift import df

    if len(caps) < 2:
        return None, (
            f"{len(caps)} timing node(s) delivered a capture: a TDOA needs 2 synchronised nodes"
        )
    fs, captures = timed_captures(caps)
    span_s = _span_s(np.stack([c.enu_m for c in caps]))
    try:
        aligned = df.align_captures(captures, MIN_COMMON_SAMPLES)
        td = df.tdoa_from_captures(aligned, 0, None, free_search_s(captures, span_s))
    except ValueError as exc:
        return None, f"no TDOA: {_named(str(exc), caps)}"
    clock = np.array([c.time_std_s for c in captures])
    cov = df.tdoa_covariance(td.std_s, clock, 0, td.others)
    band_snr(caps, fs, spec.center_freq_hz - caps[0].capture.center_freq_hz, spec.bandwidth_hz)
    for c in caps:
        c.report.used = True
    return _Tdoas(caps, td.tdoa_s, cov, td.estimates), None


def _component(method: str, fit, origin: GeoPosition) -> MethodFix:
    """One method's own fix: fit() gives a df.PositionFix or raises ValueError (the reason)."""
    try:
        fix = fit()
    except ValueError as exc:
        return MethodFix(method=method, usable=False, reason=f"no position: {exc}")
    return MethodFix(method=method, **_fix_fields(fix, origin, None))


def analyse_hybrid(
    spec: DirectionFindingJob,
    job: AnalysisInput,
    origin: GeoPosition,
    reports: list[NodeReport],
    caps: list[_NodeCapture],
) -> LocationResult:
    """The hybrid location of a ``direction_finding`` job (see the module's docstring)."""
    from gnuradio.drift import df

    arrays = [c for c in caps if c.delivery.role == ARRAY]
    timers = [c for c in caps if c.delivery.role != ARRAY]
    timing = _capture_timing(job, caps)
    bearings = take_bearings(spec, job, arrays)
    tdoas, no_tdoa = _measure_tdoas(spec, timers)
    measurements = [
        *(
            tdoa_measurements(tdoas.caps, tdoas.tdoa_s, tdoas.cov_s2, tdoas.estimates)
            if tdoas
            else []
        ),
        *bearings.measurements,
    ]
    problems = []
    if no_tdoa:
        problems.append(no_tdoa)
    if not bearings.used:
        problems.append(
            f"none of the {len(arrays)} array node(s) that delivered gave a usable bearing"
            + (
                f" (undetermined: {', '.join(bearings.undetermined)})"
                if bearings.undetermined
                else ""
            )
        )
    components = []
    b_sensors = b_az = b_std = None
    if bearings.used:
        b_sensors, b_az, b_std = bearings.sensors_and_azimuths(origin)
    if len(bearings.used) >= 2:
        components.append(
            _component("aoa", lambda: df.triangulate_bearings(b_sensors, b_az, b_std), origin)
        )

    def add_tdoa_component(initial_enu_m=None) -> None:
        """The TDOAs' own fix, first among the components (three nodes or more)."""
        if tdoas is not None and len(tdoas.caps) >= 3:
            fit = functools.partial(
                df.locate_tdoa,
                tdoas.sensors,
                tdoas.tdoa_s,
                tdoa_cov_s2=tdoas.cov_s2,
                initial_enu_m=initial_enu_m,
            )
            components.insert(0, _component("tdoa", fit, origin))

    def unusable(reason: str) -> LocationResult:
        add_tdoa_component()
        return _location(
            spec,
            job,
            origin,
            reports,
            usable=False,
            reason="; ".join(filter(None, [reason, bearings.uncalibrated_note])),
            measurements=measurements,
            components=components or None,
            capture=timing,
        )

    if problems:
        return unusable("hybrid needs TDOAs and bearings: " + "; ".join(problems))
    try:
        fix = df.locate_hybrid(tdoas.sensors, tdoas.tdoa_s, tdoas.cov_s2, b_sensors, b_az, b_std)
    except ValueError as exc:
        log.info("job %s: no hybrid fix: %s", job.job_id, exc)
        return unusable(f"no position: {_named(str(exc), caps)}")
    add_tdoa_component(initial_enu_m=fix.position_enu_m)
    disagree = None
    if fix.dof > 0 and fix.p_value < 0.01:
        disagree = (
            f"the TDOAs (chi2 {fix.extra['tdoa_chi2']:.1f}) and bearings (chi2 "
            f"{fix.extra['bearing_chi2']:.1f}) fit worse than their stated errors allow "
            f"(p = {fix.p_value:.2g}): multipath, a clock or an array off its calibration"
        )
    return _location(
        spec,
        job,
        origin,
        reports,
        reason="; ".join(filter(None, [disagree, bearings.uncalibrated_note])) or None,
        measurements=measurements,
        components=components or None,
        capture=timing,
        **_fix_fields(fix, origin, None),
    )
