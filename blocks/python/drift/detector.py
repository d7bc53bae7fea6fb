#
# Copyright 2026 DRIFT contributors.
#
# SPDX-License-Identifier: GPL-3.0-or-later
#
"""Signal detection on PSD vectors: a robust noise floor, CFAR thresholds, hysteresis, tracks.

The noise floor is robust: a sliding lower quartile over frequency (an ordered statistic,
corrected by Gamma's quartile-to-mean ratio, since an averaged periodogram bin of complex
Gaussian noise is Gamma(n_avg) distributed about its mean) finds the signals, which are then
censored from a sliding mean of the remaining bins. The CFAR threshold for a false-alarm probability pfa per
bin is Gamma's (1 - pfa) quantile of that mean. (Overlapping frames make the frames
correlated and the true spread wider; use overlap 0 for the stated pfa.)

A detection is a run of bins above the lower threshold (on threshold minus hysteresis, but not
below the noise's 99th percentile) that contains at least one bin above the on threshold. Across frames, detections that overlap in
frequency are one track: a steady signal is one detection, from first_seen to last_seen.
"""

from __future__ import annotations

import itertools
import threading
import warnings
from dataclasses import asdict, dataclass

import numpy as np
import pmt
from gnuradio import gr
from scipy import ndimage, special

from . import tags


@dataclass
class Detection:
    id: int
    center_freq_hz: float
    bandwidth_hz: float  # 99 % occupied bandwidth
    peak_psd_db: float  # highest bin, input units (dBm/Hz when calibrated)
    power_db: float  # integrated over the band, noise removed (dBm when calibrated)
    snr_db: float  # peak bin over the local noise floor
    noise_db: float  # local noise density (dBm/Hz when calibrated)
    first_seen_s: float
    last_seen_s: float
    frames: int = 1

    def to_dict(self) -> dict:
        return asdict(self)


class Detector:
    """CFAR detection with hysteresis and tracking, on any PSD row (dB) and its frequencies.

    bin_hz: bin width; n_avg: frames averaged per PSD vector (sets the noise statistics);
    pfa: false-alarm probability per bin; hysteresis_db: how far below the on threshold a
    detection extends; min_bins: narrower runs are ignored; noise_window_bins: width of the
    window (default: 1/4 of the row, at least 33 bins); confirm_frames: frames a new signal
    must be seen before it is reported; hold_frames: frames a signal may be missing before
    its detection ends.
    """

    def __init__(
        self,
        bin_hz,
        n_avg,
        pfa=1e-6,
        hysteresis_db=3.0,
        min_bins=1,
        noise_window_bins=None,
        confirm_frames=1,
        hold_frames=2,
    ):
        if not bin_hz > 0:
            raise ValueError(f"bin_hz must be > 0, got {bin_hz}")
        if int(n_avg) < 1:
            raise ValueError(f"n_avg must be >= 1, got {n_avg}")
        if not 0 < pfa < 1:
            raise ValueError(f"pfa must be in (0, 1), got {pfa}")
        if hysteresis_db < 0:
            raise ValueError(f"hysteresis_db must be >= 0, got {hysteresis_db}")
        if int(min_bins) < 1:
            raise ValueError(f"min_bins must be >= 1, got {min_bins}")
        if noise_window_bins is not None and int(noise_window_bins) < 3:
            raise ValueError(f"noise_window_bins must be >= 3, got {noise_window_bins}")
        if int(confirm_frames) < 1:
            raise ValueError(f"confirm_frames must be >= 1, got {confirm_frames}")
        if int(hold_frames) < 0:
            raise ValueError(f"hold_frames must be >= 0, got {hold_frames}")
        self.bin_hz = float(bin_hz)
        self.n_avg = int(n_avg)
        self.pfa = float(pfa)
        self.hysteresis_db = float(hysteresis_db)
        self.min_bins = int(min_bins)
        self.noise_window_bins = None if noise_window_bins is None else int(noise_window_bins)
        self.confirm_frames = int(confirm_frames)
        self.hold_frames = int(hold_frames)
        self.on_factor = special.gammaincinv(self.n_avg, 1 - self.pfa) / self.n_avg
        # The lower (hysteresis) threshold never drops below the noise's 99th percentile: with
        # many averages the noise is narrow, and "on minus 3 dB" would sit inside it.
        self.low_factor = max(
            self.on_factor * 10 ** (-self.hysteresis_db / 10),
            special.gammaincinv(self.n_avg, 0.99) / self.n_avg,
        )
        # Censoring the bins above low_factor takes the top of the noise too: the mean of what
        # is left is low by this factor (the truncated Gamma mean), which noise_floor undoes.
        x = self.n_avg * self.low_factor
        self.censor_bias = special.gammainc(self.n_avg + 1, x) / special.gammainc(self.n_avg, x)
        self.quartile_factor = special.gammaincinv(self.n_avg, 0.25) / self.n_avg
        self._tracks: list[dict] = []
        self._ids = itertools.count(1)

    # -- one row ---------------------------------------------------------------------------
    def noise_floor(self, lin: np.ndarray) -> np.ndarray:
        """Local mean noise density per bin (linear).

        A sliding lower quartile (an ordered statistic, corrected to a mean) finds the signal
        candidates, robust while signals fill under 3/4 of the window; they are masked,
        widened by a few bins, and the noise is the mean of the remaining bins over the
        window (censored cell averaging), which has a low variance.
        """
        w = self.noise_window_bins or max(33, lin.size // 4)
        w = max(3, min(w, lin.size))
        noise = ndimage.percentile_filter(lin, 25, size=w, mode="reflect") / self.quartile_factor
        for _ in range(2):
            quiet = ~ndimage.binary_dilation(lin > noise * self.low_factor, iterations=3)
            num = ndimage.uniform_filter(np.where(quiet, lin, 0.0), size=w, mode="reflect")
            den = ndimage.uniform_filter(quiet.astype(np.float64), size=w, mode="reflect")
            mean = num / np.maximum(den, 1e-12) / self.censor_bias
            noise = np.where(den > 0.05, mean, noise)
        return noise

    def regions(self, psd_db, freqs_hz, time_s=0.0) -> list[Detection]:
        """Detections in one row (no tracking)."""
        db = np.asarray(psd_db, dtype=np.float64)
        f = np.asarray(freqs_hz, dtype=np.float64)
        if db.shape != f.shape:
            raise ValueError(f"psd has {db.size} bins but freqs_hz has {f.size}")
        lin = 10 ** (db / 10)
        noise = self.noise_floor(lin)
        on = lin > noise * self.on_factor
        low = lin > noise * self.low_factor
        labels, count = ndimage.label(low)
        if count == 0:
            return []
        found = []
        for sl in ndimage.find_objects(labels):
            idx = np.arange(sl[0].start, sl[0].stop)
            if idx.size < self.min_bins or not on[idx].any():
                continue
            excess = np.clip(lin[idx] - noise[idx], 0, None)
            total = excess.sum()
            if total <= 0:
                continue
            peak = idx[np.argmax(db[idx])]
            # occupied bandwidth (ITU-R SM.328): the band holding 99 % of the power
            cum = np.cumsum(excess) / total
            lo_i, hi_i = np.searchsorted(cum, 0.005), np.searchsorted(cum, 0.995)
            found.append(
                Detection(
                    id=0,
                    center_freq_hz=float(np.sum(f[idx] * excess) / total),
                    bandwidth_hz=float((min(hi_i, idx.size - 1) - lo_i + 1) * self.bin_hz),
                    peak_psd_db=float(db[peak]),
                    power_db=float(10 * np.log10(total * self.bin_hz)),
                    snr_db=float(db[peak] - 10 * np.log10(noise[peak])),
                    noise_db=float(10 * np.log10(np.mean(noise[idx]))),
                    first_seen_s=float(time_s),
                    last_seen_s=float(time_s),
                )
            )
        return found

    # -- tracking ------------------------------------------------------------------------
    def update(self, psd_db, freqs_hz, time_s) -> list[tuple[str, Detection]]:
        """Detect in one row and track: events ("new" | "end", Detection)."""
        events = []
        seen = set()
        for det in self.regions(psd_db, freqs_hz, time_s):
            lo = det.center_freq_hz - det.bandwidth_hz / 2 - self.bin_hz
            hi = det.center_freq_hz + det.bandwidth_hz / 2 + self.bin_hz
            track = next(
                (t for t in self._tracks if id(t) not in seen and t["lo"] <= hi and lo <= t["hi"]),
                None,
            )
            if track is None:
                track = {"det": det, "hits": 0, "misses": 0, "confirmed": False, "power_lin": 0.0}
                self._tracks.append(track)
            else:
                self._merge(track["det"], det)
            seen.add(id(track))
            track["lo"], track["hi"] = lo, hi
            track["hits"] += 1
            track["misses"] = 0
            track["power_lin"] += 10 ** (det.power_db / 10)
            track["det"].power_db = float(10 * np.log10(track["power_lin"] / track["hits"]))
            if not track["confirmed"] and track["hits"] >= self.confirm_frames:
                track["confirmed"] = True
                track["det"].id = next(self._ids)
                events.append(("new", track["det"]))
        for track in list(self._tracks):
            if id(track) in seen:
                continue
            track["misses"] += 1
            if track["misses"] > self.hold_frames:
                self._tracks.remove(track)
                if track["confirmed"]:
                    events.append(("end", track["det"]))
        return events

    @staticmethod
    def _merge(into: Detection, det: Detection) -> None:
        n = into.frames
        into.center_freq_hz = (into.center_freq_hz * n + det.center_freq_hz) / (n + 1)
        into.bandwidth_hz = max(into.bandwidth_hz, det.bandwidth_hz)
        into.peak_psd_db = max(into.peak_psd_db, det.peak_psd_db)
        into.snr_db = max(into.snr_db, det.snr_db)
        into.noise_db = det.noise_db
        into.last_seen_s = det.last_seen_s
        into.frames = n + 1

    def active(self) -> list[Detection]:
        """Confirmed detections still going on."""
        return [t["det"] for t in self._tracks if t["confirmed"]]

    def flush(self) -> list[tuple[str, Detection]]:
        """End every track (at the end of a scan): ("end", Detection) for the confirmed ones."""
        events = [("end", t["det"]) for t in self._tracks if t["confirmed"]]
        self._tracks.clear()
        return events


def detection_pdu(event: str, det: Detection):
    """A detection event as a PDU: its metadata dict holds `event` ("new" | "end") and the
    Detection's fields; the payload is empty."""
    meta = pmt.make_dict()
    meta = pmt.dict_add(meta, pmt.intern("event"), pmt.intern(event))
    for key, value in det.to_dict().items():
        v = pmt.from_long(value) if isinstance(value, int) else pmt.from_double(value)
        meta = pmt.dict_add(meta, pmt.intern(key), v)
    return pmt.cons(meta, pmt.init_u8vector(0, []))


class detector(gr.sync_block):
    """GNU Radio block: PSD vectors (dB) in, one PDU per detection event out on `detections`.

    The frequency axis comes from the latest rx_freq tag (else center_freq) and samp_rate;
    times from rx_time tags. Each PDU's metadata holds the Detection fields and `event`
    ("new" when a signal is confirmed, "end" when it is gone, or on flush()).
    """

    def __init__(
        self,
        fft_size=1024,
        n_avg=100,
        samp_rate=2.4e6,
        pfa=1e-6,
        hysteresis_db=3.0,
        confirm_frames=2,
        hold_frames=3,
        center_freq=0.0,
    ):
        # (fft_size, n_avg, samp_rate) as drift.psd; the keyword names are unchanged. Before
        # 0.2 the order was (fft_size, samp_rate, n_avg): a call in that order gives an n_avg
        # above the sample rate (more frames averaged than the seconds of a whole FFT frame
        # hold samples), which no real setting does, so it is read in the old order.
        if n_avg > samp_rate:
            warnings.warn(
                "drift.detector(fft_size, samp_rate, n_avg, ...) is the old argument order; "
                "it is now (fft_size, n_avg, samp_rate, ...) as drift.psd (use keywords)",
                DeprecationWarning,
                stacklevel=2,
            )
            n_avg, samp_rate = samp_rate, n_avg
        if int(fft_size) < 8:
            raise ValueError(f"fft_size must be >= 8, got {fft_size}")
        if not samp_rate > 0:
            raise ValueError(f"samp_rate must be > 0, got {samp_rate}")
        gr.sync_block.__init__(self, "drift_detector", [(np.float32, int(fft_size))], [])
        self.fft_size = int(fft_size)
        self.samp_rate = float(samp_rate)
        self.det = Detector(
            self.samp_rate / self.fft_size,
            n_avg,
            pfa,
            hysteresis_db,
            confirm_frames=confirm_frames,
            hold_frames=hold_frames,
        )
        self.center_freq = float(center_freq)
        self._time = 0.0
        self._port = pmt.intern("detections")
        self._lock = threading.Lock()  # work() and flush() run on different threads
        self.message_port_register_out(self._port)

    def _freqs(self):
        k = np.arange(self.fft_size) - self.fft_size // 2
        return self.center_freq + k * self.samp_rate / self.fft_size

    def _publish(self, events):
        for event, d in events:
            self.message_port_pub(self._port, detection_pdu(event, d))

    def work(self, input_items, output_items):
        rows = input_items[0]
        start = self.nitems_read(0)
        row_tags = self.get_tags_in_range(0, start, start + len(rows))
        with self._lock:
            self._process(rows, start, row_tags)
        return len(rows)

    def _process(self, rows, start, row_tags):
        for i, row in enumerate(rows):
            for tag in row_tags:
                if tag.offset != start + i:
                    continue
                key = pmt.symbol_to_string(tag.key)
                if key == "rx_freq":
                    self.center_freq = tags.read_rx_freq(tag.value)
                elif key == "rx_time" and (t := tags.read_rx_time(tag.value)) is not None:
                    self._time = t[0] + t[1]
            self._publish(self.det.update(row, self._freqs(), self._time))

    def flush(self):
        """Publish "end" for every signal still going on (call before stopping the flowgraph;
        messages sent while it stops may not reach blocks that have stopped)."""
        with self._lock:
            self._publish(self.det.flush())
