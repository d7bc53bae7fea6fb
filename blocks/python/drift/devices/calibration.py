#
# Copyright 2026 DRIFT contributors.
#
# SPDX-License-Identifier: GPL-3.0-or-later
#
"""Per-device calibration: LO error and gain offset, measured against a known carrier.

A record belongs to one device (driver and serial; a simulated node; the test signal) and
holds the LO error in ppm and a gain offset in dB as a function of frequency (points measured
at several frequencies, one `drift calibrate` run each, interpolated linearly between them),
with the time it stays valid. The device layer applies it when it opens the device: the tuner is set so the
actual LO lands on the wanted centre, and the PSD offset becomes the calibrated one, so PSD
output reads dBm/Hz at the antenna.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from dataclasses import asdict, dataclass, field

import numpy as np
from scipy.optimize import minimize_scalar

DEFAULT_VALIDITY_DAYS = 30


# Two measurements closer than this are of the same frequency: the newer replaces the older.
SAME_FREQUENCY_HZ = 1e3

#: A capture's carrier must stand this far above the noise (dB, in a bin of rate / SNR_FFT):
#: with no carrier the strongest "tone" is a noise peak at a random frequency, some -14 dB.
MIN_SNR_DB = 10.0
SNR_FFT = 1024

#: The carrier is looked for within this LO error of where it should be (ppm): a cheap
#: crystal is within 50-100 ppm; elsewhere there are other signals, not the carrier.
MAX_PPM = 200.0

#: A crystal's error in ppm is one number at every frequency: a new measurement further than
#: this from the record's is a mistake (a wrong --known-freq, another carrier) until shown
#: otherwise, and is kept in the history, not merged (--restart starts a new record).
LO_TOLERANCE_PPM = 2.0


class CalibrationRefused(Exception):
    """A measurement not fit to calibrate with (no clear carrier, or one at odds with the
    record); the message says why."""


@dataclass
class CalibrationRecord:
    device_key: str
    lo_error_ppm: float = 0.0
    gain_points: list[tuple[float, float]] = field(default_factory=list)  # (freq Hz, dB)
    created: str = ""
    valid_until: str = ""
    notes: str = ""
    lo_points: list[tuple[float, float]] = field(default_factory=list)  # (freq Hz, ppm)
    # every run, accepted or not: {time, freq_hz, lo_error_ppm, gain_offset_db, snr_db,
    # accepted, reason}
    history: list[dict] = field(default_factory=list)
    # an array device's channel calibration (drift calibrate --array), with its own times:
    # the df.ArrayCalibration file fields plus measured, valid_until and notes
    array: dict | None = None

    def gain_offset_db(self, freq_hz: float) -> float | None:
        """The PSD offset at a frequency (linear in frequency between the measured points,
        flat beyond the outermost), if any."""
        if not self.gain_points:
            return None
        pts = sorted(self.gain_points)
        return float(np.interp(freq_hz, [p[0] for p in pts], [p[1] for p in pts]))

    def valid(self, now: dt.datetime | None = None) -> bool:
        now = now or dt.datetime.now(dt.UTC)
        return not self.valid_until or dt.datetime.fromisoformat(self.valid_until) > now

    def tuning_hz(self, center_hz: float) -> float:
        """The frequency to ask the tuner for, so that its actual LO is at center_hz."""
        return center_hz / (1 + self.lo_error_ppm * 1e-6)


class CalibrationStore:
    """Records as JSON files, one per device, in DIR (default $DRIFT_DATA_DIR/calibration)."""

    def __init__(self, directory: str | None = None):
        base = os.environ.get("DRIFT_DATA_DIR", "var")
        self.directory = directory or os.path.join(base, "calibration")

    def _path(self, key: str) -> str:
        digest = hashlib.sha256(key.encode()).hexdigest()[:16]
        safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in key)[:48]
        return os.path.join(self.directory, f"{safe}-{digest}.json")

    def load(self, key: str, expired: bool = False) -> CalibrationRecord | None:
        """The device's record; None if it has none, or (unless `expired`) if its validity
        has ended."""
        try:
            with open(self._path(key)) as f:
                data = json.load(f)
        except FileNotFoundError:
            return None
        data["gain_points"] = [tuple(p) for p in data.get("gain_points", [])]
        data["lo_points"] = [tuple(p) for p in data.get("lo_points", [])]
        record = CalibrationRecord(**data)
        return record if expired or record.valid() else None

    def save(self, record: CalibrationRecord) -> str:
        os.makedirs(self.directory, exist_ok=True)
        path = self._path(record.device_key)
        tmp = path + ".part"
        with open(tmp, "w") as f:
            json.dump(asdict(record), f, indent=1)
        os.replace(tmp, path)
        return path


def tone_frequency_hz(x: np.ndarray, fs: float, band_hz: tuple | None = None) -> float:
    """Frequency of the strongest tone in x (baseband Hz; within band_hz = (low, high) if
    given), to a small fraction of a bin: the FFT peak, then the maximum of
    |sum x e^(-j 2 pi f t)| around it."""
    x = np.asarray(x, dtype=np.complex128)
    n = x.size
    win = np.hanning(n)
    spec = np.abs(np.fft.fft(x * win, 4 * n))
    freqs = np.fft.fftfreq(4 * n, 1 / fs)
    if band_hz is not None:
        spec = np.where((freqs >= band_hz[0]) & (freqs <= band_hz[1]), spec, -1.0)
    k = int(np.argmax(spec))
    f0 = freqs[k]
    t = np.arange(n) / fs
    xw = x * win

    def neg(f):
        return -abs(np.sum(xw * np.exp(-2j * np.pi * f * t)))

    res = minimize_scalar(
        neg,
        bounds=(f0 - fs / (2 * n), f0 + fs / (2 * n)),
        method="bounded",
        options={"xatol": 1e-6},
    )
    return float(res.x)


def tone_power_dbfs(x: np.ndarray, fs: float, f_hz: float) -> float:
    """Power of a tone at baseband f_hz in dB full scale (its coherent amplitude squared)."""
    x = np.asarray(x, dtype=np.complex128)
    t = np.arange(x.size) / fs
    amp = np.sum(x * np.exp(-2j * np.pi * f_hz * t)) / x.size
    return float(10 * np.log10(abs(amp) ** 2))


def carrier_snr_db(x: np.ndarray, fs: float, f_hz: float) -> float:
    """The carrier at baseband f_hz over the noise, in dB, the noise taken in a bin of
    fs / SNR_FFT: its coherent power over the median of a Welch spectrum (many averages, so
    the median is the noise level, also with other signals in the band)."""
    from scipy import signal

    x = np.asarray(x, dtype=np.complex128)
    nper = min(SNR_FFT, x.size)
    _, pxx = signal.welch(x, fs=fs, nperseg=nper, return_onesided=False, scaling="density")
    # the median of a chi-square spectrum with many averages is its mean, within 1 %
    noise_in_bin = float(np.median(pxx)) * fs / nper
    carrier = 10 ** (tone_power_dbfs(x, fs, f_hz) / 10)
    return float(10 * np.log10(carrier / noise_in_bin))


def measure(
    x: np.ndarray,
    fs: float,
    tuned_hz: float,
    known_freq_hz: float,
    known_power_dbm: float | None = None,
    max_ppm: float | None = None,
) -> tuple[float, float | None]:
    """(LO error ppm, gain offset dB or None) from a capture of a known carrier.

    The tuner was asked for tuned_hz; its LO is actually at tuned_hz (1 + e), so the carrier
    appears at known - tuned (1 + e): e = (known - tuned - f_seen) / tuned. The gain offset is
    what turns the carrier's dBFS into its known dBm at the antenna. max_ppm: the carrier is
    looked for only where an LO error up to that could put it (not at another signal).
    """
    band = None
    if max_ppm is not None:
        expected, spread = known_freq_hz - tuned_hz, max_ppm * 1e-6 * tuned_hz
        band = (expected - spread, expected + spread)
    seen = tone_frequency_hz(x, fs, band)
    ppm = (known_freq_hz - tuned_hz - seen) / tuned_hz * 1e6
    offset = None
    if known_power_dbm is not None:
        offset = known_power_dbm - tone_power_dbfs(x, fs, seen)
    return ppm, offset


def new_record(
    key: str,
    ppm: float,
    freq_hz: float,
    offset_db: float | None,
    days: float = DEFAULT_VALIDITY_DAYS,
    notes: str = "",
) -> CalibrationRecord:
    now = dt.datetime.now(dt.UTC)
    return CalibrationRecord(
        device_key=key,
        lo_error_ppm=ppm,
        gain_points=[(freq_hz, offset_db)] if offset_db is not None else [],
        created=now.isoformat(),
        valid_until=(now + dt.timedelta(days=days)).isoformat(),
        notes=notes,
        lo_points=[(freq_hz, ppm)],
    )


def merge_measurement(
    record: CalibrationRecord | None,
    key: str,
    ppm: float,
    freq_hz: float,
    offset_db: float | None,
    days: float = DEFAULT_VALIDITY_DAYS,
    notes: str = "",
    snr_db: float | None = None,
) -> CalibrationRecord:
    """The device's record with one more measurement at freq_hz: its gain point joins the
    others (replacing one within SAME_FREQUENCY_HZ), the LO error becomes the mean of the
    per-frequency estimates (a crystal's error in ppm is the same at every frequency), and
    the record is valid for `days` from now. None (or an expired record): a new record.
    Every measurement joins the record's history. CalibrationRefused for a measurement whose
    LO error is more than LO_TOLERANCE_PPM from the record's: it is not averaged in."""
    entry = history_entry(freq_hz, ppm, offset_db, snr_db)
    if record is None or not record.valid():
        fresh = new_record(key, ppm, freq_hz, offset_db, days, notes)
        fresh.history = ([] if record is None else list(record.history)) + [entry]
        fresh.array = None if record is None else record.array  # has its own validity
        return fresh
    if abs(ppm - record.lo_error_ppm) > LO_TOLERANCE_PPM:
        raise CalibrationRefused(
            f"LO error {ppm:+.3f} ppm is {abs(ppm - record.lo_error_ppm):.3f} ppm from the "
            f"record's {record.lo_error_ppm:+.3f} ppm (more than {LO_TOLERANCE_PPM:g}): not "
            "merged (is --known-freq right? --restart starts a new record)"
        )

    def others(points):
        return [p for p in points if abs(p[0] - freq_hz) > SAME_FREQUENCY_HZ]

    lo_points = record.lo_points or (
        [(record.gain_points[0][0], record.lo_error_ppm)] if record.gain_points else []
    )
    lo_points = sorted(others(lo_points) + [(freq_hz, ppm)])
    gain_points = others(record.gain_points)
    if offset_db is not None:
        gain_points.append((freq_hz, offset_db))
    now = dt.datetime.now(dt.UTC)
    return CalibrationRecord(
        device_key=key,
        lo_error_ppm=float(np.mean([p[1] for p in lo_points])),
        gain_points=sorted(gain_points),
        created=record.created,
        valid_until=(now + dt.timedelta(days=days)).isoformat(),
        notes="; ".join(filter(None, [record.notes, notes])),
        lo_points=lo_points,
        history=list(record.history) + [entry],
        array=record.array,
    )


def history_entry(freq_hz, ppm, offset_db, snr_db, accepted=True, reason=""):
    """One run of a calibration, as the record's history keeps it."""
    return {
        "time": dt.datetime.now(dt.UTC).isoformat(),
        "freq_hz": freq_hz,
        "lo_error_ppm": ppm,
        "gain_offset_db": offset_db,
        "snr_db": snr_db,
        "accepted": accepted,
        "reason": reason,
    }


def note_refused(record: CalibrationRecord, entry: dict) -> CalibrationRecord:
    """The record (its values unchanged) with a refused run in its history."""
    record.history = list(record.history) + [entry]
    return record
