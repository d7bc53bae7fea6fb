"""``drift calibrate --array``: an array device's channel errors from a reference emitter.

Every channel of a coherent array (one clock, one LO) still differs from channel 0 by a
complex gain (phase and gain: cables, filters, mixers) and a delay (buffers, filters). They
are measured from a reference emitter at a known place (or bearing): the array's capture of
it is fitted by ``gnuradio.drift.df.calibrate_wideband`` (delays by GCC, then the rank-one
fit of the channels' covariance with the emitter's steering vector divided out). The result
goes into the device's calibration record (``$DRIFT_DATA_DIR/calibration``) as ``array``,
with the time it was measured and how long it stays valid; the node agent reports it to the
coordinator, whose AoA analysis removes the errors from the device's captures.
"""

from __future__ import annotations

import datetime as dt
import math

import numpy as np

from drift.errors import CommandError

#: The reference must stand this far above the noise in the array's covariance (largest
#: eigenvalue over the mean of the others, dB) for its phases to be worth storing.
MIN_REFERENCE_SNR_DB = 10.0
#: The channels' delays are searched up to this many samples.
MAX_DELAY_SAMPLES = 64
#: An array calibration stays valid this long unless --days says otherwise (channel phases
#: drift with temperature: recalibrate often).
DEFAULT_ARRAY_VALIDITY_DAYS = 1.0
SPEED_OF_LIGHT_M_S = 299_792_458.0


def _position(text: str, option: str) -> tuple[float, float, float]:
    try:
        parts = [float(p) for p in text.split(",")]
    except ValueError:
        raise ValueError(f"{option}: give LAT,LON[,ALT] in degrees and metres") from None
    if len(parts) not in (2, 3) or not all(math.isfinite(p) for p in parts):
        raise ValueError(f"{option}: give LAT,LON[,ALT] in degrees and metres")
    lat, lon, alt = (*parts, 0.0)[:3]
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise ValueError(f"{option}: latitude within +-90, longitude within +-180 degrees")
    return lat, lon, alt


def _node_config(args):
    if not getattr(args, "node_config", None):
        return None
    from drift.node.config import load_config

    return load_config(args.node_config)


def reference_azimuth_deg(args, spec) -> tuple[float, str]:
    """The reference's bearing from the array (true, degrees), and how it was found."""
    if (args.ref_position is None) == (args.ref_azimuth is None):
        raise ValueError("--array: give the reference as --ref-position or --ref-azimuth (one)")
    if args.ref_azimuth is not None:
        if not math.isfinite(args.ref_azimuth):
            raise ValueError("--ref-azimuth: a finite number of degrees")
        return args.ref_azimuth % 360.0, f"reference at azimuth {args.ref_azimuth % 360.0:.3f} deg"
    import pymap3d

    ref = _position(args.ref_position, "--ref-position")
    cfg = _node_config(args)
    if args.position is not None:
        here = _position(args.position, "--position")
    elif cfg is not None and cfg.location is not None:
        here = (cfg.location.lat_deg, cfg.location.lon_deg, cfg.location.alt_m)
    elif spec.kind == "sim":
        from drift.sim.device import scenario

        p = scenario(spec).node(spec.args["node"]).position
        here = (p.lat, p.lon, p.alt)
    else:
        raise ValueError("--position: the array's LAT,LON[,ALT] is needed with --ref-position")
    e, n, _ = pymap3d.geodetic2enu(*ref, *here)
    if math.hypot(e, n) < 1.0:
        raise ValueError("--ref-position: the reference is at the array itself")
    az = math.degrees(math.atan2(e, n)) % 360.0
    return az, f"reference at {ref[0]:.6f},{ref[1]:.6f} (azimuth {az:.3f} deg)"


def capture(spec_text: str, rate: float, center_hz: float, n: int, channels: int) -> np.ndarray:
    """(channels, n) samples of every channel at once."""
    from gnuradio import blocks, gr
    from gnuradio.drift import devices

    src = devices.source(spec_text, rate, center_hz, None, channels=channels)
    tb = gr.top_block("drift_calibrate_array", catch_exceptions=False)
    item = gr.sizeof_gr_complex * channels
    skip = blocks.skiphead(item, int(0.05 * rate))  # let the device settle
    head = blocks.head(item, n)
    sink = blocks.vector_sink_c(channels)
    tb.connect(src, skip, head, sink)
    tb.run()
    return np.asarray(sink.data(), np.complex64).reshape(-1, channels).T


def carrier_capture(args, caps, min_samples: int) -> tuple[float, float, int]:
    """A capture of the known carrier for ``drift calibrate`` (one channel or an array): its
    sample rate (--rate, or the device's default), the centre it tunes to (--known-freq less
    --offset, by default an eighth of the rate, so the carrier is clear of DC) and its length
    (--duration), each checked against the device and a shortest useful capture."""
    rate = args.rate or caps.default_sample_rate_hz
    offset = rate / 8 if args.offset is None else args.offset
    tuned = args.known_freq - offset
    lo, hi = caps.freq_range_hz
    if not lo <= tuned <= hi:
        raise ValueError(
            f"--known-freq: {tuned:g} Hz is outside the device's range {lo:g}-{hi:g} Hz"
        )
    n = int(args.duration * rate)
    if n < min_samples:
        raise ValueError(f"--duration: too short, need at least {min_samples} samples")
    return rate, tuned, n


def calibrate_array_device(args) -> int:
    from gnuradio.drift import devices, df
    from gnuradio.drift.devices import calibration

    spec = devices.parse_device(args.device)
    key = devices.device_key(spec)
    if key is None:
        raise ValueError("--device: a recording cannot be calibrated")
    if args.known_power is not None:
        raise ValueError("--known-power: an array calibration measures no absolute power")
    caps = devices.capabilities(spec)
    cfg = _node_config(args)
    if cfg is not None and cfg.array is not None:
        if cfg.array.elements != caps.channels:
            raise ValueError(
                f"--node-config: its array has {cfg.array.elements} elements, the device "
                f"opens {caps.channels} channel(s)"
            )
        caps.array = cfg.array.layout()
    if caps.channels < 2 or not caps.array:
        raise ValueError(
            f"--array: device {args.device!r} has {caps.channels} channel(s) and "
            f"{'an' if caps.array else 'no'} array layout; an array calibration needs a "
            "coherent array (channels=M in a SoapySDR device string, its layout in the "
            "node.yaml given by --node-config)"
        )
    az, how = reference_azimuth_deg(args, spec)
    rate, tuned, n = carrier_capture(args, caps, min_samples=4096)
    m = caps.channels
    x = capture(args.device, rate, tuned, n, m)
    cov = x @ x.conj().T / x.shape[1]
    lam = np.sort(np.linalg.eigvalsh(cov).real)
    snr = 10 * math.log10(max(lam[-1], 1e-300) / max(np.mean(lam[:-1]), 1e-300))
    min_snr = MIN_REFERENCE_SNR_DB if args.min_snr is None else args.min_snr
    if not snr >= min_snr:
        raise CommandError(
            f"no clear reference at {args.known_freq:g} Hz: it stands {snr:.1f} dB above the "
            f"noise across the channels, less than --min-snr {min_snr:g} dB; the record is "
            "unchanged"
        )
    enu = np.asarray(caps.array["element_enu_m"], dtype=float)
    wavelength = SPEED_OF_LIGHT_M_S / args.known_freq
    cal = df.calibrate_wideband(
        x,
        rate,
        max_delay_s=MAX_DELAY_SAMPLES / rate,
        positions_wl=enu / wavelength,
        ref_azimuth_deg=az,
        ref_freq_hz=args.known_freq,
        center_freq_hz=tuned,
    )
    days = DEFAULT_ARRAY_VALIDITY_DAYS if args.days is None else args.days
    if not days > 0:
        raise ValueError("--days: must be above 0")
    now = dt.datetime.now(dt.UTC)
    doc = cal.to_dict()
    doc.pop("type", None)
    doc.pop("version", None)
    doc.update(
        measured=now.isoformat(),
        valid_until=(now + dt.timedelta(days=days)).isoformat(),
        notes=f"{how}, {args.known_freq:g} Hz, {snr:.1f} dB above the noise",
    )
    store = calibration.CalibrationStore()
    record = store.load(key, expired=True)
    if record is None:
        record = calibration.CalibrationRecord(
            device_key=key,
            created=now.isoformat(),
            valid_until=doc["valid_until"],
            notes="array calibration only",
        )
    record.array = doc
    path = store.save(record)
    print(
        f"array of {m} channels, {how}, {snr:.1f} dB above the noise\n"
        + "\n".join(
            f"  channel {k}: phase {p:+8.2f} deg, gain {g:+6.2f} dB, delay {d:+8.3f} samples"
            for k, (p, g, d) in enumerate(
                zip(cal.phase_deg, cal.gain_db, cal.delay_samples, strict=True)
            )
        )
        + f"\nwrote {path} (at {rate:g} S/s; valid until {doc['valid_until'][:19]})"
    )
    return 0
