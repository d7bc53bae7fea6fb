"""The analysis of ``propagation_test`` jobs: the receivers' timed IQ captures -> the path loss
to each, and a log-distance fit over them.

Each receiver captured the test band from the job's common start while the transmitter sent
its waveform. The calibrated power in the band (the capture's calibration offset, noise
measured beside the band and removed) is the received power at the antenna connector; the
path loss is the EIRP (the job's transmit power plus the transmitter's antenna gain) minus
the received power less the receiver's antenna gain. Distances are straight lines between
the nodes' positions (WGS84, through ECEF). The fit is the log-distance model with free space
as the reference: PL(d) = FSPL(1 m) + 10 n log10(d / 1 m) + X, least squares for n, and the
residuals' standard deviation for the shadowing X.
"""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pymap3d

from drift.orchestrator.analysis.base import AnalysisError, AnalysisInput, Delivery
from drift.orchestrator.analysis.location import band_power
from drift.orchestrator.analysis.results import (
    GeoPosition,
    PathLossFit,
    PropagationLink,
    PropagationResult,
)
from drift.orchestrator.jobs import PropagationTestJob

SPEED_OF_LIGHT_M_S = 299_792_458.0
#: the first and last part of each capture left out (the transmitter's ramp, clocks' spread)
EDGE_FRACTION = 0.1
#: at most this many samples of a capture are used
MAX_SAMPLES = 1 << 21
REFERENCE_DISTANCE_M = 1.0
#: a sample this close to full scale (either part) counts as clipped; more than
#: CLIPPED_FRACTION of them and the capture's power is not a measurement (too strong a signal
#: for the receiver's gain: the ADC cut it)
CLIP_LEVEL = 0.99
CLIPPED_FRACTION = 1e-3
#: below this in-band SNR a link's power is reported but not taken as a path loss: the
#: in-band excess over the noise measured beside the band is then biased (several dB at
#: negative SNRs, found against the simulator's truth)
MIN_SNR_DB = 6.0


def free_space_loss_db(distance_m: float, freq_hz: float) -> float:
    """Friis: 20 log10(4 pi d / lambda)."""
    lam = SPEED_OF_LIGHT_M_S / freq_hz
    return 20 * math.log10(4 * math.pi * distance_m / lam)


def distance_m(a: Delivery, b: Delivery) -> float:
    pa = np.array(pymap3d.geodetic2ecef(a.lat_deg, a.lon_deg, a.alt_m))
    pb = np.array(pymap3d.geodetic2ecef(b.lat_deg, b.lon_deg, b.alt_m))
    return float(np.linalg.norm(pa - pb))


def fit_log_distance(distances_m: np.ndarray, losses_db: np.ndarray, freq_hz: float) -> PathLossFit:
    """Least squares for the exponent with the intercept fixed at free space at 1 m."""
    ref = free_space_loss_db(REFERENCE_DISTANCE_M, freq_hz)
    x = 10 * np.log10(np.asarray(distances_m) / REFERENCE_DISTANCE_M)
    y = np.asarray(losses_db) - ref
    sxx = float(np.sum(x * x))
    n = float(np.sum(x * y) / sxx)
    resid = y - n * x
    k = len(x)
    sigma = float(np.sqrt(np.sum(resid**2) / (k - 1))) if k >= 2 else None
    return PathLossFit(
        reference_distance_m=REFERENCE_DISTANCE_M,
        reference_loss_db=ref,
        exponent=n,
        exponent_std=(sigma / math.sqrt(sxx)) if sigma is not None else None,
        shadowing_sigma_db=sigma,
        receivers=k,
    )


def _position(d: Delivery) -> GeoPosition:
    return GeoPosition(lat_deg=d.lat_deg, lon_deg=d.lon_deg, alt_m=d.alt_m)


def analyse_propagation(job: AnalysisInput, store) -> PropagationResult:
    spec = PropagationTestJob.model_validate({**job.parameters, "type": "propagation_test"})
    tx = next((d for d in job.deliveries if d.role == "transmitter"), None)
    if tx is None:
        raise AnalysisError("the job had no transmitter")
    if not tx.delivered:
        raise AnalysisError(
            f"the transmitter {tx.name} did not transmit: its assignment {tx.state}"
            + (f" ({tx.error})" if tx.error else "")
        )
    eirp = spec.tx_power_dbm + tx.antenna_gain_dbi
    links: list[PropagationLink] = []
    for d in job.deliveries:
        if d.role == "transmitter":
            continue
        dist = distance_m(tx, d)
        link = PropagationLink(
            node_id=d.node_id,
            name=d.name,
            position=_position(d),
            state=d.state,
            distance_m=dist,
            free_space_loss_db=free_space_loss_db(max(dist, 1e-3), spec.freq_hz),
            rx_antenna_gain_dbi=d.antenna_gain_dbi,
        )
        links.append(link)
        if not d.delivered:
            link.note = f"no capture: its assignment {d.state}" + (
                f" ({d.error})" if d.error else ""
            )
            continue
        cap = store.iq_capture(job.job_id, d.node_id, longest=True)
        if cap is None or cap.samples.size == 0:
            link.note = "no capture: the node delivered no IQ"
            continue
        n = cap.samples.size
        edge = int(n * EDGE_FRACTION)
        x = cap.samples[edge : n - edge][:MAX_SAMPLES]
        link.first_sample_time = dt.datetime.fromtimestamp(cap.time_s, dt.UTC) + dt.timedelta(
            seconds=cap.time_frac
        )
        link.measured_s = x.size / cap.sample_rate_hz
        clipped = float(np.mean(np.maximum(np.abs(x.real), np.abs(x.imag)) >= CLIP_LEVEL))
        if clipped > CLIPPED_FRACTION:
            link.note = (
                f"clipped: {clipped:.1%} of the samples at the ADC's full scale (the signal is "
                "too strong for the receiver's gain); no path loss from it"
            )
            continue
        s, noise = band_power(
            x, cap.sample_rate_hz, spec.freq_hz - cap.center_freq_hz, spec.bandwidth_hz
        )
        cal = float(cap.meta.get("cal_offset_db", 0.0))
        link.noise_power_dbm = 10 * math.log10(noise) + cal if noise > 0 else None
        if s <= 0:
            link.note = "heard nothing above the noise in the test band"
            continue
        link.received_power_dbm = 10 * math.log10(s) + cal
        link.snr_db = 10 * math.log10(s / noise) if noise > 0 else None
        if link.snr_db is not None and link.snr_db < MIN_SNR_DB:
            link.note = (
                f"SNR {link.snr_db:.1f} dB in the band, under {MIN_SNR_DB:g} dB: too weak to "
                "measure the path loss from (a lower bound only)"
            )
            continue
        link.path_loss_db = eirp - (link.received_power_dbm - d.antenna_gain_dbi)
        link.excess_loss_db = link.path_loss_db - link.free_space_loss_db
    measured = [lk for lk in links if lk.path_loss_db is not None and lk.distance_m > 0]
    fit = None
    reason = None
    if measured:
        fit = fit_log_distance(
            np.array([lk.distance_m for lk in measured]),
            np.array([lk.path_loss_db for lk in measured]),
            spec.freq_hz,
        )
        if len(measured) < 3:
            reason = f"{len(measured)} receiver(s) measured: the fit is weak"
    else:
        reason = "no receiver measured the transmitter: no path loss"
    return PropagationResult(
        job_id=job.job_id,
        usable=bool(measured),
        reason=reason,
        freq_hz=spec.freq_hz,
        bandwidth_hz=spec.bandwidth_hz,
        waveform=spec.waveform,
        tx_power_dbm=spec.tx_power_dbm,
        tx_antenna_gain_dbi=tx.antenna_gain_dbi,
        eirp_dbm=eirp,
        transmitter={
            "node_id": tx.node_id,
            "name": tx.name,
            "position": _position(tx).model_dump(),
            "state": tx.state,
        },
        start_time=job.capture_start,
        duration_s=spec.duration_s,
        links=links,
        fit=fit,
    )
