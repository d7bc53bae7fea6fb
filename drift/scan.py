"""`drift scan`: a calibrated wideband spectrum scanner, like rtl_power / soapy_power.

The flowgraph is source -> drift.sweeper (when the range needs several hops) -> drift.psd ->
a collector. Rows reach the main thread through a queue; the outputs are written as rows
arrive, each to a temporary name that is renamed into place only when the scan ends cleanly
(Ctrl-C included), so no output is ever half-written.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import os
import queue
import threading
from dataclasses import dataclass, field

import numpy as np
from gnuradio import gr
from gnuradio.drift import devices, tags

from .errors import CommandError

log = logging.getLogger("drift.scan")


@dataclass
class ScanConfig:
    device: str
    start_hz: float
    stop_hz: float
    bin_hz: float
    interval_s: float = 1.0
    duration_s: float | None = None  # None: one interval (a single sweep) or the recording
    rate_hz: float | None = None
    gain_db: float | None = None
    cal_offset_db: float = 0.0
    overlap: float = 0.0
    usable: float | None = None
    settle_s: float | None = None
    pfa: float = 1e-6
    csv: str | None = None
    sigmf: str | None = None
    png: str | None = None
    detections: str | None = None
    csv_hop_times: bool = False  # CSV: each hop's own time instead of its sweep's
    progress: bool = True


class NoSweep(CommandError):
    """The scan ended before its first sweep was complete; nothing was written."""


@dataclass
class Row:
    sweep: int
    hop: int
    time_s: float
    center_hz: float
    psd_db: np.ndarray


@dataclass
class ScanResult:
    plan: object
    caps: devices.Capabilities
    sweeps: list = field(default_factory=list)  # (time_s, stitched spectrum)
    detections: list = field(default_factory=list)  # Detection objects
    rows: int = 0
    interrupted: bool = False

    @property
    def freqs_hz(self):
        return self.plan.freqs_hz


class _collector(gr.sync_block):
    """Sink for PSD vectors: hands each with its tags (time, centre, hop, sweep) to a queue."""

    def __init__(self, fft_size, out_queue):
        gr.sync_block.__init__(self, "drift_scan_collector", [(np.float32, fft_size)], [])
        self._queue = out_queue
        self._tags = tags.RowTags()
        self._count = 0

    def work(self, input_items, output_items):
        rows = input_items[0]
        t = self._tags
        for i in t.rows(self, len(rows)):
            # swept: the sweeper's tags say which sweep; one hop: every row is a sweep
            sweep = t.sweep if (t.sweep_tagged or t.hop) else self._count
            self._queue.put(Row(sweep, t.hop or 0, t.time_s, t.freq, rows[i].copy()))
            self._count += 1
        return len(rows)


def _hop_calibration(spec, plan, first_center_hz):
    """Per hop, the device calibration's gain offset at its centre less the one at the first
    hop's (which drift.psd applies); None when no stored record has gain points."""
    record = devices.load_calibration(spec)
    if record is None or not record.gain_points or len(plan.hops) < 2:
        return None
    base = record.gain_offset_db(first_center_hz)
    return [record.gain_offset_db(h.center_hz) - base for h in plan.hops]


def _part(path):
    d, base = os.path.split(os.path.abspath(path))
    return os.path.join(d, f".{base}.part")


def _check_writable(path, what):
    if os.path.isdir(path):
        raise ValueError(f"{what}: {path} is a directory, give a file name")
    d = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(d):
        raise ValueError(f"{what}: directory {d} does not exist")
    if not os.access(d, os.W_OK):
        raise ValueError(f"{what}: directory {d} is not writable")


class CsvWriter:
    """rtl_power's CSV: date, time, Hz low, Hz high, Hz step, samples, dB, dB, ... per hop.

    As rtl_power, every hop of a sweep carries the sweep's time (that of its first sample), so
    the readers that group lines into sweeps by their time stamp work; ``hop_times`` stamps
    each hop with its own time instead. Samples: the IQ samples averaged into the hop's line."""

    def __init__(self, path, plan, hop_times=False):
        self.path, self.plan, self.hop_times = path, plan, hop_times
        self._tmp = _part(path)
        self._f = open(self._tmp, "w")

    def add_sweep(self, rows: dict, time_s: float):
        """One sweep's rows (by hop), written in hop order."""
        for hop in sorted(rows):
            row = rows[hop]
            self._line(row, row.time_s if self.hop_times else time_s)

    def _line(self, row: Row, time_s: float):
        plan = self.plan
        hop = plan.hops[row.hop]
        f = plan.hop_freqs_hz(hop)
        stamp = dt.datetime.fromtimestamp(time_s, dt.UTC)
        values = ", ".join(f"{v:.2f}" for v in row.psd_db[hop.first_bin : hop.stop_bin])
        self._f.write(
            f"{stamp:%Y-%m-%d}, {stamp:%H:%M:%S}, {f[0] - plan.bin_hz / 2:.0f}, "
            f"{f[-1] + plan.bin_hz / 2:.0f}, {plan.bin_hz:.2f}, "
            f"{plan.n_avg * plan.fft_size}, {values}\n"
        )

    def close(self, keep=True):
        self._f.close()
        if keep:
            os.replace(self._tmp, self.path)
        else:
            os.unlink(self._tmp)


class SigmfWriter:
    """The PSD frames as a SigMF recording: float32 bins (dBm/Hz), one capture per frame with
    its centre frequency and time, detections as annotations."""

    def __init__(self, basename, plan, caps, cal_offset_db):
        for suffix in (".sigmf-meta", ".sigmf-data"):
            if basename.endswith(suffix):
                basename = basename[: -len(suffix)]
        self.base, self.plan, self.caps = basename, plan, caps
        self.cal_offset_db = cal_offset_db
        self._data_tmp = _part(basename + ".sigmf-data")
        self._f = open(self._data_tmp, "wb")
        self._captures = []
        self._n = 0

    def add(self, row: Row):
        self._captures.append((self._n, row))
        self._f.write(np.asarray(row.psd_db, dtype="<f4").tobytes())
        self._n += self.plan.fft_size

    def close(self, keep=True, detections=()):
        self._f.close()
        if not keep:
            os.unlink(self._data_tmp)
            return
        import sigmf
        from sigmf import SigMFFile

        plan = self.plan
        meta = SigMFFile(
            global_info={
                sigmf.DATATYPE_KEY: "rf32_le",
                sigmf.SAMPLE_RATE_KEY: plan.samp_rate_hz,
                sigmf.DESCRIPTION_KEY: (
                    f"DRIFT PSD frames: each frame is {plan.fft_size} float32 bins in dBm/Hz "
                    f"(fftshifted, bin {plan.bin_hz:g} Hz, {plan.n_avg} averages); "
                    "core:sample_rate is the receiver's"
                ),
                sigmf.RECORDER_KEY: "drift scan",
                sigmf.HW_KEY: self.caps.driver,
                sigmf.EXTENSIONS_KEY: [{"name": "drift", "version": "0.1.0", "optional": True}],
                "drift:frame_type": "psd",
                "drift:fft_size": plan.fft_size,
                "drift:bin_hz": plan.bin_hz,
                "drift:n_avg": plan.n_avg,
                "drift:units": "dBm/Hz",
                "drift:cal_offset_db": self.cal_offset_db,
            }
        )
        for start, row in self._captures:
            meta.add_capture(
                start,
                metadata={
                    sigmf.FREQUENCY_KEY: row.center_hz,
                    sigmf.DATETIME_KEY: dt.datetime.fromtimestamp(row.time_s, dt.UTC)
                    .isoformat()
                    .replace("+00:00", "Z"),
                    "drift:hop": row.hop,
                    "drift:sweep": row.sweep,
                },
            )
        for d in detections:
            meta.add_annotation(
                0,
                self._n,
                metadata={
                    sigmf.FREQ_LOWER_EDGE_KEY: d.center_freq_hz - d.bandwidth_hz / 2,
                    sigmf.FREQ_UPPER_EDGE_KEY: d.center_freq_hz + d.bandwidth_hz / 2,
                    sigmf.LABEL_KEY: f"{d.power_db:.1f} dBm",
                    "drift:snr_db": d.snr_db,
                },
            )
        meta_tmp = _part(self.base + ".sigmf-meta")
        with open(meta_tmp, "w") as f:
            meta.dump(f, pretty=True)
        os.replace(self._data_tmp, self.base + ".sigmf-data")
        os.replace(meta_tmp, self.base + ".sigmf-meta")


def render_waterfall(path, freqs_hz, sweeps, detections=(), title=""):
    """A waterfall (time down, frequency across) over the mean spectrum, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    times = np.array([t for t, _ in sweeps])
    data = np.array([s for _, s in sweeps])
    f_mhz = freqs_hz / 1e6
    fig, (ax1, ax2) = plt.subplots(
        2, 1, figsize=(11, 7), sharex=True, gridspec_kw={"height_ratios": [1, 2]}
    )
    with np.errstate(all="ignore"):
        mean = 10 * np.log10(np.nanmean(10 ** (data / 10), axis=0))
    ax1.plot(f_mhz, mean, lw=0.8, color="tab:blue")
    for d in detections:
        ax1.axvline(d.center_freq_hz / 1e6, color="tab:red", lw=0.6, alpha=0.6)
    ax1.set_ylabel("PSD (dBm/Hz)")
    ax1.grid(alpha=0.3)
    ax1.set_title(title)
    finite = data[np.isfinite(data)]
    vmin, vmax = np.percentile(finite, [5, 99.9]) if finite.size else (None, None)
    t_rel = times - times[0] if len(times) else times
    bottom = t_rel[-1] if len(t_rel) > 1 and t_rel[-1] > 0 else 1.0  # one sweep: a band
    extent = [f_mhz[0], f_mhz[-1], bottom, 0]
    im = ax2.imshow(
        data,
        aspect="auto",
        extent=extent,
        cmap="viridis",
        vmin=vmin,
        vmax=vmax,
        interpolation="nearest",
    )
    ax2.set_xlabel("Frequency (MHz)")
    ax2.set_ylabel("Time since start (s)")
    fig.colorbar(im, ax=[ax1, ax2], label="dBm/Hz", shrink=0.8)
    tmp = _part(path)
    fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    os.replace(tmp, path)


def build_plan(cfg: ScanConfig, caps: devices.Capabilities):
    """The hop plan for a scan on a device, checked against what the device can do."""
    from gnuradio.drift import plan_hops

    if not cfg.stop_hz > cfg.start_hz:
        raise ValueError(f"--start ({cfg.start_hz:g} Hz) must be below --stop ({cfg.stop_hz:g} Hz)")
    if not cfg.interval_s > 0:
        raise ValueError(f"--interval must be > 0 s, got {cfg.interval_s:g}")
    if cfg.duration_s is not None and not cfg.duration_s > 0:
        raise ValueError(f"--duration must be > 0 s, got {cfg.duration_s:g}")
    lo, hi = caps.freq_range_hz
    if cfg.start_hz < lo or cfg.stop_hz > hi:
        what = "recording's band" if caps.fixed_center_hz is not None else "tuning range"
        raise ValueError(
            f"range {cfg.start_hz:g}-{cfg.stop_hz:g} Hz is outside the device's {what} "
            f"{lo:g}-{hi:g} Hz"
        )
    rate = caps.default_sample_rate_hz if cfg.rate_hz is None else cfg.rate_hz
    rlo, rhi = caps.sample_rate_range_hz
    if not rlo <= rate <= rhi:
        raise ValueError(f"--rate {rate:g} S/s is outside the device's range {rlo:g}-{rhi:g} S/s")
    usable = caps.usable_fraction if cfg.usable is None else cfg.usable
    settle = caps.settle_s if cfg.settle_s is None else cfg.settle_s
    common = dict(usable=usable, settle_s=settle, overlap=cfg.overlap)
    if caps.fixed_center_hz is not None:
        return plan_hops(
            cfg.start_hz,
            cfg.stop_hz,
            rate,
            cfg.bin_hz,
            dwell_s=cfg.interval_s,
            fixed_center_hz=caps.fixed_center_hz,
            **common,
        )
    probe = plan_hops(
        cfg.start_hz, cfg.stop_hz, rate, cfg.bin_hz, n_avg=1, tuning_range_hz=(lo, hi), **common
    )
    # Spread the interval over the hops: each hop integrates interval / hops, less settling.
    per_hop = cfg.interval_s / len(probe.hops) - probe.settle_samples / rate
    return plan_hops(
        cfg.start_hz,
        cfg.stop_hz,
        rate,
        cfg.bin_hz,
        dwell_s=max(per_hop, probe.fft_size / rate),
        tuning_range_hz=(lo, hi),
        **common,
    )


def _make_detector(plan, cfg):
    from gnuradio.drift import Detector

    # A scan's rows are whole sweeps: a signal counts from its first sweep, and ends after it
    # is missing from one.
    return Detector(
        bin_hz=plan.bin_hz, n_avg=plan.n_avg, pfa=cfg.pfa, confirm_frames=1, hold_frames=1
    )


def _check_outputs(cfg: ScanConfig):
    """Each output writable, a file (not a directory), and no two of them the same file."""
    base = cfg.sigmf
    for suffix in (".sigmf-meta", ".sigmf-data"):
        if base and base.endswith(suffix):
            base = base[: -len(suffix)]
    outputs = [
        (cfg.csv, "--csv"),
        (cfg.png, "--png"),
        (cfg.detections, "--detections"),
        (base and base + ".sigmf-meta", "--sigmf"),
        (base and base + ".sigmf-data", "--sigmf"),
    ]
    seen = {}
    for path, what in outputs:
        if not path:
            continue
        _check_writable(path, what)
        real = os.path.realpath(path)
        if real in seen and seen[real] != what:
            raise ValueError(f"{seen[real]} and {what} name the same file {path}")
        seen[real] = what


def _check_recording_length(cfg: ScanConfig, caps, plan):
    """A recording too short for one sweep is refused before anything runs."""
    have, need = caps.length_samples, plan.sweep_samples
    if have >= need:
        return
    rate = plan.samp_rate_hz
    raise ValueError(
        f"the recording holds {have} samples ({have / rate:.3g} s), fewer than one sweep "
        f"needs ({need} samples: --interval {cfg.interval_s:g} s, FFT of {plan.fft_size}); "
        "give a shorter --interval or a wider --bin"
    )


def run_scan(cfg: ScanConfig, stop_event: threading.Event | None = None) -> ScanResult:
    """Run a scan to its end (duration, recording end, or stop_event / Ctrl-C)."""
    from gnuradio import drift as grdrift

    spec = devices.parse_device(cfg.device)
    caps = devices.capabilities(spec)
    plan = build_plan(cfg, caps)
    _check_outputs(cfg)
    duration = cfg.interval_s if cfg.duration_s is None else cfg.duration_s
    if caps.length_samples is not None:
        _check_recording_length(cfg, caps, plan)
        if cfg.duration_s is None:
            duration = caps.length_samples / plan.samp_rate_hz
    n_sweeps = max(1, math.floor(duration / cfg.interval_s + 1e-9))
    multi = len(plan.hops) > 1
    center = plan.hops[0].center_hz

    tb = gr.top_block("drift_scan", catch_exceptions=False)
    # Opening the device applies its calibration record (LO and PSD offset) to caps.
    src, _ = devices.open_source(spec, plan.samp_rate_hz, center, cfg.gain_db, caps)
    cal = caps.cal_offset_db + cfg.cal_offset_db
    # The calibration's gain offset depends on frequency: drift.psd applies it at the first
    # hop's centre, each hop's rows get the difference to their own centre's.
    hop_adjust = _hop_calibration(spec, plan, center)
    psd = grdrift.psd(plan.fft_size, plan.n_avg, plan.samp_rate_hz, plan.overlap, cal_offset_db=cal)
    rows: queue.Queue = queue.Queue()
    sink = _collector(plan.fft_size, rows)
    if multi:
        # Every device-layer source tags its retunes with rx_freq (see gnuradio.drift.devices).
        sweeper = grdrift.sweeper(plan, retune_tags=True)
        tb.connect(src, sweeper, psd, sink)
        tb.msg_connect(sweeper, "cmd", src, "cmd")
    else:
        tb.connect(src, psd, sink)
    devices.sink_extra_channels(tb, src, caps)  # an array node: scan its channel 0

    writers = []
    try:
        csv = CsvWriter(cfg.csv, plan, cfg.csv_hop_times) if cfg.csv else None
        writers.append(csv)
        sig = SigmfWriter(cfg.sigmf, plan, caps, cal) if cfg.sigmf else None
        writers.append(sig)
    except OSError as exc:
        for w in writers:
            if w:
                w.close(keep=False)
        raise ValueError(f"cannot write output: {exc}") from exc

    result = ScanResult(plan, caps)
    detector = _make_detector(plan, cfg)
    finished = threading.Event()
    stop_event = stop_event or threading.Event()
    bar = None
    if cfg.progress:
        from tqdm import tqdm

        bar = tqdm(total=n_sweeps, unit="sweep", desc="scan", leave=False, dynamic_ncols=True)

    def wait_flowgraph():
        tb.wait()
        finished.set()

    current: dict[int, Row] = {}
    current_sweep = None

    def close_sweep():
        if not current:
            return
        spectrum = grdrift.stitch(plan, {h: r.psd_db for h, r in current.items()})
        t0 = min(r.time_s for r in current.values())
        result.sweeps.append((t0, spectrum))
        if csv:
            csv.add_sweep(current, t0)
        ok = np.isfinite(spectrum)
        if ok.all():
            for event, det in detector.update(spectrum, plan.freqs_hz, t0):
                if event == "end":
                    result.detections.append(det)
        current.clear()
        if bar is not None:
            bar.update(1)

    tb.start()
    waiter = threading.Thread(target=wait_flowgraph, daemon=True)
    waiter.start()
    ok = False
    try:
        while len(result.sweeps) < n_sweeps and not stop_event.is_set():
            try:
                row = rows.get(timeout=0.1)
            except queue.Empty:
                if finished.is_set() and rows.empty():
                    break
                continue
            if current_sweep is not None and row.sweep != current_sweep:
                close_sweep()
                if len(result.sweeps) >= n_sweeps:
                    break
            current_sweep = row.sweep
            if hop_adjust is not None and hop_adjust[row.hop]:
                row.psd_db = row.psd_db + np.float32(hop_adjust[row.hop])
            current[row.hop] = row
            result.rows += 1
            if sig:
                sig.add(row)
            if not multi or row.hop == len(plan.hops) - 1:
                close_sweep()
                current_sweep = None
        ok = True
    except KeyboardInterrupt:
        result.interrupted = True
        ok = True
    finally:
        tb.stop()
        # the waiter's tb.wait() returns once the flowgraph has stopped: one wait at a time
        # (two threads in top_block.wait at once can crash GNU Radio's scheduler)
        waiter.join()
        if bar is not None:
            bar.close()
        if ok:
            close_sweep()
            for _, det in detector.flush():
                result.detections.append(det)
        keep = ok and bool(result.sweeps)
        if csv:
            csv.close(keep=keep)
        if sig:
            sig.close(keep=keep, detections=result.detections)
    if stop_event.is_set():
        result.interrupted = True
    if not result.sweeps and not result.interrupted:
        raise NoSweep(
            f"no sweep: the source ended after {result.rows} of the {len(plan.hops)} "
            f"hop(s) of the first sweep ({plan.n_avg} x {plan.fft_size}-point FFTs each); "
            "nothing was written"
        )
    if cfg.png and result.sweeps:
        render_waterfall(
            cfg.png,
            plan.freqs_hz,
            result.sweeps,
            result.detections,
            title=f"drift scan {cfg.start_hz / 1e6:g}-{cfg.stop_hz / 1e6:g} MHz "
            f"({caps.driver}, bin {plan.bin_hz:g} Hz)",
        )
    if cfg.detections:
        tmp = _part(cfg.detections)
        with open(tmp, "w") as f:
            json.dump([d.to_dict() for d in result.detections], f, indent=1)
        os.replace(tmp, cfg.detections)
    return result
