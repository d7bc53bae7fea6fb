"""The hardware matrix (DESIGN.md): what each supported SDR model can do.

One record per model, read by the simulator (its modelled devices refuse settings outside
these limits, with the limit in the error), by capability discovery for simulated nodes, and
by the allocator.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class HardwareModel:
    id: str
    name: str
    freq_min_hz: float
    freq_max_hz: float
    max_bandwidth_hz: float
    adc_bits: int
    has_tx: bool
    sync: str  # reference / timing input
    tier: str
    gain_range_db: tuple[float, float]
    tx_max_dbm: float | None = None

    def check_tuning(self, center_hz: float, samp_rate_hz: float) -> None:
        """Raise ValueError, naming the device's real limit, for a setting it cannot take."""
        if not self.freq_min_hz <= center_hz <= self.freq_max_hz:
            raise ValueError(
                f"{self.name}: centre frequency {center_hz:g} Hz is outside its tuning range "
                f"{self.freq_min_hz:g}-{self.freq_max_hz:g} Hz"
            )
        if not 0 < samp_rate_hz <= self.max_bandwidth_hz:
            raise ValueError(
                f"{self.name}: sample rate {samp_rate_hz:g} S/s is above its maximum bandwidth "
                f"{self.max_bandwidth_hz:g} Hz"
            )


MODELS: dict[str, HardwareModel] = {
    m.id: m
    for m in (
        HardwareModel(
            "hackrf_one",
            "HackRF One",
            1e6,
            6e9,
            20e6,
            8,
            True,
            "10 MHz ref",
            "1",
            (0.0, 102.0),
            15.0,
        ),
        HardwareModel(
            "adalm_pluto",
            "ADALM-Pluto",
            325e6,
            3.8e9,
            56e6,
            12,
            True,
            "external",
            "1",
            (0.0, 73.0),
            7.0,
        ),
        HardwareModel(
            "rtlsdr_v3", "RTL-SDR v3", 24e6, 1.7e9, 2.4e6, 8, False, "crystal", "1", (0.0, 49.6)
        ),
        HardwareModel(
            "airspy_r2", "Airspy R2", 24e6, 1.8e9, 10e6, 12, False, "10 MHz ref", "2", (0.0, 21.0)
        ),
        HardwareModel(
            "hermeslite2",
            "HermesLite 2",
            10e3,
            30e6,
            768e3,
            12,
            True,
            "GPS",
            "2",
            (-12.0, 48.0),
            37.0,
        ),
        HardwareModel(
            "usrp_b210",
            "USRP B210",
            70e6,
            6e9,
            56e6,
            12,
            True,
            "GPSDO",
            "planned",
            (0.0, 76.0),
            20.0,
        ),
    )
}


def model(model_id: str) -> HardwareModel:
    try:
        return MODELS[model_id]
    except KeyError:
        raise ValueError(
            f"unknown device model {model_id!r}: one of {', '.join(sorted(MODELS))}"
        ) from None
