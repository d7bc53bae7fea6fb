"""The analysis of ``direction_finding`` jobs: the nodes' timed IQ captures -> a position.

TDOA: each node's capture is read back from the time-series store with the time of its first
sample on the node's clock; the captures are cut to their common window, cross-correlated
pairwise against the first node (GCC, ``gnuradio.drift.df``: ML weighting over whole
captures, plain over a band, each delay with its predicted standard deviation), and the TDOAs
solved for a position whose covariance holds both the delay estimates' and the clocks'
variances. With a reference transmitter in the job, the clock offsets (and, when asked, the
LO offsets) are measured from its signal first and removed, and their own uncertainty replaces
the clocks'. TDOAs that no position can produce (clocks too far apart for their stated
uncertainty) give ``usable: false`` with the reason, never a fix.

RSS: the calibrated received power in the emitter's band at each node (noise removed),
fitted to a log-distance path-loss model with shadowing; its ellipse is honest, so large.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pymap3d

from drift.orchestrator.analysis.base import AnalysisError, AnalysisInput, Delivery
from drift.orchestrator.analysis.results import (
    CaptureTiming,
    ClockOffset,
    Ellipse,
    FixQuality,
    GeoPosition,
    LocationResult,
    NodeReport,
    PowerMeasurement,
    TdoaMeasurement,
)
from drift.orchestrator.jobs import DF_MIN_NODES, DirectionFindingJob

log = logging.getLogger(__name__)

SPEED_OF_LIGHT_M_S = 299_792_458.0
#: at most this many samples of each capture are correlated (a longer capture adds little:
#: the delay's standard deviation falls with the square root of the samples)
MAX_ANALYSIS_SAMPLES = 1 << 20
#: RSS: shadowing assumed when too few nodes to estimate it (typical of built-up areas)
RSS_SHADOWING_DB = 6.0
#: RSS: the path-loss exponent assumed when too few nodes to fit it (free space)
RSS_EXPONENT = 2.0


@dataclass
class _NodeCapture:
    delivery: Delivery
    enu_m: np.ndarray
    capture: object  # drift.orchestrator.timeseries.IqCapture
    report: NodeReport


def _frame(deliveries: Sequence[Delivery]) -> GeoPosition:
    """The local frame's origin: the nodes' centroid."""
    return GeoPosition(
        lat_deg=float(np.mean([d.lat_deg for d in deliveries])),
        lon_deg=float(np.mean([d.lon_deg for d in deliveries])),
        alt_m=float(np.mean([d.alt_m for d in deliveries])),
    )


def _enu(origin: GeoPosition, lat: float, lon: float, alt: float) -> np.ndarray:
    e, n, _ = pymap3d.geodetic2enu(lat, lon, alt, origin.lat_deg, origin.lon_deg, origin.alt_m)
    return np.array([float(e), float(n)])


def _geodetic(origin: GeoPosition, enu: np.ndarray) -> GeoPosition:
    lat, lon, alt = pymap3d.enu2geodetic(
        float(enu[0]), float(enu[1]), 0.0, origin.lat_deg, origin.lon_deg, origin.alt_m
    )
    return GeoPosition(lat_deg=float(lat), lon_deg=float(lon), alt_m=float(alt))


def _offset_s(whole: int, frac: float, start: dt.datetime) -> float:
    """(whole + frac) - start, exact to well under a nanosecond at UNIX scale."""
    ref_whole = math.floor(start.timestamp())
    ref_frac = (start - dt.datetime.fromtimestamp(ref_whole, dt.UTC)).total_seconds()
    return (whole - ref_whole) + (frac - ref_frac)


def band_power(
    samples: np.ndarray, sample_rate_hz: float, offset_hz: float, bandwidth_hz: float
) -> tuple[float, float]:
    """(signal power, noise power) in the band [offset -+ bandwidth / 2] about the capture's
    centre, in the samples' units squared: a Welch PSD, the noise density from the bins
    outside the band (the median, robust to other signals), the signal the in-band excess."""
    from scipy import signal

    nper = int(min(4096, max(256, 2 ** math.floor(math.log2(max(samples.size // 16, 256))))))
    f, psd = signal.welch(
        samples,
        fs=sample_rate_hz,
        nperseg=nper,
        return_onesided=False,
        scaling="density",
        detrend=False,
    )
    bin_hz = sample_rate_hz / nper
    inside = np.abs(f - offset_hz) <= bandwidth_hz / 2
    outside = np.abs(f - offset_hz) > bandwidth_hz / 2 + 2 * bin_hz
    noise_density = (
        float(np.median(psd[outside])) if outside.sum() >= 8 else float(np.percentile(psd, 10))
    )
    noise = noise_density * inside.sum() * bin_hz
    signal_power = max(float(np.sum(psd[inside]) * bin_hz) - noise, 0.0)
    return signal_power, noise


def _reports(
    job: AnalysisInput, origin: GeoPosition, store
) -> tuple[list[NodeReport], list[_NodeCapture]]:
    """A report for every node of the job, and the captures of those that delivered one."""
    reports, captures = [], []
    for d in job.deliveries:
        report = NodeReport(
            node_id=d.node_id,
            name=d.name,
            position=GeoPosition(lat_deg=d.lat_deg, lon_deg=d.lon_deg, alt_m=d.alt_m),
            state=d.state,
            used=False,
            sync_source=d.sync_source,
            time_uncertainty_s=d.sync_uncertainty_s,
        )
        reports.append(report)
        if not d.delivered:
            report.note = f"no capture: its assignment {d.state}" + (
                f" ({d.error})" if d.error else ""
            )
            continue
        # after an overflow, the longest unbroken run, placed by its own (re-anchored) time:
        # the captures are aligned by their times before they are correlated
        cap = store.iq_capture(job.job_id, d.node_id, longest=True)
        if cap is None or cap.samples.size == 0:
            report.note = "no capture: the node delivered no IQ"
            continue
        t = cap.time_s + cap.time_frac
        report.first_sample_time = dt.datetime.fromtimestamp(cap.time_s, dt.UTC) + dt.timedelta(
            seconds=cap.time_frac
        )
        report.first_sample_unix_s = t
        report.samples = int(cap.samples.size)
        report.sample_rate_hz = cap.sample_rate_hz
        report.time_uncertainty_s = cap.time_uncertainty_s
        if job.capture_start is not None:
            report.start_offset_s = _offset_s(cap.time_s, cap.time_frac, job.capture_start)
        if not cap.complete:
            report.note = (
                f"capture incomplete (frames missing, samples dropped or out of time "
                f"order): its longest unbroken run, {cap.samples.size} samples, is used"
            )
        captures.append(_NodeCapture(d, _enu(origin, d.lat_deg, d.lon_deg, d.alt_m), cap, report))
    return reports, captures


def _need(method: str, have: list[_NodeCapture], total: int, why: str = "") -> AnalysisError:
    need = DF_MIN_NODES[method]
    return AnalysisError(
        f"{len(have)} of {total} nodes delivered; {method.upper()} needs "
        f"{need} with distinct positions" + (f": {why}" if why else "")
    )


def _named(message: str, caps: list[_NodeCapture]) -> str:
    """A DF library message with its sensor indexes and node ids as node names."""
    names = [c.delivery.name for c in caps]
    message = re.sub(
        r"\bsensor (\d+)\b",
        lambda m: f"node {names[int(m.group(1))]}" if int(m.group(1)) < len(names) else m.group(0),
        message,
    )
    for c in caps:
        message = message.replace(c.delivery.node_id, c.delivery.name)
    return message


def _check_geometry(method: str, caps: list[_NodeCapture], total: int) -> None:
    if len(caps) < DF_MIN_NODES[method]:
        raise _need(method, caps, total)
    pos = np.stack([c.enu_m for c in caps])
    spread = pos - pos.mean(axis=0)
    sv = np.linalg.svd(spread, compute_uv=False)
    if sv[0] < 1.0:
        raise _need(method, caps, total, "the delivered nodes are all at one place")
    if sv[1] < 1e-3 * sv[0] or sv[1] < 1.0:
        raise _need(method, caps, total, "the delivered nodes are collinear")


def _capture_timing(job: AnalysisInput, caps: list[_NodeCapture]) -> CaptureTiming | None:
    if job.capture_start is None or not caps:
        return None
    offs = [c.report.start_offset_s for c in caps]
    first = caps[0].capture
    # the spread, exactly: whole seconds apart plus fractions apart
    times = [
        (c.capture.time_s - first.time_s) + (c.capture.time_frac - first.time_frac) for c in caps
    ]
    return CaptureTiming(
        planned_start=job.capture_start,
        first_sample_spread_s=float(max(times) - min(times)),
        max_start_offset_s=float(max(abs(o) for o in offs)),
    )


def _gdop(sensors: np.ndarray, ref: int, p: np.ndarray) -> float:
    """sqrt(trace((J' Q^-1 J)^-1)) of range differences against sensor `ref`, each node's
    ranging error of unit variance (Q = I + 1 1': the reference's error is shared)."""
    u = (p - sensors) / np.linalg.norm(p - sensors, axis=1)[:, None]
    others = [i for i in range(len(sensors)) if i != ref]
    jac = u[others] - u[ref]
    q = np.eye(len(others)) + 1.0
    info = jac.T @ np.linalg.solve(q, jac)
    return float(math.sqrt(np.trace(np.linalg.inv(info))))


def _location(
    spec: DirectionFindingJob,
    job: AnalysisInput,
    origin: GeoPosition,
    reports: list[NodeReport],
    **kw,
) -> LocationResult:
    return LocationResult(
        job_id=job.job_id,
        method=spec.method,
        origin=origin,
        nodes=reports,
        center_freq_hz=spec.center_freq_hz,
        bandwidth_hz=spec.bandwidth_hz,
        reference=(spec.reference.model_dump() if spec.reference else None),
        **kw,
    )


def _fix_fields(fix, origin: GeoPosition, gdop: float | None) -> dict:
    e = fix.ellipse
    return {
        "usable": True,
        "position": _geodetic(origin, fix.position_enu_m),
        "ellipse_95": Ellipse(
            semi_major_m=e.semi_major_m,
            semi_minor_m=e.semi_minor_m,
            orientation_deg=e.orientation_deg,
            confidence=e.confidence,
        ),
        "covariance_enu_m2": np.asarray(fix.covariance_m2, dtype=float)[:2, :2].tolist(),
        "quality": FixQuality(
            chi2=float(fix.chi2),
            dof=int(fix.dof),
            p_value=(None if fix.dof <= 0 else float(fix.p_value)),
            gdop=gdop,
        ),
    }


def analyse_direction_finding(job: AnalysisInput, store) -> LocationResult:
    """A ``direction_finding`` job's location (see the module's docstring)."""
    spec = DirectionFindingJob.model_validate({**job.parameters, "type": "direction_finding"})
    if not job.deliveries:
        raise AnalysisError("the job had no nodes")
    origin = _frame(job.deliveries)
    reports, caps = _reports(job, origin, store)
    total = len(job.deliveries)
    if spec.method == "aoa":
        from drift.orchestrator.analysis.aoa import analyse_aoa

        if not any(c.delivery.array for c in caps):
            raise AnalysisError(
                f"{len(caps)} of {total} nodes delivered, and none has an antenna array: "
                "AoA needs coherent array nodes"
            )
        return analyse_aoa(
            spec, job, origin, reports, caps, _fix_fields, _location, _capture_timing(job, caps)
        )
    if spec.method == "hybrid":
        from drift.orchestrator.analysis.hybrid import analyse_hybrid

        return analyse_hybrid(spec, job, origin, reports, caps)
    _check_geometry(spec.method, caps, total)
    for c in caps:
        c.report.used = True
    if spec.method == "rss":
        return _rss(spec, job, origin, reports, caps)
    return _tdoa(spec, job, origin, reports, caps)


# --- TDOA ----------------------------------------------------------------------------------


def timed_captures(caps: list[_NodeCapture]) -> tuple[float, list]:
    """(sample rate, df.Capture of each node): the captures TDOA correlates."""
    from gnuradio.drift import df

    rates = {c.capture.sample_rate_hz for c in caps}
    if len(rates) > 1:
        raise AnalysisError(
            "the nodes captured at different sample rates "
            f"({', '.join(f'{r:g}' for r in sorted(rates))} S/s)"
        )
    fs = rates.pop()
    return fs, [
        df.Capture(
            c.capture.samples[:MAX_ANALYSIS_SAMPLES],
            fs,
            c.capture.time_s,
            c.capture.time_frac,
            c.delivery.node_id,
            c.enu_m,
            float(c.capture.time_uncertainty_s),
        )
        for c in caps
    ]


def _span_s(pos: np.ndarray) -> float:
    """The light time across the nodes."""
    return float(np.max(np.linalg.norm(pos[:, None] - pos[None], axis=-1))) / SPEED_OF_LIGHT_M_S


def free_search_s(captures: list, span_s: float) -> float:
    """How far to search for a delay between captures whose clocks are as they are: the
    light time across the nodes, five of the clocks' sigmas and 10 samples, at most a
    quarter of the shortest capture."""
    clock = np.array([c.time_std_s for c in captures])
    fs = captures[0].sample_rate_hz
    search = span_s + 5 * float(np.sqrt(clock.max() ** 2 + clock[0] ** 2)) + 10 / fs
    return min(search, min(c.duration_s for c in captures) / 4)


def tdoa_measurements(
    caps: list[_NodeCapture], tdoa_s: np.ndarray, cov_s2: np.ndarray, estimates: list
) -> list[TdoaMeasurement]:
    """Every node's TDOA against the first, with its total std and its estimate's figures."""
    out = []
    for k, i in enumerate(range(1, len(caps))):
        est = estimates[i]
        out.append(
            TdoaMeasurement(
                node_id=caps[i].delivery.node_id,
                reference_node_id=caps[0].delivery.node_id,
                delay_s=float(tdoa_s[k]),
                std_s=float(math.sqrt(cov_s2[k, k])),
                estimate_std_s=float(est.std_s),
                psr_db=float(est.psr_db),
                snr_db=float(est.snr_db),
            )
        )
    return out


def band_snr(caps: list[_NodeCapture], fs: float, offset_hz: float, bandwidth_hz: float) -> None:
    """Each node's report gets its SNR in the emitter's band."""
    for c in caps:
        s, n = band_power(c.capture.samples[:MAX_ANALYSIS_SAMPLES], fs, offset_hz, bandwidth_hz)
        c.report.snr_db = float(10 * math.log10(s / n)) if s > 0 and n > 0 else None


def _tdoa(
    spec: DirectionFindingJob,
    job: AnalysisInput,
    origin: GeoPosition,
    reports: list[NodeReport],
    caps: list[_NodeCapture],
) -> LocationResult:
    from gnuradio.drift import df

    fs, captures = timed_captures(caps)
    center = caps[0].capture.center_freq_hz
    pos = np.stack([c.enu_m for c in caps])
    span_s = _span_s(pos)
    clock = np.array([c.time_std_s for c in captures])
    duration = min(c.duration_s for c in captures)
    tx_band = (spec.center_freq_hz - center, spec.bandwidth_hz)
    timing = _capture_timing(job, caps)
    offsets_out = None
    try:
        if spec.reference is None:
            # the clocks as they are: their offsets stay in the TDOAs, their uncertainty in
            # the covariance (a few tens of ns with GPS, milliseconds with NTP)
            fix = df.locate_captures(captures, max_delay_s=free_search_s(captures, span_s))
            used = captures
        else:
            r = spec.reference
            ref_enu = _enu(origin, r.lat_deg, r.lon_deg, r.alt_m)
            ref_band = (r.center_freq_hz - center, r.bandwidth_hz)
            max_offset = min(5 * float(clock.max()) + 10 / fs, duration / 4)
            used, offs = df.sync_captures(
                captures,
                pos,
                ref_enu,
                band=ref_band,
                max_offset_s=max_offset,
                max_freq_offset_hz=r.max_freq_offset_hz,
            )
            offsets_out = [
                ClockOffset(
                    node_id=c.delivery.node_id,
                    offset_s=float(o),
                    std_s=float(sd),
                    freq_offset_hz=(
                        None if offs.freq_offsets_hz is None else float(offs.freq_offsets_hz[i])
                    ),
                )
                for i, (c, o, sd) in enumerate(zip(caps, offs.offsets_s, offs.std_s, strict=True))
            ]
            search = span_s + 10 / fs
            extra = {}
            if offs.freq_offsets_hz is not None:
                extra["offsets"] = df.ClockOffsets(
                    np.zeros(len(used)), offs.std_s, 0, offs.freq_offsets_hz
                )
            fix = df.locate_captures(used, max_delay_s=search, band=tx_band, **extra)
    except ValueError as exc:
        exc = ValueError(_named(str(exc), caps))
        hint = (
            ""
            if spec.reference is not None
            else "; the nodes' clocks are not synchronised well enough for TDOA: name a "
            "reference transmitter in the job, or use GPS-disciplined nodes"
        )
        log.info("job %s: no TDOA fix: %s", job.job_id, exc)
        return _location(
            spec,
            job,
            origin,
            reports,
            usable=False,
            reason=f"no position: {exc}{hint}",
            capture=timing,
            clock_offsets=offsets_out,
        )
    measurements = tdoa_measurements(
        caps, fix.extra["tdoa_s"], fix.extra["tdoa_cov_s2"], fix.extra["estimates"]
    )
    band_snr(caps, fs, tx_band[0], spec.bandwidth_hz)
    gdop = _gdop(pos, 0, np.asarray(fix.position_enu_m, dtype=float))
    fields = _fix_fields(fix, origin, gdop)
    semi = fields["ellipse_95"].semi_major_m
    reason = None
    if semi > 10 * span_s * SPEED_OF_LIGHT_M_S:
        reason = (
            f"the 95 % ellipse ({semi / 1e3:.3g} km) is far larger than the network: "
            "the clocks' uncertainty dominates"
        )
    return _location(
        spec,
        job,
        origin,
        reports,
        reason=reason,
        measurements=measurements,
        capture=timing,
        clock_offsets=offsets_out,
        **fields,
    )


# --- RSS -----------------------------------------------------------------------------------


def _rss(
    spec: DirectionFindingJob,
    job: AnalysisInput,
    origin: GeoPosition,
    reports: list[NodeReport],
    caps: list[_NodeCapture],
) -> LocationResult:
    from gnuradio.drift import df

    measurements, rss = [], []
    for c in caps:
        cap = c.capture
        offset = spec.center_freq_hz - cap.center_freq_hz
        s, n = band_power(
            cap.samples[:MAX_ANALYSIS_SAMPLES], cap.sample_rate_hz, offset, spec.bandwidth_hz
        )
        cal = float(cap.meta.get("cal_offset_db", 0.0))
        if s <= 0:
            raise AnalysisError(
                f"node {c.delivery.name} heard nothing above the noise in the "
                "emitter's band: no received power to locate from"
            )
        power = 10 * math.log10(s) + cal
        noise = 10 * math.log10(n) + cal if n > 0 else float("-inf")
        c.report.snr_db = float(10 * math.log10(s / n)) if n > 0 else None
        measurements.append(
            PowerMeasurement(
                node_id=c.delivery.node_id,
                power_dbm=power,
                noise_dbm=noise,
                snr_db=c.report.snr_db or float("inf"),
            )
        )
        rss.append(power)
    pos = np.stack([c.enu_m for c in caps])
    # the exponent is fitted where the nodes over-determine it; the shadowing is estimated
    # only with three or more residual degrees of freedom, assumed otherwise
    fit_exponent = len(caps) >= 6
    dof = len(caps) - (3 + int(fit_exponent))
    shadowing = None if dof >= 3 else RSS_SHADOWING_DB
    try:
        fix = df.locate_rss(
            pos,
            np.array(rss),
            path_loss_exponent=None if fit_exponent else RSS_EXPONENT,
            shadowing_std_db=shadowing,
        )
    except ValueError as exc:
        return _location(
            spec,
            job,
            origin,
            reports,
            usable=False,
            reason=f"no position: {exc}",
            measurements=measurements,
            capture=_capture_timing(job, caps),
        )
    model = (
        f"path-loss exponent {fix.path_loss_exponent:.2f} fitted"
        if fit_exponent
        else f"path-loss exponent {RSS_EXPONENT:g} assumed"
    )
    model += (
        f", shadowing {RSS_SHADOWING_DB:g} dB assumed"
        if shadowing is not None
        else ", shadowing estimated from the residuals"
    )
    return _location(
        spec,
        job,
        origin,
        reports,
        reason=f"RSS with a log-distance model ({model}): a coarse fix",
        measurements=measurements,
        capture=_capture_timing(job, caps),
        **_fix_fields(fix, origin, None),
    )
