#
# Copyright 2026 DRIFT contributors.
#
# SPDX-License-Identifier: GPL-3.0-or-later
#
"""gr-osmosdr devices (``osmosdr:ARGS``, or args naming ``rtl=``, ``hackrf=``, ``airspy=``,
``bladerf=``, ``uhd``, ``soapy=``, ``rtl_tcp=``, ``file=``)."""

from __future__ import annotations

from gnuradio import gr

from .base import RETUNE_GUARD, Capabilities, DeviceError, DeviceSpec, _hier_source, split_args
from .soapy import identity_key

#: args that make a device string gr-osmosdr's without the prefix
OSMOSDR_KEYS = frozenset({"rtl", "hackrf", "airspy", "bladerf", "uhd", "soapy", "rtl_tcp", "file"})


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
        driver="osmosdr",
        freq_range_hz=(freqs.start(), freqs.stop()),
        sample_rate_range_hz=(rates.start(), rates.stop()),
        default_sample_rate_hz=min(rates.stop(), 2.4e6),
        max_bandwidth_hz=rates.stop(),
        gain_range_db=(gains.start(), gains.stop()),
        settle_s=0.05,
    )


def _open_osmosdr(spec, samp_rate_hz, center_hz, gain_db, scale):
    import osmosdr

    src = osmosdr.source(spec.raw)
    src.set_sample_rate(samp_rate_hz)
    src.set_center_freq(center_hz * scale)
    if gain_db is not None:
        src.set_gain_mode(False)
        src.set_gain(gain_db)
    return _hier_source(
        src,
        host_time=True,
        cmd_port="command",
        guard_samples=RETUNE_GUARD,
        center_hz=center_hz,
        tune_scale=scale,
    )


class OsmosdrBackend:
    kind = "osmosdr"

    def claims(self, text: str, args: dict[str, str]) -> DeviceSpec | None:
        if text.startswith("osmosdr:"):
            return DeviceSpec(self.kind, split_args(text[8:]), text[8:])
        return DeviceSpec(self.kind, args, text) if args.keys() & OSMOSDR_KEYS else None

    def capabilities(self, spec: DeviceSpec) -> Capabilities:
        return _osmosdr_capabilities(spec)

    def open(
        self,
        spec: DeviceSpec,
        samp_rate_hz: float,
        center_hz: float,
        gain_db: float | None,
        tune_scale: float,
    ) -> gr.basic_block:
        return _open_osmosdr(spec, samp_rate_hz, center_hz, gain_db, tune_scale)

    def calibration_key(self, spec: DeviceSpec) -> str | None:
        return identity_key(spec)


BACKEND = OsmosdrBackend()
