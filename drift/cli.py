"""The `drift` command line."""

from __future__ import annotations

import argparse
import logging
import sys

from gnuradio.eng_arg import eng_float

from drift import redaction

EXIT_USAGE = 2

SCAN_EPILOG = """\
devices:
  driver=rtlsdr[,serial=...]     a SoapySDR device through gr-soapy (any driver)
  osmosdr:rtl=0                  a gr-osmosdr device
  sigmf=FILE.sigmf-meta          a SigMF recording (scanned within its own band, one hop)
  sim=SCENARIO.yaml,node=ID      what a node of a simulated RF world receives (drift sim)
  driver=drift,scenario=SCENARIO.yaml,node=ID
                                 the same node as a SoapySDR device (SoapyDRIFT)
  testsig                        a built-in test signal: tones of known power (dBm) over a
                                 -150 dBm/Hz floor, retunable over 1 MHz-6 GHz

examples:
  drift scan --device testsig --start 88M --stop 108M --bin 10k --png fm.png
  drift scan --device driver=rtlsdr --start 400M --stop 470M --bin 25k \\
      --interval 10 --duration 1h --csv uhf.csv
  drift scan --device sigmf=capture.sigmf-meta --start 100.1M --stop 100.3M --bin 100 \\
      --sigmf psd_frames

The CSV is rtl_power's format (one line per hop: date, time, Hz low, Hz high, Hz step,
samples, dB values); as in rtl_power, all hops of a sweep carry the sweep's time (UTC),
--csv-hop-times gives each hop its own (the SigMF output always has them). Outputs are
written under temporary names and renamed when the scan ends, Ctrl-C included; on an error
none is left behind. Exit status 2 on bad arguments or a range the device cannot cover, 1
when the scan produced no sweep (the source ended first), 130 after Ctrl-C.
"""


def _duration(text: str) -> float:
    """Seconds, with an optional unit: 90, 90s, 15m, 2h."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    text = text.strip()
    try:
        if text and text[-1] in units:
            return float(text[:-1]) * units[text[-1]]
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (e.g. 30, 15m, 2h)") from None


def _add_scan(sub):
    p = sub.add_parser(
        "scan",
        help="calibrated spectrum scan (like rtl_power)",
        description="Sweep a frequency range with a device, recording or test signal and write "
        "calibrated PSD (dBm/Hz) as rtl_power CSV, SigMF and a waterfall PNG, with detections.",
        epilog=SCAN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--device", required=True, help="device string (see below)")
    p.add_argument("--start", type=eng_float, required=True, help="lowest frequency, Hz (88M)")
    p.add_argument("--stop", type=eng_float, required=True, help="highest frequency, Hz (108M)")
    p.add_argument(
        "--bin",
        type=eng_float,
        required=True,
        help="bin width, Hz; the FFT size is the next power of two",
    )
    p.add_argument(
        "--interval",
        type=_duration,
        default=1.0,
        help="integration time of one sweep (one CSV line per hop), s [1]",
    )
    p.add_argument(
        "--duration",
        type=_duration,
        default=None,
        help="total scan time (90, 15m, 2h) [one interval; a recording: all of it]",
    )
    p.add_argument("--rate", type=eng_float, default=None, help="device sample rate, S/s")
    p.add_argument("--gain", type=float, default=None, help="device gain, dB [automatic]")
    p.add_argument(
        "--cal-offset",
        type=float,
        default=0.0,
        help="extra calibration offset added to the PSD, dB [0]",
    )
    p.add_argument("--overlap", type=float, default=0.0, help="PSD frame overlap, [0, 1) [0]")
    p.add_argument(
        "--usable",
        type=float,
        default=None,
        help="share of each hop's band kept, (0, 1] [device's, 0.75 for tuners]",
    )
    p.add_argument(
        "--settle", type=float, default=None, help="time discarded after each retune, s [device's]"
    )
    p.add_argument(
        "--pfa", type=float, default=1e-6, help="detector false-alarm probability per bin [1e-6]"
    )
    p.add_argument("--csv", metavar="FILE", help="write rtl_power-compatible CSV")
    p.add_argument(
        "--csv-hop-times",
        action="store_true",
        help="stamp each CSV line with its hop's own time, not its sweep's",
    )
    p.add_argument("--sigmf", metavar="BASENAME", help="write the PSD frames as SigMF")
    p.add_argument("--png", metavar="FILE", help="write a waterfall PNG")
    p.add_argument("--detections", metavar="FILE", help="write detections as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bar, no summary")
    p.set_defaults(func=_cmd_scan)


def _cmd_scan(args) -> int:
    from . import scan

    cfg = scan.ScanConfig(
        device=args.device,
        start_hz=args.start,
        stop_hz=args.stop,
        bin_hz=args.bin,
        interval_s=args.interval,
        duration_s=args.duration,
        rate_hz=args.rate,
        gain_db=args.gain,
        cal_offset_db=args.cal_offset,
        overlap=args.overlap,
        usable=args.usable,
        settle_s=args.settle,
        pfa=args.pfa,
        csv=args.csv,
        csv_hop_times=args.csv_hop_times,
        sigmf=args.sigmf,
        png=args.png,
        detections=args.detections,
        progress=not args.quiet and sys.stderr.isatty(),
    )
    result = scan.run_scan(cfg)
    if not args.quiet:
        plan = result.plan
        print(
            f"scanned {cfg.start_hz / 1e6:.3f}-{cfg.stop_hz / 1e6:.3f} MHz on {result.caps.driver}: "
            f"{len(plan.hops)} hop(s), fft {plan.fft_size}, bin {plan.bin_hz:.1f} Hz, "
            f"{plan.n_avg} averages, {len(result.sweeps)} sweep(s)"
            + (" (interrupted)" if result.interrupted else "")
        )
        if result.sweeps:
            import numpy as np

            spectra = np.array([s for _, s in result.sweeps])
            floor = np.nanmedian(spectra)
            print(f"median level {floor:.1f} dBm/Hz")
        print(f"{len(result.detections)} detection(s)")
        for d in sorted(result.detections, key=lambda d: d.center_freq_hz):
            print(
                f"  {d.center_freq_hz / 1e6:11.6f} MHz  bw {d.bandwidth_hz / 1e3:8.1f} kHz  "
                f"power {d.power_db:7.1f} dBm  snr {d.snr_db:5.1f} dB"
            )
        for path in (cfg.csv, cfg.png, cfg.detections):
            if path:
                print(f"wrote {path}")
        if cfg.sigmf:
            print(f"wrote {cfg.sigmf}.sigmf-meta / .sigmf-data")
    return 130 if result.interrupted else 0


def _add_calibrate(sub):
    p = sub.add_parser(
        "calibrate",
        help="measure a device's LO error and gain against a known carrier",
        description="Capture a carrier of known frequency (and optionally known power at the "
        "antenna) and store the device's calibration record: its LO error in ppm and the gain "
        "offset that makes PSD output read dBm/Hz. `drift scan` and the device layer apply it. "
        "Runs at other frequencies add points to the record (the offset is interpolated "
        "between them); --restart starts over.",
        epilog="example: drift calibrate --device driver=rtlsdr --known-freq 162.55M\n"
        "         drift calibrate --device sim=examples/scenarios/city.yaml,node=n3 "
        "--known-freq 432.5M --known-power -84.6",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--device", required=True, help="device string (as drift scan)")
    p.add_argument("--known-freq", type=eng_float, required=True, help="carrier frequency, Hz")
    arr = p.add_argument_group(
        "array calibration (--array)",
        "Measure an array device's per-channel phase, gain and delay against channel 0 from a "
        "reference emitter at a known place (or bearing), and store them in the device's "
        "record, valid --days (default 1 with --array). The coordinator applies them to the "
        "device's AoA captures taken at the same sample rate; calibrate at the rate AoA jobs "
        "capture at (1.25 x the job's bandwidth_hz).",
    )
    arr.add_argument(
        "--array",
        action="store_true",
        help="calibrate the channels of an array device (not the LO and gain)",
    )
    arr.add_argument(
        "--ref-position",
        default=None,
        help="the reference emitter's LAT,LON[,ALT] (degrees, metres)",
    )
    arr.add_argument(
        "--ref-azimuth",
        type=float,
        default=None,
        help="or its bearing from the array, degrees clockwise from true north",
    )
    arr.add_argument(
        "--position",
        default=None,
        help="the array's LAT,LON[,ALT] (a simulated node: from its scenario)",
    )
    arr.add_argument(
        "--node-config",
        default=None,
        help="the node's node.yaml: its array layout (array:) and location, for a device "
        "that cannot tell its layout",
    )
    p.add_argument(
        "--known-power",
        type=float,
        default=None,
        help="carrier power at the antenna, dBm (calibrates the gain too)",
    )
    p.add_argument("--rate", type=eng_float, default=None, help="sample rate, S/s")
    p.add_argument("--duration", type=_duration, default=0.2, help="capture length, s [0.2]")
    p.add_argument(
        "--offset",
        type=eng_float,
        default=None,
        help="tune this far below the carrier, Hz [rate/8]: keeps it off DC",
    )
    p.add_argument(
        "--days",
        type=float,
        default=None,
        help="days the record stays valid [30; 1 with --array]",
    )
    p.add_argument(
        "--max-ppm",
        type=float,
        default=200.0,
        help="look for the carrier only within this LO error of --known-freq, ppm [200]",
    )
    p.add_argument(
        "--min-snr",
        type=float,
        default=None,
        help="refuse a capture whose carrier is less than this far above the noise, dB "
        "(noise in a bin of rate/1024) [10]",
    )
    p.add_argument(
        "--restart",
        action="store_true",
        help="forget the device's earlier points and start a new record (by "
        "default a run at another frequency adds a point to it)",
    )
    p.set_defaults(func=_cmd_calibrate)


def _cmd_calibrate(args) -> int:
    import numpy as np
    from gnuradio import blocks, gr
    from gnuradio.drift import devices
    from gnuradio.drift.devices import calibration

    from .array_calibration import calibrate_array_device, carrier_capture
    from .errors import CommandError

    if args.array:
        return calibrate_array_device(args)
    if args.ref_position or args.ref_azimuth is not None or args.position or args.node_config:
        raise ValueError(
            "--ref-position, --ref-azimuth, --position, --node-config: only with --array"
        )
    if args.days is None:
        args.days = calibration.DEFAULT_VALIDITY_DAYS
    spec = devices.parse_device(args.device)
    key = devices.device_key(spec)
    if key is None:
        raise ValueError("--device: a recording cannot be calibrated")
    caps = devices.capabilities(spec)
    rate, tuned, n = carrier_capture(args, caps, min_samples=1024)
    src, _ = devices.open_source(spec, rate, tuned, caps=caps, calibration=None)
    tb = gr.top_block("drift_calibrate", catch_exceptions=False)
    skip = blocks.skiphead(gr.sizeof_gr_complex, int(0.05 * rate))  # let the device settle
    head = blocks.head(gr.sizeof_gr_complex, n)
    sink = blocks.vector_sink_c()
    tb.connect(src, skip, head, sink)
    devices.sink_extra_channels(tb, src, caps)  # an array node: calibrate on its channel 0
    tb.run()
    x = np.array(sink.data())
    ppm, gain = calibration.measure(
        x, rate, tuned, args.known_freq, args.known_power, max_ppm=args.max_ppm
    )
    # gain: the PSD offset that turns dBFS into dBm at the antenna, at the carrier
    seen = args.known_freq - tuned - ppm * 1e-6 * tuned  # where the carrier appeared
    snr = calibration.carrier_snr_db(x, rate, seen)
    min_snr = calibration.MIN_SNR_DB if args.min_snr is None else args.min_snr
    store = calibration.CalibrationStore()
    earlier = None if args.restart else store.load(key)

    def refuse(reason):
        if earlier is not None:  # the record stays as it was; its history keeps the run
            entry = calibration.history_entry(
                args.known_freq, ppm, gain, snr, accepted=False, reason=reason
            )
            store.save(calibration.note_refused(earlier, entry))
        raise CommandError(reason + "; the record is unchanged")

    if not snr >= min_snr:
        refuse(
            f"no clear carrier at {args.known_freq:g} Hz: the strongest tone is {snr:.1f} dB "
            f"above the noise (in a {rate / calibration.SNR_FFT:g} Hz bin), less than "
            f"--min-snr {min_snr:g} dB"
        )
    try:
        record = calibration.merge_measurement(
            earlier,
            key,
            ppm,
            args.known_freq,
            gain,
            args.days,
            notes=f"carrier {args.known_freq:g} Hz"
            + (f" at {args.known_power:g} dBm" if args.known_power is not None else ""),
            snr_db=snr,
        )
    except calibration.CalibrationRefused as exc:
        refuse(str(exc))
    path = store.save(record)
    print(
        f"LO error {ppm:+.3f} ppm"
        + ("" if gain is None else f", PSD offset {gain:+.2f} dB (dBFS -> dBm)")
        + f", carrier {snr:.1f} dB above the noise"
    )
    if len(record.gain_points) > 1 or len(record.lo_points) > 1:
        print(
            f"record: LO error {record.lo_error_ppm:+.3f} ppm (mean of "
            f"{len(record.lo_points)}), PSD offset at "
            + ", ".join(f"{f / 1e6:g} MHz {g:+.2f} dB" for f, g in record.gain_points)
        )
    refused = sum(not h.get("accepted", True) for h in record.history)
    print(
        f"wrote {path} (valid until {record.valid_until[:10]}; history: "
        f"{len(record.history)} run(s), {refused} refused)"
    )
    return 0


def _add_sim(sub):
    p = sub.add_parser(
        "sim",
        help="the RF world simulator: render a node's view, show truth",
        description="Work with simulated scenarios (see examples/scenarios/).",
    )
    simsub = p.add_subparsers(dest="sim_command", metavar="SUBCOMMAND", required=True)
    r = simsub.add_parser(
        "render",
        help="write what one node receives as a SigMF recording",
        description="Write what NODE of SCENARIO receives at a centre frequency and sample "
        "rate as a SigMF recording (cf32_le, core:datetime = the node's own clock), so any SDR "
        "tool can open the simulated world.",
        epilog="example: drift sim render examples/scenarios/city.yaml --node n1 --center 434M "
        "--rate 2.4M --start 2026-11-24T12:00:00Z --duration 2 -o n1_434M",
    )
    r.add_argument("scenario", help="scenario YAML file")
    r.add_argument("--node", required=True, help="node id")
    r.add_argument("--center", type=eng_float, required=True, help="centre frequency, Hz")
    r.add_argument("--rate", type=eng_float, required=True, help="sample rate, S/s")
    r.add_argument(
        "--start",
        default=None,
        help="node clock at the first sample: UNIX seconds or ISO 8601 UTC [now]",
    )
    r.add_argument("--duration", type=_duration, required=True, help="seconds (or 2m, ...)")
    r.add_argument("-o", "--output", required=True, help="output BASENAME (.sigmf-meta/-data)")
    r.set_defaults(func=_cmd_sim_render)
    t = simsub.add_parser("truth", help="each emitter's power and frequency at a node")
    t.add_argument("scenario")
    t.add_argument("--node", required=True)
    t.add_argument("--json", action="store_true", help="print JSON")
    t.set_defaults(func=_cmd_sim_truth)


def _parse_time(text):
    import datetime as dt
    import time

    if text is None:
        return time.time()
    try:
        return float(text)
    except ValueError:
        pass
    try:
        stamp = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"--start: not a UNIX time or ISO 8601 time: {text!r}") from None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=dt.UTC)
    return stamp.timestamp()


def _cmd_sim_render(args) -> int:
    from .sim import load_scenario
    from .sim.render import render

    scn = load_scenario(args.scenario)
    n = render(
        scn,
        args.node,
        args.center,
        args.rate,
        _parse_time(args.start),
        args.duration,
        args.output,
        progress=sys.stderr.isatty(),
    )
    print(f"wrote {args.output}.sigmf-meta / .sigmf-data ({n} samples)")
    return 0


def _cmd_sim_truth(args) -> int:
    import json

    from .sim import load_scenario
    from .sim.render import truth_table

    rows = truth_table(load_scenario(args.scenario), args.node)
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    print(f"{'emitter':<14} {'waveform':<8} {'MHz':>12} {'dBm at antenna':>15}")
    for r in rows:
        print(
            f"{r['id']:<14} {r['waveform']:<8} {r['frequency_hz'] / 1e6:12.6f} "
            f"{r['power_dbm']:15.1f}"
        )
    return 0


def _add_serve(sub):
    p = sub.add_parser(
        "serve",
        help="run the coordinator (REST API, scheduler)",
        description="Run the DRIFT coordinator: the REST API under /api/v1 (OpenAPI at /docs) "
        "and the scheduler. Configuration by environment (DRIFT_DATABASE_URL, DRIFT_SECRET_KEY, ...); with none, "
        "state lives under DRIFT_DATA_DIR (default ./var) with SQLite, and an admin is created "
        "on first start (the log says how to log in).",
    )
    from .api.server import build_parser as build_serve_parser

    build_serve_parser(p)
    p.set_defaults(func=_cmd_serve)


def _cmd_serve(args) -> int:
    from .api.server import main as serve_main

    return serve_main(args)


def _add_ca(sub):
    p = sub.add_parser(
        "ca",
        help="the coordinator's certificate authority (node certificates, test server certs)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="The CA with which the coordinator signs node certificates, kept in "
        "DATA_DIR/ca (or the ca_dir setting) and made on first use. 'show' prints its "
        "certificate; 'server-cert' issues a certificate for drift serve --tls-cert from the "
        "same CA, for networks without a CA of their own (nodes then set ca_file to the "
        "printed CA certificate).",
        epilog="""example:
  drift ca --config coordinator.yaml server-cert coordinator.example.org 192.0.2.10 --out tls/
  drift serve --config coordinator.yaml --host 0.0.0.0 \\
      --tls-cert tls/server.crt --tls-key tls/server.key
  drift ca --config coordinator.yaml show > coordinator-ca.crt   # node.yaml: ca_file
""",
    )
    p.add_argument("--config", metavar="FILE", help="the coordinator's settings (YAML)")
    ca_sub = p.add_subparsers(dest="ca_command", metavar="ACTION", required=True)
    ca_sub.add_parser("show", help="print the CA certificate (PEM)")
    srv = ca_sub.add_parser("server-cert", help="issue a server certificate and key")
    srv.add_argument("names", nargs="+", metavar="NAME", help="host names and IP addresses")
    srv.add_argument("--out", required=True, metavar="DIR", help="writes server.crt, server.key")
    srv.add_argument(
        "--days",
        type=int,
        default=365,
        help="validity in days [365]",
        choices=range(1, 3651),
        metavar="DAYS",
    )
    p.set_defaults(func=_cmd_ca)


def _cmd_ca(args) -> int:
    from pathlib import Path

    from .fileperm import create_private
    from .orchestrator.pki import CertificateAuthority
    from .orchestrator.settings import load_settings

    settings = load_settings(args.config)
    ca = CertificateAuthority.load_or_create(settings.ca_path)
    if args.ca_command == "show":
        sys.stdout.write(ca.cert_pem)
        return 0
    out = Path(args.out)
    cert_path, key_path = out / "server.crt", out / "server.key"
    for path in (cert_path, key_path):
        if path.exists():
            raise ValueError(f"{path} exists; remove it first or choose another --out")
    cert, key = ca.issue_server(args.names, args.days * 86400)
    out.mkdir(parents=True, exist_ok=True)
    if not create_private(key_path, key):
        raise ValueError(f"{key_path} exists; remove it first or choose another --out")
    cert_path.write_text(cert)
    print(f"wrote {cert_path} and {key_path} (for {', '.join(args.names)}, CA {ca.cert_path})")
    return 0


def _add_node(sub):
    p = sub.add_parser(
        "node",
        help="run a node agent: enrol, heartbeat, run assigned flowgraphs",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Run the DRIFT node agent for one SDR. It enrols with the coordinator (once, "
        "with a one-time token an admin made: POST /api/v1/nodes/enrollment-tokens), heartbeats, "
        "runs each assignment as a GNU Radio flowgraph and relays its frames to the collector, "
        "spooling them to disk while the coordinator is unreachable. Heartbeats and assignments "
        "go over one WebSocket to the coordinator (assignments arrive the moment they are "
        "placed), over HTTP while it is down.",
        epilog="""node.yaml:
  coordinator: https://coord.example.org:8000   # or http://127.0.0.1:8000 on one host
  ca_file: coordinator-ca.crt               # CA of the coordinator's server certificate
  enrollment_token: drift-enroll-...        # one use; credential and certificate are
                                            # kept in state_dir (renewed before expiry)
  name: rooftop-1
  device: driver=rtlsdr,serial=00000001     # or osmosdr:..., sigmf=FILE, sim=SCENARIO,node=ID
  location: {lat_deg: 52.1, lon_deg: 4.3, alt_m: 12}   # simulated nodes: from the scenario
  sync: {source: gps, uncertainty_s: 2e-8}  # gps, pps, ptp, ntp, 10mhz_ref, system
  state_dir: var/node-rooftop-1             # credential, frame spool, job directories
  collector: tcp://127.0.0.1:5560           # default: the coordinator's host, port 5560
  heartbeat_interval_s: 2
  channel: true                             # a WebSocket: assignments pushed at once;
                                            # false: HTTP polling every heartbeat
  device_probe_interval_s: 30               # after the device was lost: how often to look
                                            # for it again
""",
    )
    p.add_argument("--config", required=True, metavar="FILE", help="node.yaml (see below)")
    p.add_argument(
        "--check-config",
        action="store_true",
        help="check node.yaml (fields, ca_file, state_dir, enrollment, the device) without "
        "enrolling or connecting; exit 0 when the agent could run it, 2 with one line per error",
    )
    p.set_defaults(func=_cmd_node)


def _cmd_node(args) -> int:
    import signal

    from .node.agent import NodeAgent
    from .node.config import ConfigError, load_config

    if args.check_config:
        return _check_node_config(args.config)
    logging.getLogger("drift").setLevel(logging.DEBUG if args.verbose else logging.INFO)
    try:
        agent = NodeAgent(load_config(args.config))
    except ConfigError as exc:
        raise ValueError(str(exc)) from None
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: agent.stop())
    try:
        agent.run()
    except ConfigError as exc:
        raise ValueError(str(exc)) from None
    return 0


def _check_node_config(path: str) -> int:
    from .node.check import check

    found = check(path)
    for line in found.facts:
        print(f"  {line}")
    for line in found.warnings:
        print(f"warning: {line}")
    for line in found.errors:
        print(f"error: {line}", file=sys.stderr)
    if found.errors:
        return EXIT_USAGE
    print(f"{path}: OK")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="drift",
        description="DRIFT: Distributed RF Intelligence Network Toolkit.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_scan(sub)
    _add_calibrate(sub)
    _add_sim(sub)
    _add_serve(sub)
    _add_ca(sub)
    _add_node(sub)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    redaction.install()  # no credential in any log line, whoever logs it
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    from .errors import CommandError

    what = " ".join(
        filter(
            None,
            [args.command, getattr(args, "sim_command", None), getattr(args, "ca_command", None)],
        )
    )
    try:
        return args.func(args)
    except ValueError as exc:  # bad arguments, devices, ranges: one line, exit 2
        print(f"drift {what}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except CommandError as exc:  # the command could not do its work: one line
        print(f"drift {what}: error: {exc}", file=sys.stderr)
        return exc.exit_status
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
