"""The device layer: one call opens a GNU Radio source from an args string.

Accepted `--device` strings:
  driver=rtlsdr,serial=...      gr-soapy (any SoapySDR driver)
  osmosdr:rtl=0                 gr-osmosdr args (prefix `osmosdr:`; `rtl=`, `hackrf=`,
                                `airspy=`, `bladerf=`, `uhd` and `soapy=` are recognised too)
  sigmf=path | path.sigmf-meta  a SigMF recording (rx_time from core:datetime)
  sim=SCENARIO.yaml,node=ID[,start=UNIX_TIME][,realtime=1][,channel=K]
                                what one node of a simulated RF world receives (drift.sim);
                                an array node gives one coherent stream per element, or
                                element K alone with channel=K
  testsig[,tones=F@DBM[@BW];...,noise=DBM_HZ,seed=N]
                                a built-in retunable test signal: emitters of known power (dBm),
                                tones or band-limited noise BW Hz wide, over a flat noise floor
                                (dBm/Hz); calibrated by construction

Every source puts `rx_time` on its first sample (and `rx_freq` where the centre is known),
so drift.psd can time-stamp its output.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import threading
import time
from dataclasses import dataclass, field

import numpy as np
import pmt
from gnuradio import blocks, gr

# Hardware sources (gr-soapy, gr-osmosdr) do not tag retunes, so the device layer does: the
# first sample at the new frequency is taken to be RETUNE_GUARD samples after the command,
# which covers the source's output buffer (bounded to SOURCE_BUFFER_ITEMS) and leaves the rest
# for the device's own latency; the sweeper's settle time comes on top.
SOURCE_BUFFER_ITEMS = 16384
RETUNE_GUARD = 65536


class DeviceError(ValueError):
    """A device string that names nothing usable, or a setting the device cannot take."""


@dataclass
class Capabilities:
    """What a source can do, in one model for real devices, recordings and test signals."""

    driver: str
    freq_range_hz: tuple[float, float]
    sample_rate_range_hz: tuple[float, float]
    default_sample_rate_hz: float
    max_bandwidth_hz: float
    gain_range_db: tuple[float, float] = (0.0, 0.0)
    has_tx: bool = False
    time_sources: list[str] = field(default_factory=list)
    clock_sources: list[str] = field(default_factory=list)
    fixed_center_hz: float | None = None  # a recording cannot retune
    usable_fraction: float = 0.75  # share of the band clear of filter roll-off
    settle_s: float = 0.0
    length_samples: int | None = None  # finite sources (recordings)
    cal_offset_db: float = 0.0  # PSD offset that makes the output read dBm/Hz
    channels: int = 1  # coherent output streams (an array node: one per element)

    def to_dict(self):
        return dict(self.__dict__)


@dataclass
class DeviceSpec:
    kind: str  # soapy | osmosdr | sigmf | sim | testsig
    args: dict[str, str]
    raw: str


def _split_args(text: str) -> dict[str, str]:
    out = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, _, value = part.partition("=")
        out[key.strip()] = value.strip()
    return out


def parse_device(text: str) -> DeviceSpec:
    """Classify a device string (see the module docstring)."""
    text = (text or "").strip()
    if not text:
        raise DeviceError("empty device string")
    if text.startswith("osmosdr:"):
        return DeviceSpec("osmosdr", _split_args(text[8:]), text[8:])
    if text.endswith((".sigmf-meta", ".sigmf-data", ".sigmf")) and "=" not in text:
        return DeviceSpec("sigmf", {"sigmf": text}, text)
    args = _split_args(text)
    if "sigmf" in args:
        return DeviceSpec("sigmf", args, text)
    if "testsig" in args:
        return DeviceSpec("testsig", args, text)
    if "sim" in args:
        if not args.get("node"):
            raise DeviceError(f"device {text!r}: a simulated device needs node=ID")
        return DeviceSpec("sim", args, text)
    if "driver" in args:
        return DeviceSpec("soapy", args, text)
    if args.keys() & {"rtl", "hackrf", "airspy", "bladerf", "uhd", "soapy", "rtl_tcp", "file"}:
        return DeviceSpec("osmosdr", args, text)
    raise DeviceError(
        f"device {text!r}: give SoapySDR args (driver=rtlsdr,...), osmosdr:<args>, "
        "sigmf=<recording>, or testsig"
    )


def device_key(spec: DeviceSpec) -> str | None:
    """Which calibration record belongs to this device (None: a recording, never calibrated)."""
    if spec.kind == "sim":
        return f"sim:{os.path.abspath(spec.args['sim'])}:{spec.args['node']}"
    if spec.kind == "sigmf":
        return None
    if spec.kind == "testsig":
        return "testsig"
    keep = ("driver", "serial", "rtl", "hackrf", "airspy", "bladerf", "uhd", "soapy")
    ident = ",".join(f"{k}={v}" for k, v in sorted(spec.args.items()) if k in keep)
    return f"{spec.kind}:{ident}"


def load_calibration(spec: DeviceSpec, store=None):
    """The device's valid calibration record, if it has one."""
    from .calibration import CalibrationStore

    key = device_key(spec)
    return None if key is None else (store or CalibrationStore()).load(key)


# -- rx_time / rx_freq tagging ------------------------------------------------------------
def rx_time_value(t: float) -> pmt.pmt_t:
    secs = math.floor(t)
    return pmt.make_tuple(pmt.from_uint64(int(secs)), pmt.from_double(t - secs))


class tagger(gr.sync_block):
    """Pass-through that adds fixed tags at absolute offsets, rx_time from the host clock at
    the first sample when `host_time` is set (sources that give no time of their own), and
    rx_freq on retunes it forwards to a source that does not tag them itself.

    Retunes: a `cmd` message ({"freq": Hz}) is passed on through `cmd_out`; the new frequency
    is tagged `guard_samples` after the samples already produced (those still in the source's
    buffers at the old frequency). The guard is an estimate, so the sweeper's settle time
    should cover the device's own tuning latency.
    """

    def __init__(self, tags=(), host_time=False, guard_samples=0, tune_scale=1.0):
        gr.sync_block.__init__(self, "drift_tagger", [np.complex64], [np.complex64])
        self._tags = sorted(tags, key=lambda t: t[0])  # (offset, key, pmt value)
        self._host_time = host_time
        self._guard = int(guard_samples)
        self._tune_scale = float(tune_scale)  # calibrated LO: ask the tuner for freq * scale
        self._lock = threading.Lock()
        self.message_port_register_in(pmt.intern("cmd"))
        self.message_port_register_out(pmt.intern("cmd_out"))
        self.set_msg_handler(pmt.intern("cmd"), self._on_cmd)

    def _on_cmd(self, msg):
        if not (pmt.is_dict(msg) and pmt.dict_has_key(msg, pmt.intern("freq"))):
            self.message_port_pub(pmt.intern("cmd_out"), msg)
            return
        freq = pmt.dict_ref(msg, pmt.intern("freq"), pmt.PMT_NIL)
        tuned = pmt.from_double(pmt.to_double(freq) * self._tune_scale)
        self.message_port_pub(pmt.intern("cmd_out"), pmt.dict_add(msg, pmt.intern("freq"), tuned))
        with self._lock:  # the wanted frequency, where the retune is taken to land
            at = self.nitems_written(0) + self._guard
            self._tags.append((at, "rx_freq", pmt.from_double(pmt.to_double(freq))))
            self._tags.sort(key=lambda t: t[0])

    def work(self, input_items, output_items):
        n = len(output_items[0])
        output_items[0][:] = input_items[0][:n]
        start = self.nitems_written(0)
        if self._host_time and start == 0 and n:
            self.add_item_tag(0, 0, pmt.intern("rx_time"), rx_time_value(time.time()))
        with self._lock:
            while self._tags and self._tags[0][0] < start + n:
                offset, key, value = self._tags.pop(0)
                self.add_item_tag(0, max(offset, start), pmt.intern(key), value)
        return n


# -- the built-in test signal ----------------------------------------------------------------
DEFAULT_TONES = (  # (frequency Hz, power dBm[, bandwidth Hz]): an FM band of sorts
    (88.9e6, -62.0, 150e3),
    (91.3e6, -75.0),
    (94.7e6, -55.0, 180e3),
    (99.1e6, -70.0, 120e3),
    (103.5e6, -58.0),
    (106.1e6, -80.0),
)


class test_signal_source(gr.sync_block):
    """Emitters of known power over flat noise, as a calibrated receiver would see them.

    Each emitter is (freq_hz, power_dbm) for a tone or (freq_hz, power_dbm, bandwidth_hz) for
    band-limited noise. Sample power is in mW, so drift.psd with cal_offset_db=0 reads dBm/Hz.
    Retunes on a `cmd` message ({"freq": Hz}) and tags the first sample at the new centre with
    rx_freq; rx_time counts from `start_time` (UNIX seconds) at sample 0. Deterministic for a
    seed.
    """

    def __init__(self, samp_rate_hz, center_hz, tones=DEFAULT_TONES, noise_dbm_hz=-150.0,
                 seed=1, start_time=None):
        gr.sync_block.__init__(self, "drift_test_signal", [], [np.complex64])
        from scipy import signal as sps

        self.samp_rate_hz = float(samp_rate_hz)
        self.noise_dbm_hz = float(noise_dbm_hz)
        self._rng = np.random.default_rng(seed)
        self._emitters = []
        for spec in tones:
            f, p = float(spec[0]), float(spec[1])
            bw = float(spec[2]) if len(spec) > 2 else 0.0
            if bw >= self.samp_rate_hz:
                raise DeviceError(f"testsig: bandwidth {bw:g} Hz is not below the sample rate")
            taps = None
            if bw > 0:
                taps = sps.firwin(63, bw / 2, fs=self.samp_rate_hz, window=("kaiser", 6.0))
                taps /= np.sqrt(np.sum(taps**2))  # unit noise gain: power stays p
            self._emitters.append({"f": f, "amp": math.sqrt(10 ** (p / 10)), "taps": taps,
                                   "zi": None if taps is None else np.zeros(62, complex)})
        self.tones = [tuple(t) for t in tones]
        self._center = float(center_hz)
        self._pending = float(center_hz)
        self._lock = threading.Lock()
        self._start_time = time.time() if start_time is None else float(start_time)
        self.message_port_register_in(pmt.intern("cmd"))
        self.set_msg_handler(pmt.intern("cmd"), self._on_cmd)

    def _on_cmd(self, msg):
        if pmt.is_dict(msg) and pmt.dict_has_key(msg, pmt.intern("freq")):
            with self._lock:
                self._pending = pmt.to_double(pmt.dict_ref(msg, pmt.intern("freq"), pmt.PMT_NIL))

    def work(self, input_items, output_items):
        from scipy import signal as sps

        out = output_items[0]
        n = len(out)
        start = self.nitems_written(0)
        with self._lock:
            pending = self._pending
        if start == 0:
            self.add_item_tag(0, 0, pmt.intern("rx_time"), rx_time_value(self._start_time))
        if start == 0 or pending != self._center:
            self._center = pending
            self.add_item_tag(0, start, pmt.intern("rx_freq"), pmt.from_double(pending))
        fs = self.samp_rate_hz
        sigma = math.sqrt(10 ** (self.noise_dbm_hz / 10) * fs / 2)
        x = self._rng.standard_normal(2 * n).view(np.complex128) * sigma
        t = (start + np.arange(n)) / fs
        for e in self._emitters:
            off = e["f"] - self._center
            if abs(off) >= fs / 2:
                continue  # out of band: the receiver's filter removes it
            tone = e["amp"] * np.exp(2j * np.pi * off * t)
            if e["taps"] is not None:  # band-limited noise around the carrier
                w = self._rng.standard_normal(2 * n).view(np.complex128) / math.sqrt(2)
                base, e["zi"] = sps.lfilter(e["taps"], 1.0, w, zi=e["zi"])
                tone *= base
            x += tone
        out[:] = x
        return n


# -- opening sources ------------------------------------------------------------------------
def _sim_scenario(spec):
    from .sim import load_scenario

    return load_scenario(spec.args["sim"])


def _sim_channel(spec):
    if "channel" not in spec.args:
        return None
    try:
        return int(spec.args["channel"])
    except ValueError:
        raise DeviceError(f"channel={spec.args['channel']!r}: give an element number "
                          "(0, 1, ...)") from None


def sink_extra_channels(tb, src, caps: Capabilities) -> None:
    """Connect null sinks to a multi-channel source's outputs 1.. (a consumer of one stream
    reads channel 0; GNU Radio refuses unconnected outputs)."""
    for port in range(1, caps.channels):
        sink = blocks.null_sink(gr.sizeof_gr_complex)
        tb.connect((src, port), sink)


def _sigmf_path(spec):
    path = spec.args["sigmf"]
    for suffix in (".sigmf-meta", ".sigmf-data", ".sigmf"):
        if path.endswith(suffix):
            path = path[: -len(suffix)]
    if not os.path.exists(path + ".sigmf-meta"):
        raise DeviceError(f"sigmf: no recording at {path}.sigmf-meta")
    return path


_SIGMF_TYPES = {  # datatype -> (item size, numpy dtype, scale to [-1, 1))
    "cf32_le": (8, np.complex64, 1.0),
    "ci16_le": (4, np.int16, 1 / 32768),
    "ci8": (2, np.int8, 1 / 128),
    "cu8": (2, np.uint8, 1 / 128),
}


def _read_sigmf(spec):
    import sigmf

    path = _sigmf_path(spec)
    try:
        meta = sigmf.sigmffile.fromfile(path + ".sigmf-meta", skip_checksum=True)
    except Exception as exc:  # sigmf raises several types for bad files
        raise DeviceError(f"sigmf: cannot read {path}.sigmf-meta: {exc}") from exc
    glob = meta.get_global_info()
    dtype = glob.get("core:datatype", "")
    if dtype not in _SIGMF_TYPES:
        raise DeviceError(
            f"sigmf: datatype {dtype!r} is not supported (use one of {', '.join(_SIGMF_TYPES)})"
        )
    captures = meta.get_captures()
    if not captures or "core:frequency" not in captures[0]:
        raise DeviceError("sigmf: the first capture has no core:frequency")
    rate = float(glob.get("core:sample_rate", 0))
    if not rate > 0:
        raise DeviceError("sigmf: core:sample_rate is missing")
    return path, meta, glob, captures, dtype, rate


def _parse_datetime(text):
    text = text.replace("Z", "+00:00")
    return dt.datetime.fromisoformat(text).timestamp()


def capabilities(spec: DeviceSpec) -> Capabilities:
    """Discover what the device can do (without starting a stream)."""
    if spec.kind == "testsig":
        return Capabilities(
            driver="testsig", freq_range_hz=(1e6, 6e9), sample_rate_range_hz=(1e5, 20e6),
            default_sample_rate_hz=2.4e6, max_bandwidth_hz=20e6,
            usable_fraction=0.75, time_sources=["host"],
        )
    if spec.kind == "sim":
        from .sim import synth

        node = _sim_scenario(spec).node(spec.args["node"])
        m = node.model
        return Capabilities(
            driver=f"sim:{m.id}", freq_range_hz=(m.freq_min_hz, m.freq_max_hz),
            sample_rate_range_hz=(1e3, m.max_bandwidth_hz),
            default_sample_rate_hz=min(m.max_bandwidth_hz, 2.4e6),
            max_bandwidth_hz=m.max_bandwidth_hz, gain_range_db=m.gain_range_db,
            has_tx=m.has_tx, time_sources=[node.clock.source], usable_fraction=0.75,
            cal_offset_db=synth.nominal_full_scale_dbm(node),
            channels=1 if "channel" in spec.args else node.channels,
        )
    if spec.kind == "sigmf":
        path, meta, glob, captures, dtype, rate = _read_sigmf(spec)
        fc = float(captures[0]["core:frequency"])
        size = os.path.getsize(path + ".sigmf-data") // _SIGMF_TYPES[dtype][0]
        return Capabilities(
            driver="sigmf", freq_range_hz=(fc - rate / 2, fc + rate / 2),
            sample_rate_range_hz=(rate, rate), default_sample_rate_hz=rate,
            max_bandwidth_hz=rate, fixed_center_hz=fc, usable_fraction=1.0,
            length_samples=size, time_sources=["recording"],
            cal_offset_db=float(glob.get("drift:cal_offset_db", 0.0)),
        )
    if spec.kind == "soapy":
        return _soapy_capabilities(spec)
    if spec.kind == "osmosdr":
        return _osmosdr_capabilities(spec)
    raise DeviceError(f"unknown device kind {spec.kind}")


def _soapy_capabilities(spec):
    import SoapySDR

    found = SoapySDR.Device.enumerate(spec.raw)
    if not found:
        raise DeviceError(f"no SoapySDR device matches {spec.raw!r} (is it plugged in?)")
    try:
        dev = SoapySDR.Device(spec.raw)
    except RuntimeError as exc:
        raise DeviceError(f"cannot open SoapySDR device {spec.raw!r}: {exc}") from None
    rx = SoapySDR.SOAPY_SDR_RX
    franges = dev.getFrequencyRange(rx, 0)
    rates = dev.getSampleRateRange(rx, 0)
    gain = dev.getGainRange(rx, 0)
    bw = dev.getBandwidthRange(rx, 0)
    rate_hi = max(r.maximum() for r in rates)
    return Capabilities(
        driver=dev.getDriverKey(),
        freq_range_hz=(min(r.minimum() for r in franges), max(r.maximum() for r in franges)),
        sample_rate_range_hz=(min(r.minimum() for r in rates), rate_hi),
        default_sample_rate_hz=min(rate_hi, 2.4e6),
        max_bandwidth_hz=max([r.maximum() for r in bw] or [rate_hi]),
        gain_range_db=(gain.minimum(), gain.maximum()),
        has_tx=dev.getNumChannels(SoapySDR.SOAPY_SDR_TX) > 0,
        time_sources=list(dev.listTimeSources()),
        clock_sources=list(dev.listClockSources()),
        settle_s=0.05,
    )


def _osmosdr_capabilities(spec):
    import osmosdr

    found = osmosdr.device.find(osmosdr.device_t(spec.raw))
    if not found:
        raise DeviceError(f"no gr-osmosdr device matches {spec.raw!r} (is it plugged in?)")
    try:
        src = osmosdr.source(spec.raw)
    except RuntimeError as exc:
        raise DeviceError(f"no gr-osmosdr device matches {spec.raw!r}: {exc}") from None
    freqs, rates, gains = src.get_freq_range(), src.get_sample_rates(), src.get_gain_range()
    return Capabilities(
        driver="osmosdr", freq_range_hz=(freqs.start(), freqs.stop()),
        sample_rate_range_hz=(rates.start(), rates.stop()),
        default_sample_rate_hz=min(rates.stop(), 2.4e6), max_bandwidth_hz=rates.stop(),
        gain_range_db=(gains.start(), gains.stop()), settle_s=0.05,
    )


def source(device_args: str, samp_rate_hz: float, center_hz: float,
           gain_db: float | None = None):
    """The source block alone (for GRC's DRIFT Device Source)."""
    return open_source(parse_device(device_args), samp_rate_hz, center_hz, gain_db)[0]


def open_source(spec: DeviceSpec, samp_rate_hz: float, center_hz: float,
                gain_db: float | None = None, caps: Capabilities | None = None,
                calibration="stored"):
    """A GNU Radio source block for the device, tuned, tagged with rx_time (and rx_freq).

    Returns (block, caps). Retunable sources take {"freq": Hz} on their "cmd" port and tag
    the first sample at the new frequency with rx_freq (recordings have no "cmd" port).
    calibration: "stored" applies the device's calibration record if it has a valid one,
    None applies none, or a CalibrationRecord. With one, the tuner is set so its actual LO is
    at the wanted frequency, and caps.cal_offset_db is the calibrated PSD offset.
    """
    caps = caps or capabilities(spec)
    record = load_calibration(spec) if calibration == "stored" else calibration
    scale = 1.0
    if record is not None:
        scale = record.tuning_hz(1.0)
        offset = record.gain_offset_db(center_hz)
        if offset is not None:
            caps.cal_offset_db = offset
    lo, hi = caps.sample_rate_range_hz
    if not lo <= samp_rate_hz <= hi:
        raise DeviceError(
            f"sample rate {samp_rate_hz:g} S/s is outside the device's range {lo:g}-{hi:g} S/s"
        )
    if spec.kind == "testsig":
        tones = DEFAULT_TONES
        if spec.args.get("tones"):
            try:
                tones = [tuple(float(v) for v in t.split("@")) for t in
                         spec.args["tones"].split(";")]
            except ValueError as exc:
                raise DeviceError("testsig: tones must be FREQ@DBM;FREQ@DBM...") from exc
        return test_signal_source(
            samp_rate_hz, center_hz, tones, float(spec.args.get("noise", -150.0)),
            int(spec.args.get("seed", 1)),
            float(spec.args["start"]) if "start" in spec.args else None,
        ), caps
    if spec.kind == "sigmf":
        return _open_sigmf(spec), caps
    if spec.kind == "sim":
        from .sim.source import sim_source

        try:
            return sim_source(
                _sim_scenario(spec), spec.args["node"], samp_rate_hz, center_hz,
                float(spec.args["start"]) if "start" in spec.args else None,
                realtime=spec.args.get("realtime", "0") not in ("0", "", "false"),
                tune_scale=scale,
                channel=_sim_channel(spec),
            ), caps
        except ValueError as exc:
            raise DeviceError(str(exc)) from exc
    if spec.kind == "soapy":
        return _open_soapy(spec, samp_rate_hz, center_hz, gain_db, scale), caps
    return _open_osmosdr(spec, samp_rate_hz, center_hz, gain_db, scale), caps


class _hier_source(gr.hier_block2):
    """Source + tagger as one block; a `cmd` input retunes the source through the tagger."""

    def __init__(self, source, tags=(), host_time=False, cmd_port=None, items=None,
                 guard_samples=0, center_hz=None, tune_scale=1.0):
        gr.hier_block2.__init__(
            self, "drift_device_source", gr.io_signature(0, 0, 0),
            gr.io_signature(1, 1, gr.sizeof_gr_complex),
        )
        self.source = source
        if guard_samples:
            source.set_max_output_buffer(SOURCE_BUFFER_ITEMS)
        if center_hz is not None:
            tags = list(tags) + [(0, "rx_freq", pmt.from_double(center_hz))]
        self.tag = tagger(tags, host_time, guard_samples, tune_scale)
        # Python blocks must stay referenced from Python while the flowgraph runs.
        self.items = list(items or [])
        self.connect(*([source] + self.items + [self.tag, self]))
        if cmd_port:
            self.message_port_register_hier_in("cmd")
            self.msg_connect(self, "cmd", self.tag, "cmd")
            self.msg_connect(self.tag, "cmd_out", source, cmd_port)


def _open_sigmf(spec):
    path, meta, glob, captures, dtype, rate = _read_sigmf(spec)
    itemsize, np_type, scale = _SIGMF_TYPES[dtype]
    tags = []
    for cap in captures:
        start = int(cap.get("core:sample_start", 0))
        if "core:datetime" in cap:
            tags.append((start, "rx_time", rx_time_value(_parse_datetime(cap["core:datetime"]))))
        if "core:frequency" in cap:
            tags.append((start, "rx_freq", pmt.from_double(float(cap["core:frequency"]))))
    if not any(t[1] == "rx_time" for t in tags):
        tags.append((0, "rx_time", rx_time_value(0.0)))
    data = path + ".sigmf-data"
    if dtype == "cf32_le":
        return _hier_source(blocks.file_source(itemsize, data, False), tags)
    if dtype == "ci16_le":
        src = blocks.file_source(gr.sizeof_short, data, False)
        conv = [blocks.interleaved_short_to_complex(False, False, 1 / scale)]
    elif dtype == "ci8":
        src = blocks.file_source(gr.sizeof_char, data, False)
        conv = [blocks.interleaved_char_to_complex(False, 1 / scale)]
    else:  # cu8 (rtl_sdr raw): offset binary
        src = blocks.file_source(gr.sizeof_char, data, False)
        conv = [_cu8_to_complex()]
    return _hier_source(src, tags, items=conv)


class _cu8_to_complex(gr.decim_block):
    """rtl_sdr's offset-binary unsigned 8-bit IQ pairs to complex in [-1, 1)."""

    def __init__(self):
        gr.decim_block.__init__(self, "drift_cu8", [np.uint8], [np.complex64], 2)

    def work(self, input_items, output_items):
        out = output_items[0]
        raw = input_items[0][: 2 * len(out)].astype(np.float32) - 127.5
        out[:] = (raw[0::2] + 1j * raw[1::2]) / 128.0
        return len(out)


def _open_soapy(spec, samp_rate_hz, center_hz, gain_db, scale):
    from gnuradio import soapy

    driver = spec.args.get("driver", "")
    dev_args = ",".join(f"{k}={v}" for k, v in spec.args.items() if k != "driver")
    src = soapy.source(f"driver={driver}", "fc32", 1, dev_args, "", [""], [""])
    src.set_sample_rate(0, samp_rate_hz)
    src.set_frequency(0, center_hz * scale)
    if gain_db is not None:
        src.set_gain_mode(0, False)
        src.set_gain(0, gain_db)
    # gr-soapy in GNU Radio 3.10 emits no rx_time: stamp the first sample from the host clock.
    return _hier_source(src, host_time=True, cmd_port="cmd", guard_samples=RETUNE_GUARD,
                        center_hz=center_hz, tune_scale=scale)


def _open_osmosdr(spec, samp_rate_hz, center_hz, gain_db, scale):
    import osmosdr

    src = osmosdr.source(spec.raw)
    src.set_sample_rate(samp_rate_hz)
    src.set_center_freq(center_hz * scale)
    if gain_db is not None:
        src.set_gain_mode(False)
        src.set_gain(gain_db)
    return _hier_source(src, host_time=True, cmd_port="command", guard_samples=RETUNE_GUARD,
                        center_hz=center_hz, tune_scale=scale)
