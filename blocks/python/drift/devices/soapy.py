#
# Copyright 2026 DRIFT contributors.
#
# SPDX-License-Identifier: GPL-3.0-or-later
#
"""SoapySDR devices through gr-soapy (``driver=rtlsdr,serial=...``: any SoapySDR driver)."""

from __future__ import annotations

from gnuradio import gr

from .base import RETUNE_GUARD, Capabilities, DeviceError, DeviceSpec, _hier_source

#: the device-string keys that identify one device (its calibration record)
IDENTITY_KEYS = ("driver", "serial", "rtl", "hackrf", "airspy", "bladerf", "uhd", "soapy")


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
    return _hier_source(
        src,
        host_time=True,
        cmd_port="cmd",
        guard_samples=RETUNE_GUARD,
        center_hz=center_hz,
        tune_scale=scale,
    )


class SoapyBackend:
    kind = "soapy"

    def claims(self, text: str, args: dict[str, str]) -> DeviceSpec | None:
        return DeviceSpec(self.kind, args, text) if "driver" in args else None

    def capabilities(self, spec: DeviceSpec) -> Capabilities:
        return _soapy_capabilities(spec)

    def open(
        self,
        spec: DeviceSpec,
        samp_rate_hz: float,
        center_hz: float,
        gain_db: float | None,
        tune_scale: float,
    ) -> gr.basic_block:
        return _open_soapy(spec, samp_rate_hz, center_hz, gain_db, tune_scale)

    def calibration_key(self, spec: DeviceSpec) -> str | None:
        return identity_key(spec)


def identity_key(spec: DeviceSpec) -> str:
    """kind:key=value,... of the keys that identify a hardware device."""
    ident = ",".join(f"{k}={v}" for k, v in sorted(spec.args.items()) if k in IDENTITY_KEYS)
    return f"{spec.kind}:{ident}"


BACKEND = SoapyBackend()
