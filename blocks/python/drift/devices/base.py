#
# Copyright 2026 DRIFT contributors.
#
# SPDX-License-Identifier: GPL-3.0-or-later
#
"""What every device backend shares: the capability model, the device string's parts, and the
tagging of sources that do not time-stamp or tag their retunes themselves."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import pmt
from gnuradio import blocks, gr

from .. import tags

# Hardware sources (gr-soapy, gr-osmosdr) do not tag retunes, so the device layer does: the
# first sample at the new frequency is taken to be RETUNE_GUARD samples after the command,
# which covers the source's output buffer (bounded to SOURCE_BUFFER_ITEMS) and leaves the rest
# for the device's own latency; the sweeper's settle time comes on top.
SOURCE_BUFFER_ITEMS = 16384
RETUNE_GUARD = 65536

#: How a source says, in its log line, that its device is gone (unplugged, or it stopped
#: streaming): the node agent reports such a flowgraph's device as lost.
DEVICE_LOST = "device lost"


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
    hardware_time: bool = False  # the samples come with the device's own time
    clock_sources: list[str] = field(default_factory=list)
    fixed_center_hz: float | None = None  # a recording cannot retune
    usable_fraction: float = 0.75  # share of the band clear of filter roll-off
    settle_s: float = 0.0
    length_samples: int | None = None  # finite sources (recordings)
    cal_offset_db: float = 0.0  # PSD offset that makes the output read dBm/Hz
    # the gain at which cal_offset_db holds, when that offset is an absolute (nominal) one
    # that moves by a dB with each dB of gain; None: gain does not move it
    default_gain_db: float | None = None
    channels: int = 1  # coherent output streams (an array node: one per element)
    # the antenna array the channels feed: {geometry: ula|uca, elements, spacing_m or
    # radius_m, orientation_deg, element_enu_m: [[east, north, up], ...] (m from the node)}
    array: dict | None = None

    def to_dict(self):
        return dict(self.__dict__)


@dataclass
class DeviceSpec:
    kind: str  # soapy | osmosdr | sigmf | sim | testsig
    args: dict[str, str]
    raw: str


class Backend(Protocol):
    """One kind of device: which strings name it, what it can do, how to open it."""

    kind: str

    def claims(self, text: str, args: dict[str, str]) -> DeviceSpec | None:
        """A spec when the device string names this kind (DeviceError when it does, badly)."""
        ...

    def capabilities(self, spec: DeviceSpec) -> Capabilities:
        """What the device can do, without starting a stream."""
        ...

    def open(
        self,
        spec: DeviceSpec,
        samp_rate_hz: float,
        center_hz: float,
        gain_db: float | None,
        tune_scale: float,
    ) -> gr.basic_block:
        """The tuned source block, rx_time on its first sample (rx_freq where known)."""
        ...

    def calibration_key(self, spec: DeviceSpec) -> str | None:
        """Which calibration record belongs to it (None: never calibrated)."""
        ...


def split_args(text: str) -> dict[str, str]:
    out = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, _, value = part.partition("=")
        out[key.strip()] = value.strip()
    return out


class tagger(gr.sync_block):
    """Pass-through that adds fixed tags at absolute offsets, rx_time from the host clock at
    the first sample when `host_time` is set (sources that give no time of their own), and
    rx_freq on retunes it forwards to a source that does not tag them itself.

    Retunes: a `cmd` message ({"freq": Hz}) is passed on through `cmd_out`; the new frequency
    is tagged `guard_samples` after the samples already produced (those still in the source's
    buffers at the old frequency). The guard is an estimate, so the sweeper's settle time
    should cover the device's own tuning latency.
    """

    def __init__(self, fixed_tags=(), host_time=False, guard_samples=0, tune_scale=1.0):
        gr.sync_block.__init__(self, "drift_tagger", [np.complex64], [np.complex64])
        self._tags = sorted(fixed_tags, key=lambda t: t[0])  # (offset, key, pmt value)
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
            self._tags.append((at, "rx_freq", tags.rx_freq(pmt.to_double(freq))))
            self._tags.sort(key=lambda t: t[0])

    def work(self, input_items, output_items):
        n = len(output_items[0])
        output_items[0][:] = input_items[0][:n]
        start = self.nitems_written(0)
        if self._host_time and start == 0 and n:
            self.add_item_tag(0, 0, tags.RX_TIME, tags.rx_time_at(time.time()))
        with self._lock:
            while self._tags and self._tags[0][0] < start + n:
                offset, key, value = self._tags.pop(0)
                self.add_item_tag(0, max(offset, start), pmt.intern(key), value)
        return n


class _hier_source(gr.hier_block2):
    """Source + tagger as one block; a `cmd` input retunes the source through the tagger."""

    def __init__(
        self,
        source,
        fixed_tags=(),
        host_time=False,
        cmd_port=None,
        items=None,
        guard_samples=0,
        center_hz=None,
        tune_scale=1.0,
    ):
        gr.hier_block2.__init__(
            self,
            "drift_device_source",
            gr.io_signature(0, 0, 0),
            gr.io_signature(1, 1, gr.sizeof_gr_complex),
        )
        self.source = source
        if guard_samples:
            source.set_max_output_buffer(SOURCE_BUFFER_ITEMS)
        if center_hz is not None:
            fixed_tags = list(fixed_tags) + [(0, "rx_freq", tags.rx_freq(center_hz))]
        self.tag = tagger(fixed_tags, host_time, guard_samples, tune_scale)
        # Python blocks must stay referenced from Python while the flowgraph runs.
        self.items = list(items or [])
        self.connect(*([source] + self.items + [self.tag, self]))
        if cmd_port:
            self.message_port_register_hier_in("cmd")
            self.msg_connect(self, "cmd", self.tag, "cmd")
            self.msg_connect(self.tag, "cmd_out", source, cmd_port)


def sink_extra_channels(tb, src, caps: Capabilities) -> None:
    """Connect null sinks to a multi-channel source's outputs 1.. (a consumer of one stream
    reads channel 0; GNU Radio refuses unconnected outputs)."""
    for port in range(1, caps.channels):
        sink = blocks.null_sink(gr.sizeof_gr_complex)
        tb.connect((src, port), sink)
