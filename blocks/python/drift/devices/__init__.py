#
# Copyright 2026 DRIFT contributors.
#
# SPDX-License-Identifier: GPL-3.0-or-later
#
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

from .base import (
    DEVICE_LOST,
    RETUNE_GUARD,
    SOURCE_BUFFER_ITEMS,
    Backend,
    Capabilities,
    DeviceError,
    DeviceSpec,
    sink_extra_channels,
    split_args,
)
from .osmosdr import BACKEND as _OSMOSDR
from .sigmf import BACKEND as _SIGMF
from .soapy import BACKEND as _SOAPY
from .testsig import BACKEND as _TESTSIG
from .testsig import DEFAULT_TONES, test_signal_source

#: The entry-point group through which other packages add kinds of device (the DRIFT
#: application adds the simulator: ``sim = "drift.sim.device:BACKEND"``).
ENTRY_POINTS = "gnuradio.drift.devices"


#: The module's own kinds of device, by name, in the order a device string is offered to them
#: (the first that claims it opens it); :func:`backends` adds those installed packages declare.
#: A new kind of device is one module and one entry here (or one entry point).
BACKENDS: dict[str, Backend] = {b.kind: b for b in (_SIGMF, _TESTSIG, _SOAPY, _OSMOSDR)}
_installed_loaded = False


def backends() -> dict[str, Backend]:
    """Every kind of device: the module's own, then those installed packages add through the
    entry points (loaded on first use, not when the module is imported)."""
    global _installed_loaded
    if not _installed_loaded:
        from importlib.metadata import entry_points

        _installed_loaded = True
        for ep in entry_points(group=ENTRY_POINTS):
            backend = ep.load()
            BACKENDS.setdefault(backend.kind, backend)
    return BACKENDS


def parse_device(text: str) -> DeviceSpec:
    """Classify a device string (see the module docstring)."""
    text = (text or "").strip()
    if not text:
        raise DeviceError("empty device string")
    args = split_args(text)
    for backend in backends().values():
        spec = backend.claims(text, args)
        if spec is not None:
            return spec
    raise DeviceError(
        f"device {text!r}: give SoapySDR args (driver=rtlsdr,...), osmosdr:<args>, "
        "sigmf=<recording>, testsig"
        + (
            ", or sim=<scenario>,node=<id>"
            if "sim" in backends()
            else " (sim=<scenario>,node=<id> needs the DRIFT application package)"
        )
    )


def device_key(spec: DeviceSpec) -> str | None:
    """Which calibration record belongs to this device (None: a recording, never calibrated)."""
    return backends()[spec.kind].calibration_key(spec)


def load_calibration(spec: DeviceSpec, store=None):
    """The device's valid calibration record, if it has one."""
    from .calibration import CalibrationStore

    key = device_key(spec)
    return None if key is None else (store or CalibrationStore()).load(key)


def capabilities(spec: DeviceSpec) -> Capabilities:
    """Discover what the device can do (without starting a stream)."""
    backend = backends().get(spec.kind)
    if backend is None:
        raise DeviceError(f"unknown device kind {spec.kind}")
    return backend.capabilities(spec)


def source(
    device_args: str,
    samp_rate_hz: float,
    center_hz: float,
    gain_db: float | None = None,
    channels: int = 1,
):
    """The source block alone (for GRC's DRIFT Device Source).

    channels 1: one stream, channel 0 of a multi-channel device (its other channels are
    read and dropped). channels M > 1: the device must have exactly M coherent channels (an
    array node); the output is their snapshots, vectors of M samples taken at one time, the
    first tagged rx_time and rx_freq.
    """
    spec = parse_device(device_args)
    caps = capabilities(spec)
    channels = int(channels)
    if channels < 1:
        raise DeviceError(f"channels: must be at least 1, got {channels}")
    if channels > 1 and caps.channels != channels:
        raise DeviceError(
            f"channels: {channels} asked for, but device {device_args!r} has "
            f"{caps.channels} coherent channel(s)"
        )
    block, caps = open_source(spec, samp_rate_hz, center_hz, gain_db, caps=caps)
    if caps.channels == 1:
        return block
    return _channels_source(block, caps.channels, channels)


def open_source(
    spec: DeviceSpec,
    samp_rate_hz: float,
    center_hz: float,
    gain_db: float | None = None,
    caps: Capabilities | None = None,
    calibration="stored",
):
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
    check_gain(caps, gain_db)
    block = backends()[spec.kind].open(spec, samp_rate_hz, center_hz, gain_db, scale)
    if gain_db is not None and caps.default_gain_db is not None:
        # a nominal full scale moves down by a dB with each dB of gain above its own
        caps.cal_offset_db -= gain_db - caps.default_gain_db
        caps.default_gain_db = gain_db
    return block, caps


def sink(
    device_args: str,
    samp_rate_hz: float,
    center_hz: float,
    power_dbm: float,
    start_time: float = 0.0,
    waveform: str = "",
):
    """A transmitting sink for the device (GRC's DRIFT Device Sink): samples of magnitude 1
    leave the antenna connector at ``power_dbm``, from ``start_time`` (UNIX s; 0: at once).
    ``waveform`` names what the samples are ("cw", "pn:CHIP_RATE_HZ") for devices that model
    the air rather than drive it (the simulator). A kind of device that cannot transmit, or
    whose backend has no transmit path, is refused with a DeviceError."""
    spec = parse_device(device_args)
    caps = capabilities(spec)
    if not caps.has_tx:
        raise DeviceError(f"{caps.driver} cannot transmit")
    backend = backends()[spec.kind]
    open_sink = getattr(backend, "open_sink", None)
    if open_sink is None:
        raise DeviceError(f"transmitting through {spec.kind} devices is not supported")
    lo, hi = caps.freq_range_hz
    if not lo <= center_hz <= hi:
        raise DeviceError(f"{center_hz:g} Hz is outside the device's range {lo:g}-{hi:g} Hz")
    return open_sink(spec, samp_rate_hz, center_hz, power_dbm, start_time, waveform)


class _channels_source:
    """Builds the hier block of a multi-channel source (see :func:`source`)."""

    def __new__(cls, block, device_channels: int, channels: int):
        from gnuradio import blocks, gr

        vlen = channels if channels > 1 else 1
        hier = gr.hier_block2(
            "drift_device_source_channels",
            gr.io_signature(0, 0, 0),
            gr.io_signature(1, 1, gr.sizeof_gr_complex * vlen),
        )
        hier.source = block
        if channels > 1:
            hier.s2v = blocks.streams_to_vector(gr.sizeof_gr_complex, channels)
            for port in range(channels):
                hier.connect((block, port), (hier.s2v, port))
            hier.connect(hier.s2v, hier)
        else:
            hier.connect((block, 0), hier)
            hier.sinks = []
            for port in range(1, device_channels):
                sink = blocks.null_sink(gr.sizeof_gr_complex)
                hier.sinks.append(sink)
                hier.connect((block, port), sink)
        if "cmd" in [str(p) for p in _message_ports_in(block)]:
            hier.message_port_register_hier_in("cmd")
            hier.msg_connect(hier, "cmd", block, "cmd")
        return hier


def _message_ports_in(block):
    import pmt

    try:
        return [pmt.symbol_to_string(p) for p in pmt.to_python(block.message_ports_in()) or ()]
    except Exception:
        return []


def check_gain(caps: Capabilities, gain_db: float | None) -> None:
    """DeviceError for a gain the device cannot take (outside its range, or any gain for a
    source without gain control)."""
    if gain_db is None:
        return
    lo, hi = caps.gain_range_db
    if lo == hi == 0.0:
        raise DeviceError(f"gain: {caps.driver} has no gain control (leave the gain unset)")
    if not lo <= gain_db <= hi:
        raise DeviceError(f"gain {gain_db:g} dB is outside the device's range {lo:g}-{hi:g} dB")


__all__ = [
    "BACKENDS",
    "DEVICE_LOST",
    "DEFAULT_TONES",
    "ENTRY_POINTS",
    "backends",
    "sink",
    "RETUNE_GUARD",
    "SOURCE_BUFFER_ITEMS",
    "Backend",
    "Capabilities",
    "DeviceError",
    "DeviceSpec",
    "capabilities",
    "check_gain",
    "device_key",
    "load_calibration",
    "open_source",
    "parse_device",
    "sink_extra_channels",
    "source",
    "test_signal_source",
]
