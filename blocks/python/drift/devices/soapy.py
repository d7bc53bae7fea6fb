#
# Copyright 2026 DRIFT contributors.
#
# SPDX-License-Identifier: GPL-3.0-or-later
#
"""SoapySDR devices (``driver=rtlsdr,serial=...``: any SoapySDR driver).

Devices without hardware time stream through gr-soapy, stamped with the host clock at their
first sample. gr-soapy in GNU Radio 3.10 drops the time readStream gives and hides overflows,
so a device with hardware time (SoapySDR's hasHardwareTime: a USRP, a GPS-timed node of
driver=drift) streams through :class:`soapy_source` instead, which tags each block's device
time and what an overflow lost.

gr-drift's own SoapySDR module (driver=drift, blocks/soapy/) is found where this module was
installed: its directory is added to SOAPY_SDR_PLUGIN_PATH before SoapySDR is first used, and
DRIFT_PYTHON (the interpreter its scenario helper runs with) defaults to this process's.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time

import numpy as np
import pmt
from gnuradio import gr

from .. import tags
from .base import DEVICE_LOST, RETUNE_GUARD, Capabilities, DeviceError, DeviceSpec, _hier_source

#: the device-string keys that identify one device (its calibration record)
IDENTITY_KEYS = (
    "driver",
    "serial",
    "rtl",
    "hackrf",
    "airspy",
    "bladerf",
    "uhd",
    "soapy",
    "scenario",
    "node",
)


def _module_dir() -> str:
    try:
        from ._soapy_module import MODULE_DIR
    except ImportError:  # a source tree that CMake has not configured
        return ""
    return MODULE_DIR


def prepare_environment() -> None:
    """Point SoapySDR at gr-drift's driver=drift module and give the module's scenario
    helper this interpreter (unless the environment says otherwise). Takes effect when
    SoapySDR first loads its modules, so it runs when this package is imported."""
    module_dir = _module_dir()
    if module_dir and os.path.isdir(module_dir):
        paths = [p for p in os.environ.get("SOAPY_SDR_PLUGIN_PATH", "").split(os.pathsep) if p]
        if module_dir not in paths:
            os.environ["SOAPY_SDR_PLUGIN_PATH"] = os.pathsep.join(paths + [module_dir])
    os.environ.setdefault("DRIFT_PYTHON", sys.executable)


prepare_environment()


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())


def _make_device(raw: str):
    import SoapySDR

    try:
        return SoapySDR.Device(raw)
    except RuntimeError as exc:
        msg = _one_line(exc)
        if "no match" in msg:
            raise DeviceError(f"no SoapySDR device matches {raw!r} (is it plugged in?)") from None
        raise DeviceError(f"cannot open SoapySDR device {raw!r}: {msg}") from None


def channels_of(spec) -> int:
    """The coherent channels a device string asks for (``channels=M``; default 1)."""
    text = spec.args.get("channels", "1")
    try:
        m = int(text)
    except ValueError:
        m = 0
    if m < 1:
        raise DeviceError(f"channels={text!r}: give how many coherent channels to open (1, 2, ...)")
    return m


def driver_args(spec) -> str:
    """The device string as SoapySDR gets it: without DRIFT's own ``channels``."""
    parts = (p.strip() for p in spec.raw.split(","))
    return ",".join(p for p in parts if p and p.partition("=")[0].strip() != "channels")


def _soapy_capabilities(spec):
    import SoapySDR

    dev = _make_device(driver_args(spec))
    rx = SoapySDR.SOAPY_SDR_RX
    channels = channels_of(spec)
    have = dev.getNumChannels(rx)
    if channels > have:
        raise DeviceError(
            f"channels={channels}: SoapySDR device {spec.raw!r} has {have} receive channel(s)"
        )
    franges = dev.getFrequencyRange(rx, 0)
    rates = dev.getSampleRateRange(rx, 0)
    gain = dev.getGainRange(rx, 0)
    bw = dev.getBandwidthRange(rx, 0)
    rate_hi = max(r.maximum() for r in rates)
    info = dict(dev.getHardwareInfo())
    caps = Capabilities(
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
        hardware_time=bool(dev.hasHardwareTime("")),
        channels=channels,
    )
    if "full_scale_dbm" in info:
        # a device that knows its nominal full scale (driver=drift: the modelled receiver's
        # datasheet value at its current gain) reads dBm/Hz before any calibration
        caps.cal_offset_db = float(info["full_scale_dbm"])
        caps.default_gain_db = float(dev.getGain(rx, 0))
    return caps


def _open_soapy(spec, samp_rate_hz, center_hz, gain_db, scale):
    from gnuradio import soapy

    driver = spec.args.get("driver", "")
    dev_args = ",".join(f"{k}={v}" for k, v in spec.args.items() if k not in ("driver", "channels"))
    nchan = channels_of(spec)
    try:
        src = soapy.source(
            f"driver={driver}", "fc32", nchan, dev_args, "", [""] * nchan, [""] * nchan
        )
        for ch in range(nchan):
            src.set_sample_rate(ch, samp_rate_hz)
            src.set_frequency(ch, center_hz * scale)
            if gain_db is not None:
                src.set_gain_mode(ch, False)
                src.set_gain(ch, gain_db)
    except (RuntimeError, ValueError) as exc:
        raise DeviceError(f"SoapySDR device {spec.raw!r}: {_one_line(exc)}") from None
    if nchan > 1:
        return _soapy_channels(src, nchan, center_hz)
    # gr-soapy in GNU Radio 3.10 emits no rx_time: stamp the first sample from the host clock.
    return _hier_source(
        src,
        host_time=True,
        cmd_port="cmd",
        guard_samples=RETUNE_GUARD,
        center_hz=center_hz,
        tune_scale=scale,
    )


class _soapy_channels(gr.hier_block2):
    """gr-soapy's M coherent channels as M outputs, every one's first sample stamped with
    one host-clock time (the device gives none) and the centre frequency. Retunes are not
    taken (an array capture stays on one frequency)."""

    def __init__(self, src, nchan: int, center_hz: float):
        gr.hier_block2.__init__(
            self,
            "drift_soapy_channels",
            gr.io_signature(0, 0, 0),
            gr.io_signature(nchan, nchan, gr.sizeof_gr_complex),
        )
        self.source = src
        self.tag = _stamp_channels(nchan, center_hz)
        for ch in range(nchan):
            self.connect((src, ch), (self.tag, ch), (self, ch))


class _stamp_channels(gr.sync_block):
    def __init__(self, nchan: int, center_hz: float):
        gr.sync_block.__init__(
            self, "drift_stamp_channels", [np.complex64] * nchan, [np.complex64] * nchan
        )
        self.set_tag_propagation_policy(gr.TPP_ONE_TO_ONE)
        self._center = float(center_hz)

    def work(self, input_items, output_items):
        n = len(output_items[0])
        for i, o in zip(input_items, output_items, strict=True):
            o[:n] = i[:n]
        if self.nitems_written(0) == 0 and n:
            value = tags.rx_time_at(time.time())
            for ch in range(len(output_items)):
                self.add_item_tag(ch, 0, tags.RX_TIME, value)
                self.add_item_tag(ch, 0, tags.RX_FREQ, tags.rx_freq(self._center))
        return n


class soapy_source(gr.sync_block):
    """A SoapySDR receiver that keeps what the driver says about time and losses.

    Each readStream result with SOAPY_SDR_HAS_TIME that does not continue the sample count
    (the first, and the first after an overflow) is tagged rx_time with the device's time;
    without device time the first sample gets the host clock (unless `host_time` is off: a
    drift.time_tagger downstream then keeps the time). After SOAPY_SDR_OVERFLOW the
    next sample is tagged ``rx_overflow`` (drift.time_tagger re-anchors on it). Retunes come
    as {"freq": Hz} on `cmd`: the device is retuned between two reads and the first sample
    read after it is tagged rx_freq (the wanted frequency; the device is asked for freq *
    tune_scale). A stream error (a device that is gone), or no samples for `stall_s`, ends
    the stream with the driver's error logged.

    With ``DRIFT_DEVICE_STATS`` set in its environment (a node's agent sets it for the
    flowgraphs it runs), it writes the device's state there as JSON every `stats_s` and when
    it stops: its sample rate, overflows, samples lost (counted from gaps in the device's
    time stamps; null without device time) and its temperature and sync sensors, read from
    the open device between two reads (no second handle on a device that is streaming).
    """

    #: the environment variable naming the stats file
    STATS_ENV = "DRIFT_DEVICE_STATS"

    def __init__(
        self,
        args,
        samp_rate_hz,
        center_hz,
        gain_db=None,
        tune_scale=1.0,
        timeout_s=0.1,
        stall_s=10.0,
        host_time=True,
        stats_s=1.0,
        channels=1,
    ):
        self.nchan = int(channels)
        gr.sync_block.__init__(self, "drift_soapy_source", [], [np.complex64] * self.nchan)
        import SoapySDR

        self._soapy = SoapySDR
        self.fs = float(samp_rate_hz)
        self._scale = float(tune_scale)
        self._timeout_us = int(timeout_s * 1e6)
        self._stall_s = float(stall_s)
        self._host_time = bool(host_time)
        self.dev = _make_device(args)
        rx = SoapySDR.SOAPY_SDR_RX
        try:
            for ch in range(self.nchan):  # one LO shared or not, every channel is told
                self.dev.setSampleRate(rx, ch, self.fs)
                self.dev.setFrequency(rx, ch, center_hz * self._scale)
                if gain_db is not None:
                    self.dev.setGainMode(rx, ch, False)
                    self.dev.setGain(rx, ch, float(gain_db))
            self.stream = self.dev.setupStream(rx, SoapySDR.SOAPY_SDR_CF32, list(range(self.nchan)))
        except RuntimeError as exc:
            raise DeviceError(f"SoapySDR device {args!r}: {_one_line(exc)}") from None
        self._freq = float(center_hz)
        self._lock = threading.Lock()
        self._pending = None
        self._expected_ns = None  # device time the next sample should have
        self._overflow = False
        self._stalled_since = None
        #: overflows the driver reported, and samples lost (from the device's time stamps)
        self.overflows = 0
        self.lost_samples = 0
        self._stats_path = os.environ.get(self.STATS_ENV) or None
        self._stats_s = float(stats_s)
        self._stats_at = 0.0
        self._sensors = self._stat_sensors() if self._stats_path else {}
        self.message_port_register_in(pmt.intern("cmd"))
        self.set_msg_handler(pmt.intern("cmd"), self._on_cmd)

    def _on_cmd(self, msg):
        if not (pmt.is_dict(msg) and pmt.dict_has_key(msg, pmt.intern("freq"))):
            return
        with self._lock:
            self._pending = pmt.to_double(pmt.dict_ref(msg, pmt.intern("freq"), pmt.PMT_NIL))

    def start(self):
        self.dev.activateStream(self.stream)
        return True

    def _stat_sensors(self) -> dict[str, str]:
        """{what: sensor key} of the device's sensors the stats report."""
        try:
            keys = list(self.dev.listSensors())
        except RuntimeError:
            return {}
        out = {}
        temp = [k for k in keys if "temp" in k.lower()]
        if temp:
            out["temperature_c"] = temp[0]
        for key in ("sync_uncertainty_ns", "clock_locked"):
            if key in keys:
                out[key] = key
        return out

    def stats(self) -> dict:
        """The device's state now (see the class's docstring)."""
        has_time = bool(self._expected_ns is not None)
        out = {
            "sample_rate_hz": self.fs,
            "overflows": self.overflows,
            "dropped_samples": self.lost_samples if has_time else None,
        }
        for what, key in self._sensors.items():
            try:
                text = self.dev.readSensor(key)
            except RuntimeError:
                continue
            if what == "clock_locked":
                out["clock_locked"] = text.strip().lower() in ("true", "1", "yes")
                continue
            try:
                value = float(text)
            except ValueError:
                continue
            if what == "sync_uncertainty_ns":
                out["sync_uncertainty_s"] = value * 1e-9
            else:
                out[what] = value
        return out

    def _write_stats(self, force: bool = False) -> None:
        now = time.monotonic()
        if self._stats_path is None or (not force and now < self._stats_at):
            return
        self._stats_at = now + self._stats_s
        tmp = self._stats_path + ".part"
        try:
            with open(tmp, "w") as f:
                json.dump({**self.stats(), "time": time.time()}, f)
            os.replace(tmp, self._stats_path)
        except OSError as exc:
            self.logger.warn(f"device stats not written: {exc}")
            self._stats_path = None

    def stop(self):
        self._write_stats(force=True)
        try:
            self.dev.deactivateStream(self.stream)
            self.dev.closeStream(self.stream)
        except RuntimeError as exc:  # a device that is gone cannot stop either
            self.logger.warn(_one_line(exc))
        return True

    def _retune(self, at):
        with self._lock:
            freq, self._pending = self._pending, None
        if freq is None or freq == self._freq:
            return
        try:
            for ch in range(self.nchan):
                self.dev.setFrequency(self._soapy.SOAPY_SDR_RX, ch, freq * self._scale)
        except RuntimeError as exc:
            self.logger.error(f"retune to {freq:g} Hz refused: {_one_line(exc)}")
            return
        self._freq = freq
        self._tag_all(at, tags.RX_FREQ, tags.rx_freq(freq))

    def _tag_all(self, offset, key, value):
        for ch in range(self.nchan):
            self.add_item_tag(ch, offset, key, value)

    def work(self, input_items, output_items):
        soapy = self._soapy
        out = output_items[0]
        start = self.nitems_written(0)
        self._retune(start)
        self._write_stats()
        bufs = [output_items[ch] for ch in range(self.nchan)]
        r = self.dev.readStream(self.stream, bufs, len(out), timeoutUs=self._timeout_us)
        if r.ret > 0:
            self._stalled_since = None
            if start == 0:
                self._tag_all(0, tags.RX_FREQ, tags.rx_freq(self._freq))
            if r.flags & soapy.SOAPY_SDR_HAS_TIME:
                if self._expected_ns is not None and r.timeNs > self._expected_ns + max(
                    1.0, 1e9 / self.fs
                ):  # samples the device lost between two reads
                    self.lost_samples += round((r.timeNs - self._expected_ns) * self.fs / 1e9)
                if self._expected_ns is None or abs(r.timeNs - self._expected_ns) > max(
                    1.0, 1e9 / self.fs
                ):
                    self._tag_all(start, tags.RX_TIME, tags.rx_time(*_split_ns(int(r.timeNs))))
                # integer ns: a float of today's epoch in ns is only good to 256 ns
                self._expected_ns = int(r.timeNs) + round(r.ret * 1e9 / self.fs)
            elif start == 0 and self._host_time:
                self._tag_all(0, tags.RX_TIME, tags.rx_time_at(time.time()))
            if self._overflow:
                self._overflow = False
                self._tag_all(start, pmt.intern("rx_overflow"), pmt.PMT_T)
            return r.ret
        if r.ret == soapy.SOAPY_SDR_OVERFLOW:
            self.overflows += 1
            self._overflow = True
            return 0
        if r.ret == soapy.SOAPY_SDR_TIMEOUT:
            now = time.monotonic()
            self._stalled_since = self._stalled_since or now
            if now - self._stalled_since < self._stall_s:
                return 0
            self.logger.error(
                f"{DEVICE_LOST}: no samples for {self._stall_s:g} s, the device stopped streaming"
            )
            return -1  # WORK_DONE
        self.logger.error(f"{DEVICE_LOST}: the device failed: {soapy.errToStr(r.ret)}")
        return -1


def _split_ns(ns: int) -> tuple[int, float]:
    whole = ns // 1_000_000_000
    return whole, (ns - whole * 1_000_000_000) / 1e9


def _open_timed(spec, samp_rate_hz, center_hz, gain_db, scale):
    # it tags its own time and retunes (a `cmd` port), so it needs no tagger behind it
    return soapy_source(
        driver_args(spec), samp_rate_hz, center_hz, gain_db, scale, channels=channels_of(spec)
    )


class SoapyBackend:
    kind = "soapy"

    def __init__(self):
        self._hardware_time: dict[str, bool] = {}  # by device string, from capabilities()

    def claims(self, text: str, args: dict[str, str]) -> DeviceSpec | None:
        return DeviceSpec(self.kind, args, text) if "driver" in args else None

    def capabilities(self, spec: DeviceSpec) -> Capabilities:
        caps = _soapy_capabilities(spec)
        self._hardware_time[spec.raw] = caps.hardware_time
        return caps

    def open(
        self,
        spec: DeviceSpec,
        samp_rate_hz: float,
        center_hz: float,
        gain_db: float | None,
        tune_scale: float,
    ) -> gr.basic_block:
        timed = self._hardware_time.get(spec.raw)
        if timed is None:
            timed = self.capabilities(spec).hardware_time
        if timed:
            return _open_timed(spec, samp_rate_hz, center_hz, gain_db, tune_scale)
        return _open_soapy(spec, samp_rate_hz, center_hz, gain_db, tune_scale)

    def calibration_key(self, spec: DeviceSpec) -> str | None:
        return identity_key(spec)


def identity_key(spec: DeviceSpec) -> str:
    """kind:key=value,... of the keys that identify a hardware device."""
    ident = ",".join(f"{k}={v}" for k, v in sorted(spec.args.items()) if k in IDENTITY_KEYS)
    return f"{spec.kind}:{ident}"


BACKEND = SoapyBackend()

__all__ = ["BACKEND", "IDENTITY_KEYS", "identity_key", "prepare_environment", "soapy_source"]
