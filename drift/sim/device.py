"""The simulator as a kind of device (``sim=SCENARIO.yaml,node=ID[,start=UNIX][,realtime=1]
[,channel=K]``): what one node of a simulated RF world receives; an array node gives one
coherent stream per element, or element K alone with ``channel=K``.

gr-drift's device table (``gnuradio.drift.devices.BACKENDS``) finds it through the entry point
this package declares (group ``gnuradio.drift.devices``), so every DRIFT Device Source, and
every flowgraph a node runs, opens ``sim=`` devices while gr-drift never imports DRIFT."""

from __future__ import annotations

import os

from gnuradio import gr
from gnuradio.drift.devices.base import Capabilities, DeviceError, DeviceSpec


def air_dir(path: str):
    from drift.sim.air import air_dir as of

    return of(path)


def scenario(spec: DeviceSpec):
    """The scenario a simulated device's string names."""
    from drift.sim import load_scenario

    return load_scenario(spec.args["sim"])


def _channel(spec: DeviceSpec) -> int | None:
    if "channel" not in spec.args:
        return None
    try:
        return int(spec.args["channel"])
    except ValueError:
        raise DeviceError(
            f"channel={spec.args['channel']!r}: give an element number (0, 1, ...)"
        ) from None


def array_geometry(node) -> dict | None:
    """An array node's layout as the device layer reports it (Capabilities.array)."""
    from drift.sim.synth import element_enu_m

    arr = node.array
    if arr is None:
        return None
    size = "spacing_m" if arr.geometry == "ula" else "radius_m"
    return {
        "geometry": arr.geometry,
        "elements": arr.elements,
        size: float(arr.size_m),
        "orientation_deg": float(arr.orientation_deg),
        "element_enu_m": [[float(c) for c in p] for p in element_enu_m(arr)],
    }


class SimBackend:
    kind = "sim"

    def claims(self, text: str, args: dict[str, str]) -> DeviceSpec | None:
        if "sim" not in args:
            return None
        if not args.get("node"):
            raise DeviceError(f"device {text!r}: a simulated device needs node=ID")
        return DeviceSpec(self.kind, args, text)

    def capabilities(self, spec: DeviceSpec) -> Capabilities:
        from drift.sim import synth

        node = scenario(spec).node(spec.args["node"])
        m = node.model
        return Capabilities(
            driver=f"sim:{m.id}",
            freq_range_hz=(m.freq_min_hz, m.freq_max_hz),
            sample_rate_range_hz=(1e3, m.max_bandwidth_hz),
            default_sample_rate_hz=min(m.max_bandwidth_hz, 2.4e6),
            max_bandwidth_hz=m.max_bandwidth_hz,
            gain_range_db=m.gain_range_db,
            has_tx=m.has_tx,
            time_sources=[node.clock.source],
            usable_fraction=0.75,
            cal_offset_db=synth.nominal_full_scale_dbm(node),
            default_gain_db=synth.default_gain_db(node),
            channels=1 if "channel" in spec.args else node.channels,
            array=None if "channel" in spec.args else array_geometry(node),
        )

    def open(
        self,
        spec: DeviceSpec,
        samp_rate_hz: float,
        center_hz: float,
        gain_db: float | None,
        tune_scale: float,
    ) -> gr.basic_block:
        from drift.sim.source import sim_source

        try:
            return sim_source(
                scenario(spec),
                spec.args["node"],
                samp_rate_hz,
                center_hz,
                float(spec.args["start"]) if "start" in spec.args else None,
                realtime=spec.args.get("realtime", "0") not in ("0", "", "false"),
                tune_scale=tune_scale,
                channel=_channel(spec),
                gain_db=gain_db,
                air=air_dir(spec.args["sim"]),
            )
        except ValueError as exc:
            raise DeviceError(str(exc)) from exc

    def open_sink(
        self,
        spec: DeviceSpec,
        samp_rate_hz: float,
        center_hz: float,
        power_dbm: float,
        start_time: float,
        waveform: str,
    ) -> gr.basic_block:
        """The node's transmitter: an emitter on the scenario's shared air (drift.sim.air)."""
        from drift.sim.air import sim_sink

        try:
            return sim_sink(
                scenario(spec),
                air_dir(spec.args["sim"]),
                spec.args["node"],
                samp_rate_hz,
                center_hz,
                power_dbm,
                start_time,
                waveform or "cw",
                hang=spec.args.get("tx_hang", "0") not in ("0", "", "false"),
            )
        except ValueError as exc:
            raise DeviceError(str(exc)) from exc

    def calibration_key(self, spec: DeviceSpec) -> str | None:
        return f"sim:{os.path.abspath(spec.args['sim'])}:{spec.args['node']}"


BACKEND = SimBackend()
