"""What a node of a scenario receives: a deterministic function of absolute time.

Every emitter's complex envelope is an analytic function of continuous time (PSK and
band-limited noise are pulse trains of counter-hashed symbols, FM and chirps closed-form
phases, OFDM sums of subcarriers), so each node evaluates it at its own sample instants minus
the true propagation delay: sub-sample delays are exact, and two processes simulating two nodes
agree to the last bit of the model. Time is carried as whole seconds (int) plus a fraction
(float64), so nanoseconds survive at UNIX epoch scale.

Per node: path loss (free space or log-distance with seeded shadowing), antenna gain, the
carrier phase of the path, the node's LO error, thermal noise (-174 dBm/Hz + noise figure)
from a counter-based generator keyed by the absolute sample index, receiver gain, ADC
quantization and clipping, and the node's clock (offset and drift: the node samples on its
own time grid, and its rx_time is its own idea of time).

Array nodes (scenario `array:`) get one channel per element: each element's own geometric
delay and carrier phase, one LO and clock for all, independent thermal noise, and the
configured per-channel phase, gain and delay errors; samples() then returns (M, n).

Speed: with gr-drift built (USE_KERNELS, the default), static emitters, noise and the ADC are
synthesized by the C++ kernels in blocks/lib/sim_kernels.cc; the numpy code here is their
reference (USE_KERNELS = False), which the tests compare them with, and still makes moving
emitters (their delay changes with time).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import pymap3d

from .scenario import Emitter, Node, Scenario

try:  # the C++ kernels of gr-drift; the numpy code below is their reference
    from gnuradio.drift import sim_add_emitter as _cxx_add_emitter
    from gnuradio.drift import sim_finish as _cxx_finish
    from gnuradio.drift import sim_gauss as _cxx_gauss
    from gnuradio.drift import sim_pulse_train as _cxx_pulse_train
    from gnuradio.drift import sim_synthesize as _cxx_synthesize
except ImportError:  # pragma: no cover - a gr-drift build without them
    _cxx_gauss = _cxx_pulse_train = _cxx_add_emitter = _cxx_finish = _cxx_synthesize = None

USE_KERNELS = _cxx_gauss is not None  # tests turn this off to compare with the reference

C = 299_792_458.0
KT_DBM_HZ = -174.0
FULL_SCALE_DBM_AT_0DB = 10.0  # input power that fills the ADC at 0 dB receiver gain
PULSE_SPAN = 8  # symbols each side of a pulse that are summed

_M64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finalizer: a counter-based hash, uint64 -> uint64."""
    x = (x + np.uint64(0x9E3779B97F4A7C15)) & _M64
    x = ((x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)) & _M64
    x = ((x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)) & _M64
    return x ^ (x >> np.uint64(31))


def _key(*parts) -> np.uint64:
    """A stable 64-bit key from ints and strings (seed, ids)."""
    h = np.uint64(0x243F6A8885A308D3)
    with np.errstate(over="ignore"):
        for p in parts:
            data = p.encode() if isinstance(p, str) else int(p).to_bytes(8, "little", signed=True)
            for b in data:
                h = _mix(np.array([h ^ np.uint64(b)], dtype=np.uint64))[0]
    return h


def _uniform(key: np.uint64, counter: np.ndarray) -> np.ndarray:
    """Uniform in [0, 1) for each counter (int64 array), independent per key."""
    with np.errstate(over="ignore"):
        u = _mix(counter.astype(np.uint64) ^ key)
    return (u >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))


def _gauss_range(key: np.uint64, first: int, n: int) -> np.ndarray:
    """_gauss for the counters first .. first + n - 1 (C++ when available)."""
    if USE_KERNELS:
        return _cxx_gauss(int(key), int(first), int(n))
    return _gauss(key, first + np.arange(n, dtype=np.int64))


def _gauss(key: np.uint64, counter: np.ndarray) -> np.ndarray:
    """Complex standard normal (E|z|^2 = 1) for each counter, by Box-Muller."""
    u1 = _uniform(key, 2 * counter)
    u2 = _uniform(key, 2 * counter + 1)
    r = np.sqrt(-np.log1p(-u1))  # = sqrt(-ln(1-u1)): |z|^2 exponential with mean 1
    return r * np.exp(2j * np.pi * u2)


def _rrc(x: np.ndarray, beta: float) -> np.ndarray:
    """Root-raised-cosine pulse at x symbols from its centre (unit energy per symbol)."""
    x = np.asarray(x, dtype=np.float64)
    out = np.empty_like(x)
    small = np.abs(x) < 1e-9
    edge = np.abs(np.abs(4 * beta * x) - 1) < 1e-9
    reg = ~(small | edge)
    xr = x[reg]
    out[reg] = (
        np.sin(np.pi * xr * (1 - beta)) + 4 * beta * xr * np.cos(np.pi * xr * (1 + beta))
    ) / (np.pi * xr * (1 - (4 * beta * xr) ** 2))
    out[small] = 1 - beta + 4 * beta / np.pi
    out[edge] = (
        beta
        / math.sqrt(2)
        * (
            (1 + 2 / np.pi) * math.sin(np.pi / (4 * beta))
            + (1 - 2 / np.pi) * math.cos(np.pi / (4 * beta))
        )
    )
    return out


@dataclass
class Times:
    """Absolute true times T + u (T whole seconds, u float seconds, small)."""

    whole: int
    frac: np.ndarray

    def cycles(self, freq_hz: float) -> np.ndarray:
        """freq * t in cycles, less an integer: the whole-seconds part is reduced exactly, the
        rest (freq * frac, at most ~1e9 cycles) keeps ~1e-7 cycles in float64."""
        _, rem = _exact_product(self.whole, freq_hz)
        return rem + freq_hz * self.frac

    def index(self, rate_hz: float) -> tuple[int, np.ndarray]:
        """t * rate as (int offset, float remainder array): symbol positions, exact offset."""
        k0, rem = _exact_product(self.whole, rate_hz)
        return k0, rem + self.frac * rate_hz


def _exact_product(whole: int, value: float) -> tuple[int, float]:
    """whole * value as (integer part, fraction in [0, 1)), without rounding the product."""
    p = Fraction(whole) * Fraction(value)
    k = math.floor(p)
    return k, float(p - k)


PULSE_TABLE_STEPS = 8192  # pulse samples per symbol in the interpolation table


def _pulse_table(beta: float) -> np.ndarray:
    """The root-raised-cosine pulse over +-(PULSE_SPAN + 1) symbols, finely tabulated (linear
    interpolation of it errs by under 1e-7 of the peak), cached per roll-off."""
    table = _PULSE_TABLES.get(beta)
    if table is None:
        x = (
            np.arange(
                -(PULSE_SPAN + 1) * PULSE_TABLE_STEPS, (PULSE_SPAN + 1) * PULSE_TABLE_STEPS + 2
            )
            / PULSE_TABLE_STEPS
        )
        table = _PULSE_TABLES[beta] = _rrc(x, beta)
    return table


_PULSE_TABLES: dict[float, np.ndarray] = {}


def _pulse_train(times: Times, rate_hz: float, beta: float, symbols) -> np.ndarray:
    """Sum_k a_k g(t*rate - k): a root-raised-cosine pulse train evaluated at any times."""
    k0, pos = times.index(rate_hz)
    base = np.floor(pos).astype(np.int64)
    lo, hi = int(base.min()) - PULSE_SPAN, int(base.max()) + PULSE_SPAN + 1
    table = np.asarray(symbols(k0 + np.arange(lo, hi + 1, dtype=np.int64)), dtype=np.complex128)
    pulse = _pulse_table(beta)
    if USE_KERNELS:
        return _cxx_pulse_train(pos, lo, table, pulse, PULSE_TABLE_STEPS, PULSE_SPAN)
    frac = pos - base
    out = np.zeros(pos.size, dtype=np.complex128)
    centre = (PULSE_SPAN + 1) * PULSE_TABLE_STEPS
    for j in range(-PULSE_SPAN, PULSE_SPAN + 1):
        # pulse at x = frac - j symbols, linearly interpolated from the table
        xi = (frac - j) * PULSE_TABLE_STEPS + centre
        i0 = xi.astype(np.int64)
        w = xi - i0
        g = pulse[i0] * (1 - w) + pulse[i0 + 1] * w
        out += table[base + j - lo] * g
    return out


def envelope(em: Emitter, key: np.uint64, t: Times) -> np.ndarray:
    """Complex envelope of an emitter at true emission times t, mean power 1 (when on)."""
    w = em.waveform
    if w.type == "cw":
        s = np.ones(t.frac.size, dtype=np.complex128)
    elif w.type == "psk":
        if w.order == 2:

            def symbols(k):
                return 2.0 * (_uniform(key, k) < 0.5) - 1.0
        else:

            def symbols(k):
                return np.exp(2j * np.pi * (np.floor(_uniform(key, k) * 4) / 4 + 1 / 8))

        s = _pulse_train(t, w.symbol_rate_hz, w.rolloff, symbols)
    elif w.type == "noise":
        # Gaussian symbols at the bandwidth with a steep pulse: flat band-limited noise.
        s = _pulse_train(
            t, w.bandwidth_hz / 1.05, 0.05, lambda k: _gauss_range(key, int(k[0]), k.size)
        )
    elif w.type == "fm":
        if w.audio == "tone":
            beta = w.deviation_hz / w.audio_freq_hz
            s = np.exp(1j * beta * np.sin(2 * np.pi * t.cycles(w.audio_freq_hz)))
        else:
            # audio: a sum of 32 seeded tones within the audio bandwidth; its integral is closed
            # form, so the phase is exact at any time.
            n = np.arange(32)
            f = (0.05 + 0.95 * _uniform(key, n)) * w.audio_bandwidth_hz
            a = 1.0 / math.sqrt(16)
            ph = _uniform(key, n + 1000)
            phase = np.zeros(t.frac.size)
            for fk, pk in zip(f, ph, strict=True):
                phase += a * w.deviation_hz / fk * np.sin(2 * np.pi * (t.cycles(fk) + pk))
            s = np.exp(1j * phase)
    elif w.type == "chirp":
        k0, pos = t.index(1.0 / w.period_s)
        tau = np.mod(pos, 1.0) * w.period_s
        b, tp = w.bandwidth_hz, w.period_s
        s = np.exp(2j * np.pi * (-b / 2 * tau + b / (2 * tp) * tau**2))
    elif w.type == "ofdm":
        t_u = 1.0 / w.spacing_hz
        t_sym = t_u * (1 + w.cp_fraction)
        k0, pos = t.index(1.0 / t_sym)
        m = np.floor(pos).astype(np.int64)
        inside = (pos - m) * t_sym - t_u * w.cp_fraction  # time from the end of the CP
        # sum_k X[m, k] z^(k - K/2) with z = exp(j 2 pi spacing t): Horner's rule over k, the
        # QPSK symbols X hashed once per OFDM symbol present
        z = np.exp(2j * np.pi * w.spacing_hz * inside)
        um, inv = np.unique(m, return_inverse=True)
        k = np.arange(w.subcarriers, dtype=np.int64)
        quarter = np.floor(_uniform(key, ((k0 + um)[:, None] * 4096 + k[None, :]).ravel()) * 4)
        table = np.exp(2j * np.pi * (quarter / 4 + 1 / 8)).reshape(um.size, w.subcarriers)
        s = np.zeros(t.frac.size, dtype=np.complex128)
        for i in reversed(range(w.subcarriers)):
            s = s * z + table[inv, i]
        s *= z ** (-(w.subcarriers // 2)) / math.sqrt(w.subcarriers)
    else:  # pragma: no cover - the scenario model admits no other type
        raise ValueError(f"unknown waveform {w.type}")
    sch = em.schedule
    if sch.duty_cycle < 1:
        k0, pos = Times(t.whole, t.frac - sch.offset_s).index(1.0 / sch.period_s)
        s = s * (np.mod(pos, 1.0) < sch.duty_cycle)
    return s


def _ecef(p) -> np.ndarray:
    return np.array(pymap3d.geodetic2ecef(p.lat, p.lon, p.alt))


def path_loss_db(scn: Scenario, em: Emitter, node: Node, distance_m: float) -> float:
    prop = scn.propagation
    lam = C / em.frequency_hz
    if prop.model == "free_space":
        return 20 * math.log10(4 * math.pi * max(distance_m, lam / (4 * math.pi)) / lam)
    d0 = prop.reference_distance_m
    pl0 = 20 * math.log10(4 * math.pi * d0 / lam)
    pl = pl0 + 10 * prop.exponent * math.log10(max(distance_m, d0) / d0)
    if prop.shadowing_sigma_db > 0:
        z = _gauss(_key(scn.seed, "shadow", em.id, node.id), np.array([0]))[0].real * math.sqrt(2)
        pl += prop.shadowing_sigma_db * z
    return pl


def received_power_dbm(scn: Scenario, em: Emitter, node: Node) -> float:
    """Truth: power of the emitter at the node's antenna output (EIRP - path loss + gain)."""
    d = float(np.linalg.norm(_ecef(em.position) - _ecef(node.position)))
    return em.eirp_dbm - path_loss_db(scn, em, node, d) + node.antenna_gain_dbi


def full_scale_dbm(node: Node, center_hz: float | None = None) -> float:
    """Input power (dBm at the antenna output) that actually fills the node's ADC (tuned to
    center_hz, when its gain error changes with frequency)."""
    return nominal_full_scale_dbm(node) - node.gain_error_db - tilt_db(node, center_hz)


def tilt_db(node: Node, center_hz: float | None) -> float:
    """The part of the gain error that depends on the tuned frequency (scenario GainTilt)."""
    t = node.gain_tilt
    if t is None or center_hz is None:
        return 0.0
    return t.db_per_mhz * (center_hz - t.center_hz) / 1e6


def nominal_full_scale_dbm(node: Node) -> float:
    """Full scale by the datasheet (the node's gain error unknown): the factory calibration.

    With no gain set, the gain a sensible operator picks: thermal noise over the device's full
    bandwidth sits 20 dB below full scale less the ADC's dynamic range (6.02 dB a bit), i.e.
    about 20 dB above the quantization noise, leaving the rest as headroom for signals.
    """
    if node.gain_db is None:
        m = node.model
        noise = KT_DBM_HZ + node.noise_figure_db + 10 * math.log10(m.max_bandwidth_hz)
        return noise + 6.02 * m.adc_bits - 20.0
    return FULL_SCALE_DBM_AT_0DB - node.gain_db


POLY_ERROR = 2e-9  # pulse polynomials per symbol interval: the largest error, of the peak
FM_TAYLOR_DEGREE = 14  # FM noise-audio phase per segment (error < 1e-12 rad a radian)
KINDS = {
    "cw": 0,
    "bpsk": 1,
    "qpsk": 2,
    "noise": 3,
    "fm_tone": 4,
    "fm_noise": 5,
    "chirp": 6,
    "ofdm": 7,
}


def _pulse_poly(beta: float) -> np.ndarray:
    """(2 PULSE_SPAN + 1, D + 1) monomial coefficients in y = 2x - 1 of the pulse g(x - j)
    over x in [0, 1), j = -PULSE_SPAN..PULSE_SPAN (Chebyshev interpolation), of the lowest
    degree D that errs by under POLY_ERROR of the peak (smoother pulses need fewer)."""
    table = _PULSE_POLYS.get(beta)
    if table is None:
        from numpy.polynomial import chebyshev

        y = np.linspace(-1, 1, 1001)
        for deg in range(6, 21):
            rows, err = [], 0.0
            for j in range(-PULSE_SPAN, PULSE_SPAN + 1):

                def g(v, j=j):
                    return _rrc((v + 1) / 2 - j, beta)

                p = chebyshev.cheb2poly(chebyshev.chebinterpolate(g, deg))
                err = max(err, float(np.abs(np.polynomial.polynomial.polyval(y, p) - g(y)).max()))
                rows.append(p)
            if err < POLY_ERROR:
                break
        table = _PULSE_POLYS[beta] = np.array(rows)
    return table


_PULSE_POLYS: dict[float, np.ndarray] = {}


def _lin(w: int, off: float, d: float, rate: float) -> tuple[int, float, float]:
    """(w + off + k d) * rate as whole + frac + k * step, the whole seconds reduced exactly."""
    k0, rem = _exact_product(w, rate)
    return k0, rem + off * rate, d * rate


def _kernel_spec(
    em: Emitter, key: np.uint64, amp: float, w: int, off: float, d: float, c_rx: float, lo: float
) -> tuple | None:
    """sim_add_emitter's arguments for a static emitter: its emission times are
    w + off + k d (k the sample index), its arrival times w + c_rx + k d. None when the
    kernels cannot make it at this rate."""
    f = em.frequency_hz
    # carrier cycles at emission minus the LO's at arrival, reduced exactly
    ph = Fraction(f) * (Fraction(w) + Fraction(off)) - Fraction(lo) * (Fraction(w) + Fraction(c_rx))
    carrier = (0, float(ph - math.floor(ph)), float(Fraction(d) * (Fraction(f) - Fraction(lo))))
    sch = em.schedule
    sched = (
        _lin(w, off - sch.offset_s, d, 1.0 / sch.period_s) if sch.duty_cycle < 1 else (0, 0.0, 0.0)
    )
    lins = [carrier, sched]
    wf = em.waveform
    table = np.zeros(0)
    params = [sch.duty_cycle]
    if wf.type == "cw":
        kind = "cw"
    elif wf.type in ("psk", "noise"):
        if wf.type == "psk":
            kind, rate, beta = ("bpsk" if wf.order == 2 else "qpsk"), wf.symbol_rate_hz, wf.rolloff
        else:
            kind, rate, beta = "noise", wf.bandwidth_hz / 1.05, 0.05
        lins.append(_lin(w, off, d, rate))
        table = _pulse_poly(beta)
        params += [PULSE_SPAN, table.shape[1] - 1]
    elif wf.type == "fm" and wf.audio == "tone":
        kind = "fm_tone"
        lins.append(_lin(w, off, d, wf.audio_freq_hz))
        params.append(wf.deviation_hz / wf.audio_freq_hz)
    elif wf.type == "fm":
        kind = "fm_noise"
        n = np.arange(32)
        fk = (0.05 + 0.95 * _uniform(key, n)) * wf.audio_bandwidth_hz
        ph = _uniform(key, n + 1000)
        lins += [_lin(w, off, d, float(x)) for x in fk]
        # segments short enough that the fastest tone turns by at most 1 rad a half segment
        # (audio as fast as the sample rate has no such segments: the reference makes it)
        seg = 2 * int(min(1 << 20, 1.0 / (2 * math.pi * fk.max() * d)))
        if seg < 2:
            return None
        params += [32, seg, FM_TAYLOR_DEGREE]
        table = np.concatenate([(1.0 / math.sqrt(16)) * wf.deviation_hz / fk, ph])
    elif wf.type == "chirp":
        kind = "chirp"
        lins.append(_lin(w, off, d, 1.0 / wf.period_s))
        params += [wf.bandwidth_hz, wf.period_s]
    elif wf.type == "ofdm":
        kind = "ofdm"
        t_u = 1.0 / wf.spacing_hz
        t_sym = t_u * (1 + wf.cp_fraction)
        lins.append(_lin(w, off, d, 1.0 / t_sym))
        params += [wf.subcarriers, wf.spacing_hz, t_u, wf.cp_fraction, t_sym]
    else:  # pragma: no cover - the scenario model admits no other type
        raise ValueError(f"unknown waveform {wf.type}")
    whole, frac, step = (np.array(v) for v in zip(*lins, strict=True))
    return (
        KINDS[kind],
        whole.astype(np.int64),
        frac.astype(np.float64),
        step.astype(np.float64),
        np.asarray(params, dtype=np.float64),
        np.ascontiguousarray(table, dtype=np.float64).ravel(),
        int(key),
        float(amp),
    )


def element_enu_m(arr) -> np.ndarray:
    """(M, 3) East-North-Up element offsets (m) of an array (see scenario.Array)."""
    m = arr.elements
    if arr.geometry == "ula":
        e = (np.arange(m) - (m - 1) / 2) * arr.size_m
        n = np.zeros(m)
    else:
        phi = 2 * np.pi * np.arange(m) / m
        e, n = arr.size_m * np.sin(phi), arr.size_m * np.cos(phi)
    th = math.radians(arr.orientation_deg)  # clockwise seen from above
    return np.column_stack(
        [e * math.cos(th) + n * math.sin(th), -e * math.sin(th) + n * math.cos(th), np.zeros(m)]
    )


def _channel_errors(scn: Scenario, node_id: str, name: str, spec, m: int) -> np.ndarray:
    """M per-channel error values: the listed ones, seeded normal draws, or zeros."""
    if spec is None or (isinstance(spec, list) and not spec):
        return np.zeros(m)
    if isinstance(spec, list):
        return np.asarray(spec, dtype=float)
    z = _gauss(_key(scn.seed, "array", node_id, name), np.arange(m, dtype=np.int64)).real
    return spec.sigma * math.sqrt(2) * z


def default_gain_db(node: Node) -> float:
    """The receiver gain a node runs at unless told otherwise: the scenario's gain_db, or,
    when it gives none, the top of the device's gain range, which then stands for the gain
    nominal_full_scale_dbm() picks (a label: the full scale is what counts)."""
    if node.gain_db is not None:
        return node.gain_db
    return node.model.gain_range_db[1]


def node_at_gain(node: Node, gain_db: float | None) -> Node:
    """The node with its receiver gain set to gain_db (None, or the default: the node as it
    is). Each dB of gain above the default lowers the full scale by one dB."""
    default = default_gain_db(node)
    if gain_db is None or gain_db == default:
        return node
    fs = nominal_full_scale_dbm(node) - (gain_db - default)
    return node.model_copy(update={"gain_db": FULL_SCALE_DBM_AT_0DB - fs})


@dataclass
class KernelPlan:
    """sim_synthesize's arguments for one channel, but the sample range (see
    NodeReceiver.kernel_plan)."""

    static: list  # sim_add_emitter's arguments per static emitter in the band
    moving: list  # the emitters that move (the numpy reference makes them)
    noise_key: int
    sigma: float
    gain: complex
    bits: int
    lo_hz: float  # the node's actual LO


class NodeReceiver:
    """Synthesizes one node's samples; any block of them, in any order, is the same."""

    def __init__(
        self,
        scn: Scenario,
        node_id: str,
        samp_rate_hz: float,
        center_hz: float,
        quantize: bool = True,
        gain_db: float | None = None,
    ):
        self.scn = scn
        node = scn.node(node_id)
        if gain_db is not None:
            lo, hi = node.model.gain_range_db
            if not lo <= gain_db <= hi:
                raise ValueError(
                    f"{node.model.name}: gain {gain_db:g} dB is outside its range {lo:g}-{hi:g} dB"
                )
        self.node = node_at_gain(node, gain_db)
        self.model = self.node.model
        self.model.check_tuning(center_hz, samp_rate_hz)
        self.samp_rate_hz = float(samp_rate_hz)
        self.center_hz = float(center_hz)
        self.quantize = quantize
        self._node_xyz = _ecef(self.node.position)
        self._noise_key = _key(scn.seed, "noise", node_id)
        self._epoch_whole = math.floor(scn.epoch_s)
        self._epoch_frac = scn.epoch_s - self._epoch_whole
        self._setup_channels(scn, node_id)
        self._specs: dict = {}  # kernel arguments per (channel, start time, LO)
        self._emitters = []
        for em in scn.emitters:
            p0 = _ecef(em.position)
            vel = np.zeros(3)
            if em.velocity is not None:
                e, n, u = em.velocity.east_mps, em.velocity.north_mps, em.velocity.up_mps
                vel = (
                    np.array(
                        pymap3d.enu2ecef(e, n, u, em.position.lat, em.position.lon, em.position.alt)
                    )
                    - p0
                )
            amp = math.sqrt(
                10 ** ((received_power_dbm(scn, em, self.node) - full_scale_dbm(self.node)) / 10)
            )
            self._emitters.append((em, _key(scn.seed, "emitter", em.id), p0, vel, amp))

    def _setup_channels(self, scn: Scenario, node_id: str) -> None:
        """Element positions (ENU offsets, m) and per-channel errors of an array node."""
        arr = self.node.array
        m = self.node.channels
        self.element_enu_m = element_enu_m(arr) if arr is not None else np.zeros((1, 3))
        p = self.node.position
        self._elem_xyz = np.array(
            [pymap3d.enu2ecef(e, n, u, p.lat, p.lon, p.alt) for e, n, u in self.element_enu_m]
        )
        if arr is None:
            self._elem_xyz = self._node_xyz[None, :]
        self.channel_phase_deg = _channel_errors(
            scn, node_id, "phase_deg", arr and arr.phase_deg, m
        )
        self.channel_gain_db = _channel_errors(scn, node_id, "gain_db", arr and arr.gain_db, m)
        self.channel_delay_samples = _channel_errors(
            scn, node_id, "delay_samples", arr and arr.delay_samples, m
        )
        self._ch_gain = 10 ** (self.channel_gain_db / 20) * np.exp(
            1j * np.deg2rad(self.channel_phase_deg)
        )
        # channel 0 keeps a single-channel node's noise, so adding an array changes nothing there
        self._noise_keys = [self._noise_key] + [
            _key(scn.seed, "noise", node_id, c) for c in range(1, m)
        ]

    @property
    def channels(self) -> int:
        return self.node.channels

    def element_positions_wl(self, freq_hz: float) -> np.ndarray:
        """(M, 3) element positions (east, north, up) in wavelengths at freq_hz: the
        positions_wl of gnuradio.drift.df.aoa (azimuths then come out true, from north)."""
        return self.element_enu_m / (C / freq_hz)

    def tune(self, center_hz: float) -> None:
        self.model.check_tuning(center_hz, self.samp_rate_hz)
        self.center_hz = float(center_hz)

    def _front_gain(self, ch: int) -> complex:
        """What multiplies a channel before the ADC, besides the common gain error: the
        array channel's error and the tilt of the gain with the tuned frequency."""
        g = complex(self._ch_gain[ch]) if self.node.array is not None else 1.0
        tilt = tilt_db(self.node, self.center_hz)
        return g * 10 ** (tilt / 20) if tilt else g

    def delay_s(self, emitter_id: str, t_true: float = 0.0, channel: int | None = None) -> float:
        """Geometric propagation delay from an emitter to this node's position (truth for
        TDOA), or to one array element's."""
        xyz = self._node_xyz if channel is None else self._elem_xyz[channel]
        for em, _, p0, vel, _ in self._emitters:
            if em.id == emitter_id:
                return float(np.linalg.norm(p0 + vel * t_true - xyz)) / C
        raise ValueError(f"no emitter {emitter_id!r}")

    def true_times(self, node_whole: int, node_frac: np.ndarray) -> Times:
        """Node clock readings -> true times: node = true + offset + drift * true."""
        clk = self.node.clock
        scale = 1.0 + clk.drift_ppm * 1e-6
        # (W + f - offset) / scale, with W / scale exact
        whole_true = Fraction(node_whole) / Fraction(scale)
        w = math.floor(whole_true)
        frac = float(whole_true - w) + (node_frac - clk.offset_s) / scale
        return Times(w, frac)

    def samples(self, start_index: int, n: int, start_whole: int, start_frac: float) -> np.ndarray:
        """n samples from absolute sample index start_index, the node clock reading
        start_whole + start_frac at sample index 0 of the stream (complex64): shape (n,) for
        a single-channel node, (M, n) for an array node (one row per element)."""
        if self.node.array is None:
            return self._channel(0, start_index, n, start_whole, start_frac)
        return np.stack(
            [
                self._channel(c, start_index, n, start_whole, start_frac)
                for c in range(self.channels)
            ]
        )

    def channel_samples(
        self, ch: int, start_index: int, n: int, start_whole: int, start_frac: float
    ) -> np.ndarray:
        """One channel (array element) of samples(): shape (n,)."""
        if not 0 <= ch < self.channels:
            raise ValueError(f"channel {ch} does not exist: the node has {self.channels}")
        return self._channel(ch, start_index, n, start_whole, start_frac)

    def _channel(
        self, ch: int, start_index: int, n: int, start_whole: int, start_frac: float
    ) -> np.ndarray:
        if USE_KERNELS and _cxx_synthesize is not None:
            return self._channel_cxx(ch, start_index, n, start_whole, start_frac)
        return self._channel_numpy(ch, start_index, n, start_whole, start_frac)

    def _time_line(self, ch: int, start_whole: int, start_frac: float) -> tuple[int, float, float]:
        """True time of sample k of a channel as w + c0 + k * d (w whole seconds): the
        node's clock (offset, drift) and the channel's delay, as true_times() has them."""
        clk = self.node.clock
        scale = 1.0 + clk.drift_ppm * 1e-6
        whole_true = Fraction(start_whole) / Fraction(scale)
        w = math.floor(whole_true)
        fs = self.samp_rate_hz
        delay = self.channel_delay_samples[ch]
        c0 = float(whole_true - w) + (start_frac - delay / fs - clk.offset_s) / scale
        return w, c0, 1.0 / (fs * scale)

    def kernel_plan(self, ch: int, start_whole: int, start_frac: float) -> KernelPlan:
        """Everything gr-drift's C++ kernels need to make a channel at the current tuning:
        sim_synthesize's arguments but the sample range (the stream's node clock reads
        start_whole + start_frac at sample index 0). The SoapySDR module (driver=drift)
        receives this plan from drift.sim.soapy_helper, so it makes the same samples."""
        lo = self.center_hz * (1 + self.node.clock.lo_error_ppm * 1e-6)
        ck = (ch, start_whole, start_frac, lo)
        specs = self._specs.get(ck)
        if specs is None:
            if len(self._specs) > 64:
                self._specs.clear()
            specs = self._specs[ck] = self._kernel_specs(ch, start_whole, start_frac, lo)
        return KernelPlan(
            static=[spec for spec in specs if spec[0] != "numpy"],
            moving=[spec[1] for spec in specs if spec[0] == "numpy"],
            noise_key=int(self._noise_keys[ch]),
            sigma=self._noise_sigma(),
            gain=complex(self._front_gain(ch)),
            bits=self.model.adc_bits if self.quantize else 0,
            lo_hz=lo,
        )

    def moving_samples(
        self,
        ch: int,
        plan: KernelPlan,
        start_index: int,
        n: int,
        start_whole: int,
        start_frac: float,
    ) -> np.ndarray | None:
        """The plan's moving emitters (made by the numpy reference) for samples start_index
        .. start_index + n - 1, complex128: sim_synthesize's `extra` (None when none move)."""
        if not plan.moving:
            return None
        fs = self.samp_rate_hz
        idx = start_index + np.arange(n, dtype=np.int64)
        delay = self.channel_delay_samples[ch]
        node_frac = start_frac + (idx / fs if delay == 0 else (idx - delay) / fs)
        t = self.true_times(start_whole, node_frac)
        extra = np.zeros(n, dtype=np.complex128)
        for item in plan.moving:
            extra += self._emitter_numpy(item, t, self._elem_xyz[ch], plan.lo_hz)
        return extra

    def _channel_cxx(
        self, ch: int, start_index: int, n: int, start_whole: int, start_frac: float
    ) -> np.ndarray:
        """_channel_numpy by gr-drift's C++ kernels: static emitters in C++ (positions linear
        in the sample index), moving ones by the numpy reference, noise and ADC in C++."""
        plan = self.kernel_plan(ch, start_whole, start_frac)
        extra = self.moving_samples(ch, plan, start_index, n, start_whole, start_frac)
        return _cxx_synthesize(
            plan.static,
            extra,
            plan.noise_key,
            int(start_index),
            n,
            plan.sigma,
            plan.gain,
            plan.bits,
        )

    def _noise_sigma(self) -> float:
        noise_dbm = KT_DBM_HZ + self.node.noise_figure_db + 10 * math.log10(self.samp_rate_hz)
        return math.sqrt(10 ** ((noise_dbm - full_scale_dbm(self.node)) / 10))

    def _kernel_specs(self, ch: int, start_whole: int, start_frac: float, lo: float) -> list:
        """Arguments of sim_add_emitter per emitter in the band (("numpy", item) for one
        that moves: its delay changes with time, so the numpy reference makes it)."""
        w, c0, d = self._time_line(ch, start_whole, start_frac)
        xyz = self._elem_xyz[ch]
        specs = []
        for item in self._emitters:
            em, key, p0, vel, amp = item
            if abs(em.frequency_hz - lo) >= self.samp_rate_hz / 2:
                continue
            if vel.any():
                specs.append(("numpy", item))
                continue
            tau = float(np.linalg.norm(p0 - xyz)) / C
            spec = _kernel_spec(em, key, amp, w, c0 - tau, d, c0, lo)
            # (None: the kernels' approximation does not hold at this rate)
            specs.append(spec if spec is not None else ("numpy", item))
        return specs

    def _emitter_numpy(self, item, t: Times, node_xyz: np.ndarray, lo: float) -> np.ndarray:
        em, key, p0, vel, amp = item
        if vel.any():
            # seconds since the scenario's epoch (where p0 holds): small, so float is fine
            tt = (t.whole - self._epoch_whole) + (t.frac - self._epoch_frac)
            d = np.linalg.norm(p0[None, :] + np.outer(tt, vel) - node_xyz, axis=1)
            tau = d / C
        else:
            tau = float(np.linalg.norm(p0 - node_xyz)) / C
        t_emit = Times(t.whole, t.frac - tau)
        s = envelope(em, key, t_emit)
        # carrier at emission time, mixed down by the node's actual LO at arrival time
        phase = t_emit.cycles(em.frequency_hz) - t.cycles(lo)
        return amp * s * np.exp(2j * np.pi * phase)

    def _channel_numpy(
        self, ch: int, start_index: int, n: int, start_whole: int, start_frac: float
    ) -> np.ndarray:
        fs = self.samp_rate_hz
        idx = start_index + np.arange(n, dtype=np.int64)
        delay = self.channel_delay_samples[ch]
        node_frac = start_frac + (idx / fs if delay == 0 else (idx - delay) / fs)
        t = self.true_times(start_whole, node_frac)
        node_xyz = self._elem_xyz[ch]
        lo = self.center_hz * (1 + self.node.clock.lo_error_ppm * 1e-6)
        x = np.zeros(n, dtype=np.complex128)
        half_band = fs / 2
        for item in self._emitters:
            # The receiver's anti-alias filter: an emitter centred outside the Nyquist band is
            # gone. (One centred inside keeps its whole spectrum; a tail beyond fs/2 aliases,
            # as with an ideal sampler: keep to the usable centre of the band.)
            if abs(item[0].frequency_hz - lo) >= half_band:
                continue
            x += self._emitter_numpy(item, t, node_xyz, lo)
        x += self._noise_sigma() * _gauss_range(self._noise_keys[ch], start_index, n)
        gain = self._front_gain(ch)
        if gain != 1.0:
            x *= gain
        if self.quantize:
            levels = 2 ** (self.model.adc_bits - 1)
            re = np.clip(np.round(x.real * levels), -levels, levels - 1) / levels
            im = np.clip(np.round(x.imag * levels), -levels, levels - 1) / levels
            x = re + 1j * im
        return x.astype(np.complex64)
