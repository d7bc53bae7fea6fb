#
# Copyright 2026 DRIFT contributors.
#
# SPDX-License-Identifier: GPL-3.0-or-later
#
"""A SigMF recording (``sigmf=PATH`` or ``PATH.sigmf-meta``), scanned within its own band;
rx_time from each capture's ``core:datetime``."""

from __future__ import annotations

import datetime as dt
import os
import warnings

import numpy as np
from gnuradio import blocks, gr

from .. import tags
from .base import Capabilities, DeviceError, DeviceSpec, _hier_source


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
    if not os.path.isfile(path + ".sigmf-data"):
        raise DeviceError(f"sigmf: {path}.sigmf-meta has no data file ({path}.sigmf-data)")
    try:
        with warnings.catch_warnings():
            # a truncated data file: the scan says what it lacks (see drift scan)
            warnings.simplefilter("ignore", UserWarning)
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


def _open_sigmf(spec):
    path, meta, glob, captures, dtype, rate = _read_sigmf(spec)
    itemsize, np_type, scale = _SIGMF_TYPES[dtype]
    fixed = []
    for cap in captures:
        start = int(cap.get("core:sample_start", 0))
        if "core:datetime" in cap:
            fixed.append((start, "rx_time", tags.rx_time_at(_parse_datetime(cap["core:datetime"]))))
        if "core:frequency" in cap:
            fixed.append((start, "rx_freq", tags.rx_freq(float(cap["core:frequency"]))))
    if not any(t[1] == "rx_time" for t in fixed):
        fixed.append((0, "rx_time", tags.rx_time_at(0.0)))
    data = path + ".sigmf-data"
    if dtype == "cf32_le":
        return _hier_source(blocks.file_source(itemsize, data, False), fixed)
    if dtype == "ci16_le":
        src = blocks.file_source(gr.sizeof_short, data, False)
        conv = [blocks.interleaved_short_to_complex(False, False, 1 / scale)]
    elif dtype == "ci8":
        src = blocks.file_source(gr.sizeof_char, data, False)
        conv = [blocks.interleaved_char_to_complex(False, 1 / scale)]
    else:  # cu8 (rtl_sdr raw): offset binary
        src = blocks.file_source(gr.sizeof_char, data, False)
        conv = [_cu8_to_complex()]
    return _hier_source(src, fixed, items=conv)


class _cu8_to_complex(gr.decim_block):
    """rtl_sdr's offset-binary unsigned 8-bit IQ pairs to complex in [-1, 1)."""

    def __init__(self):
        gr.decim_block.__init__(self, "drift_cu8", [np.uint8], [np.complex64], 2)

    def work(self, input_items, output_items):
        out = output_items[0]
        raw = input_items[0][: 2 * len(out)].astype(np.float32) - 127.5
        out[:] = (raw[0::2] + 1j * raw[1::2]) / 128.0
        return len(out)


class SigmfBackend:
    kind = "sigmf"

    def claims(self, text: str, args: dict[str, str]) -> DeviceSpec | None:
        if text.endswith((".sigmf-meta", ".sigmf-data", ".sigmf")) and "=" not in text:
            return DeviceSpec(self.kind, {"sigmf": text}, text)
        return DeviceSpec(self.kind, args, text) if "sigmf" in args else None

    def capabilities(self, spec: DeviceSpec) -> Capabilities:
        path, meta, glob, captures, dtype, rate = _read_sigmf(spec)
        fc = float(captures[0]["core:frequency"])
        size = os.path.getsize(path + ".sigmf-data") // _SIGMF_TYPES[dtype][0]
        return Capabilities(
            driver="sigmf",
            freq_range_hz=(fc - rate / 2, fc + rate / 2),
            sample_rate_range_hz=(rate, rate),
            default_sample_rate_hz=rate,
            max_bandwidth_hz=rate,
            fixed_center_hz=fc,
            usable_fraction=1.0,
            length_samples=size,
            time_sources=["recording"],
            cal_offset_db=float(glob.get("drift:cal_offset_db", 0.0)),
        )

    def open(
        self,
        spec: DeviceSpec,
        samp_rate_hz: float,
        center_hz: float,
        gain_db: float | None,
        tune_scale: float,
    ) -> gr.basic_block:
        return _open_sigmf(spec)

    def calibration_key(self, spec: DeviceSpec) -> str | None:
        return None  # a recording is what it is


BACKEND = SigmfBackend()
