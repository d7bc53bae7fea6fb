"""The scenario side of gr-drift's SoapySDR module (``driver=drift``).

The module (blocks/soapy/, C++) makes every sample with gr-drift's simulator kernels; what to
make (the emitters' kernel arguments, the noise, the gain and the ADC of one node at one
tuning) comes from the scenario, which this process reads with drift.sim, the same code the
GNU Radio sim source runs. The module starts it (``$DRIFT_PYTHON -m drift.sim.soapy_helper``,
default ``python3``) and speaks to it over its stdin and stdout, one request a line, fields
separated by tabs; each answer is lines of tab-separated fields ending in ``end``, or one
line ``error<TAB>message``. Floats travel as C99 hexadecimal (``float.hex()``), exact both
ways.

Requests:
  nodes PATH                      node<TAB>id<TAB>model<TAB>name<TAB>channels ... (find)
  open PATH NODE                  the node and its device model (the hardware matrix)
  plan CH RATE CENTER GAIN W F    the kernel plan of channel CH at sample rate RATE, the
                                  tuner at CENTER (Hz), gain GAIN dB (``-`` the default),
                                  the node clock reading W + F (whole, fraction) at sample 0
  moving CH RATE CENTER GAIN W F FIRST N
                                  the moving emitters' samples FIRST .. FIRST + N - 1: a line
                                  ``data<TAB>BYTES``, then that many bytes of complex128 (LE)
"""

from __future__ import annotations

import sys


def _h(x: float) -> str:
    return float(x).hex()


class Helper:
    def __init__(self):
        self.scenario = None
        self.node_id = None
        self._receivers: dict = {}

    def nodes(self, path: str) -> list[list[str]]:
        from .scenario import load_scenario

        scn = load_scenario(path)
        return [["node", n.id, n.model.id, n.model.name, str(n.channels)] for n in scn.nodes]

    def open(self, path: str, node_id: str) -> list[list[str]]:
        from . import synth
        from .scenario import load_scenario

        scn = load_scenario(path)
        node = scn.node(node_id)
        self.scenario, self.node_id = scn, node_id
        m, clk, p = node.model, node.clock, node.position
        return [
            ["model", m.id, m.name],
            ["freq_range", _h(m.freq_min_hz), _h(m.freq_max_hz)],
            ["max_bandwidth", _h(m.max_bandwidth_hz)],
            ["adc_bits", str(m.adc_bits)],
            ["has_tx", str(int(m.has_tx))],
            ["gain_range", _h(m.gain_range_db[0]), _h(m.gain_range_db[1])],
            ["gain_default", _h(synth.default_gain_db(node))],
            ["full_scale_dbm", _h(synth.nominal_full_scale_dbm(node))],
            ["channels", str(node.channels)],
            ["clock", clk.source, _h(clk.uncertainty_s)],
            ["position", _h(p.lat), _h(p.lon), _h(p.alt)],
        ]

    def _receiver(self, rate: str, center: str, gain: str):
        from .synth import NodeReceiver

        if self.scenario is None:
            raise ValueError("no node open")
        key = (rate, gain)
        rx = self._receivers.get(key)
        c = float.fromhex(center)
        if rx is None:
            if len(self._receivers) > 8:
                self._receivers.clear()
            g = None if gain == "-" else float.fromhex(gain)
            rx = NodeReceiver(self.scenario, self.node_id, float.fromhex(rate), c, gain_db=g)
            self._receivers[key] = rx
        elif rx.center_hz != c:
            rx.tune(c)
        return rx

    def plan(self, ch, rate, center, gain, whole, frac) -> list[list[str]]:
        rx = self._receiver(rate, center, gain)
        plan = rx.kernel_plan(int(ch), int(whole), float.fromhex(frac))
        out = [
            [
                "noise",
                str(plan.noise_key),
                _h(plan.sigma),
                _h(plan.gain.real),
                _h(plan.gain.imag),
                str(plan.bits),
            ],
            ["moving", str(len(plan.moving))],
        ]
        for kind, whole_a, frac_a, step_a, params, table, key, amp in plan.static:
            row = ["emitter", str(kind), str(key), _h(amp), str(len(whole_a))]
            for w, f, s in zip(whole_a, frac_a, step_a, strict=True):
                row += [str(int(w)), _h(f), _h(s)]
            row.append(str(len(params)))
            row += [_h(v) for v in params]
            row.append(str(len(table)))
            row += [_h(v) for v in table]
            out.append(row)
        return out

    def moving(self, ch, rate, center, gain, whole, frac, first, n) -> bytes:
        import numpy as np

        rx = self._receiver(rate, center, gain)
        w, f = int(whole), float.fromhex(frac)
        plan = rx.kernel_plan(int(ch), w, f)
        x = rx.moving_samples(int(ch), plan, int(first), int(n), w, f)
        if x is None:
            x = np.zeros(int(n), dtype=np.complex128)
        return np.ascontiguousarray(x, dtype="<c16").tobytes()


def serve(stdin, stdout) -> None:
    helper = Helper()
    handlers = {"nodes": helper.nodes, "open": helper.open, "plan": helper.plan}
    for line in stdin:
        fields = line.rstrip("\n").split("\t")
        cmd, args = fields[0], fields[1:]
        try:
            if cmd == "moving":
                data = helper.moving(*args)
                stdout.write(f"data\t{len(data)}\n".encode())
                stdout.write(data)
                stdout.flush()
                continue
            if cmd not in handlers:
                raise ValueError(f"unknown request {cmd!r}")
            rows = handlers[cmd](*args)
            text = "".join("\t".join(r) + "\n" for r in rows) + "end\n"
        except Exception as exc:  # noqa: BLE001 - every failure is the module's error text
            msg = " ".join(str(exc).split()) or type(exc).__name__  # one line
            text = f"error\t{msg}\n"
        stdout.write(text.encode())
        stdout.flush()


def main() -> int:
    serve(sys.stdin, sys.stdout.buffer)
    return 0


if __name__ == "__main__":
    sys.exit(main())
