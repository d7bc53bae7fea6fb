"""The device layer's table of backends: every kind of device string goes to its backend, a new
kind is one entry, and what a backend says of a device is what its source delivers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from gnuradio import blocks, gr
from gnuradio.drift import devices

SCENARIO = Path(__file__).parent / "data" / "network.yaml"


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("testsig", "testsig"),
        ("testsig,tones=100e6@-60", "testsig"),
        ("driver=rtlsdr,serial=0001", "soapy"),
        ("osmosdr:rtl=0", "osmosdr"),
        ("hackrf=0", "osmosdr"),
        ("capture.sigmf-meta", "sigmf"),
        ("sigmf=capture", "sigmf"),
        (f"sim={SCENARIO},node=a", "sim"),
    ],
)
def test_each_device_string_goes_to_its_backend(text, kind):
    assert devices.parse_device(text).kind == kind
    # the simulator comes from the DRIFT package, through its entry point
    assert set(devices.backends()) == {"testsig", "soapy", "osmosdr", "sigmf", "sim"}


def test_strings_no_backend_claims_are_refused_naming_every_kind():
    with pytest.raises(devices.DeviceError) as e:
        devices.parse_device("bogus=1")
    for hint in ("driver=", "osmosdr:", "sigmf=", "sim=", "testsig"):
        assert hint in str(e.value)
    with pytest.raises(devices.DeviceError, match="needs node=ID"):
        devices.parse_device(f"sim={SCENARIO}")


def test_calibration_keys_identify_the_hardware_not_the_options():
    a = devices.parse_device("driver=rtlsdr,serial=0001,buffers=8")
    b = devices.parse_device("serial=0001,driver=rtlsdr")
    assert devices.device_key(a) == devices.device_key(b) == "soapy:driver=rtlsdr,serial=0001"
    assert devices.device_key(devices.parse_device("capture.sigmf-meta")) is None


class _ConstantBackend:
    """A made-up kind of device: a constant stream, tagged like every device source."""

    kind = "constant"

    def claims(self, text, args):
        return devices.DeviceSpec(self.kind, args, text) if "constant" in args else None

    def capabilities(self, spec):
        return devices.Capabilities("constant", (1e6, 2e6), (1e3, 1e6), 1e5, 1e6)

    def open(self, spec, samp_rate_hz, center_hz, gain_db, tune_scale):
        level = float(spec.args["constant"])
        return blocks.vector_source_c([complex(level)] * 1000, False)

    def calibration_key(self, spec):
        return "constant"


def test_a_new_kind_of_device_is_one_entry_in_the_table(monkeypatch):
    monkeypatch.setitem(devices.backends(), "constant", _ConstantBackend())
    spec = devices.parse_device("constant=0.5")
    assert spec.kind == "constant"
    src, caps = devices.open_source(spec, 1e5, 1.5e6, calibration=None)
    assert caps.driver == "constant"
    tb = gr.top_block(catch_exceptions=False)
    sink = blocks.vector_sink_c()
    tb.connect(src, sink)
    tb.run()
    assert np.allclose(sink.data(), 0.5)
    with pytest.raises(devices.DeviceError, match="outside the device's range"):
        devices.open_source(spec, 5e6, 1.5e6, calibration=None)


def test_the_test_signal_reads_its_tones_at_their_power():
    """testsig: what its capabilities promise (calibrated dBm) is what its samples hold."""
    spec = devices.parse_device("testsig,tones=100.1e6@-60,noise=-160,start=1796000000")
    src, caps = devices.open_source(spec, 1e6, 100e6, calibration=None)
    assert caps.cal_offset_db == 0.0
    tb = gr.top_block(catch_exceptions=False)
    head, sink = blocks.head(gr.sizeof_gr_complex, 1 << 16), blocks.vector_sink_c()
    tb.connect(src, head, sink)
    tb.run()
    x = np.array(sink.data())
    tone = np.mean(x * np.exp(-2j * np.pi * 0.1e6 / 1e6 * np.arange(x.size)))
    assert 10 * np.log10(abs(tone) ** 2) == pytest.approx(-60.0, abs=0.1)
    rx = [t for t in sink.tags() if str(t.key) == "rx_time"]
    assert rx and rx[0].offset == 0
