"""The node agent (``drift node --config node.yaml``): one per SDR node.

It enrols with the coordinator once (a one-time token buys a node credential and a client
certificate for a key made here, kept in ``state_dir``; the certificate is renewed when half
its validity is left), reports the device's capabilities, location and time source, heartbeats, picks
up assignments and runs each as a flowgraph subprocess compiled by
:mod:`drift.orchestrator.compiler`; it stops a flowgraph at its end or when the assignment is
cancelled or moved, and reports every state change with the flowgraph's own error text.

Results never go straight from a flowgraph to the coordinator. The flowgraph's frame sink pushes
to the agent's :class:`~drift.node.relay.Relay`, which first appends every frame to a disk spool
(:class:`drift.spool.Spool`, committed before forwarding) and then forwards it to the collector,
as a CurveZMQ client with the node's own key pair (made at enrollment, kept in ``state_dir``; the
collector's public key comes from the coordinator). While the coordinator is unreachable
the relay keeps spooling; when it is back, the relay rewinds to the last frames known to have
arrived and forwards from there. The collector stores frames idempotently by (job, node, type,
sequence), so a replay fills gaps and duplicates nothing.
"""

from __future__ import annotations

import concurrent.futures
import ctypes
import datetime as dt
import hashlib
import json
import logging
import os
import signal
import ssl
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from pydantic import BaseModel, ValidationError

from drift import curve
from drift.curve import KeyPair
from drift.fileperm import private_dir, replace_private
from drift.node.channel import ChannelClient, ChannelError
from drift.node.config import AgentConfig, ConfigError, LocationConfig, SyncConfig
from drift.node.identity import NodeIdentity
from drift.node.relay import CurveClient, Relay
from drift.orchestrator import compiler
from drift.protocol import DataPlane, DeviceCalibration, DeviceMetrics, channel_url
from drift.tls import client_context

log = logging.getLogger("drift.node")

#: the last lines of a failed flowgraph's stderr sent with the report
ERROR_TAIL_CHARS = 1900
#: in a job's directory: the device's state as the flowgraph's source writes it (see
#: gnuradio.drift.devices.soapy.soapy_source)
DEVICE_STATS_FILE = "device-stats.json"
#: the calibration record is sent again this often even when it has not changed
CALIBRATION_RESEND_S = 600.0
#: in state_dir: the node's Curve key pair, and what the coordinator said of the data plane
CURVE_KEY_FILE = "curve.key_secret"
DATA_PLANE_FILE = "data-plane.json"
#: in state_dir: one JSON line for every transmission's start and end (band, power, times)
TRANSMISSIONS_FILE = "transmissions.jsonl"
#: a transmitting flowgraph still running this long after SIGTERM is killed
TX_KILL_AFTER_S = 2.0
#: the watchdog stops a transmitting flowgraph this long after the job's end (time for the
#: flowgraph's own end: its last samples)
TX_WATCHDOG_MARGIN_S = 1.0


# --- running assignments -------------------------------------------------------------------

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # runs in the child between fork and exec
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError:
        pass


@dataclass
class Running:
    assignment_id: str
    job_id: str
    job_type: str
    proc: subprocess.Popen
    workdir: Path
    deadline: float
    stopping: bool = False
    #: spool id of the last frame when the flowgraph ended (report once it is delivered)
    frames_upto: int | None = None
    returncode: int | None = None
    attempt: int = 0
    #: what the flowgraph transmits (see NodeAgent._transmission); None: it only receives
    transmission: dict[str, Any] | None = None
    #: stops a transmitting flowgraph at the job's end, whatever the agent's loop is doing
    watchdog: threading.Timer | None = None


@dataclass
class Report:
    assignment_id: str
    state: str
    error: str | None = None
    tries: int = 0
    frames: dict[str, int] | None = None
    device_lost: bool = False
    transmission: dict[str, Any] | None = None


def _array_doc(array: dict[str, Any], aware) -> dict[str, Any]:
    """An array calibration as the protocol carries it (times with their zone)."""
    doc = {k: v for k, v in array.items() if k not in ("type", "version")}
    for k in ("measured", "valid_until"):
        if doc.get(k):
            doc[k] = aware(doc[k])
    return doc


def _device_lost(workdir: Path) -> str | None:
    """The line of a flowgraph's output that says its device went away, if one does (GNU
    Radio's logger writes to stdout, Python's to stderr)."""
    from gnuradio.drift.devices import DEVICE_LOST

    for name in ("stdout.log", "stderr.log"):
        try:
            text = (workdir / name).read_text(errors="replace")
        except OSError:
            continue
        for line in text.splitlines():
            if DEVICE_LOST + ":" in line:
                return line[line.index(DEVICE_LOST) :].strip()
    return None


#: what _within_protocol has warned of (once each)
_SAID: set[str] = set()


def _within_protocol(model: type[BaseModel], doc: dict[str, Any]) -> dict[str, Any]:
    """`doc` less the fields the coordinator would refuse (a sensor reading out of its
    bounds must not cost the node its heartbeat); {} when a required one is wrong."""
    try:
        model.model_validate(doc)
        return doc
    except ValidationError as exc:
        bad = {e["loc"][0] for e in exc.errors() if e["loc"]}
    said = f"{model.__name__}: left out of the heartbeat: {', '.join(sorted(map(str, bad)))}"
    log.log(logging.DEBUG if said in _SAID else logging.WARNING, "%s", said)
    _SAID.add(said)
    doc = {k: v for k, v in doc.items() if k not in bad}
    try:
        model.model_validate(doc)
    except ValidationError:
        return {}
    return doc


class _NoAnswer(Exception):
    """The coordinator did not answer a question (it may later)."""


def _write_private_json(path: Path, doc: Any) -> None:
    """Replace a file with JSON only this user can read."""
    replace_private(path, json.dumps(doc))


def _stderr_tail(path: Path) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    lines = [ln for ln in text.splitlines() if ln.strip() and "Warning:" not in ln]
    return "\n".join(lines)[-ERROR_TAIL_CHARS:]


class _Refused(Exception):
    """The node will not run an assignment; the message says why."""


def _reported(tx: dict[str, Any]) -> dict[str, Any]:
    """A transmission as the report carries it (protocol.Transmission)."""

    def when(t: float | None) -> str | None:
        return None if t is None else dt.datetime.fromtimestamp(t, dt.UTC).isoformat()

    return {
        "center_hz": tx["center_hz"],
        "bandwidth_hz": tx["bandwidth_hz"],
        "power_dbm": tx["power_dbm"],
        "licence": tx.get("licence"),
        "planned_start": when(tx["planned_start"]),
        "planned_end": when(tx["planned_end"]),
        "ended": when(tx.get("ended")),
        "stopped_by": tx.get("stopped_by", "flowgraph"),
    }


class NodeAgent:
    def __init__(self, cfg: AgentConfig):
        self.cfg = cfg
        self.state_dir = private_dir(cfg.state_dir)  # its credential, spool and jobs
        self.identity = NodeIdentity(self.state_dir)
        self._renew_after = 0.0
        self.http = self._http_client()
        self.node_id: str | None = None
        self.credential: str | None = None
        self.running: dict[str, Running] = {}
        #: assignments compiled ahead of a timed start still far off, by (id, attempt,
        #: start): compiled once, launched on the heartbeat round that reaches the start
        #: (the command, what it transmits or None)
        self._prepared: dict[tuple[str, int, float | None], tuple[compiler.Command, Any]] = {}
        #: the same, while they compile (on self._compiler's thread): (future, transmission)
        self._compiling: dict[tuple[str, int, float | None], tuple[Any, Any]] = {}
        self._compiler = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="compile")
        #: (assignment id, attempt) pairs already run: a retry of an assignment is a new attempt
        self.finished: set[tuple[str, int]] = set()
        self.reports: list[Report] = []
        self.relay = Relay(self.state_dir, cfg.collector_endpoint)
        self._curve_keys: KeyPair | None = None
        self._stop = threading.Event()
        #: set by stop() and by a pushed assignment list
        self._wake = threading.Event()
        #: the node channel (heartbeats and pushed assignments); None while it is down
        self.channel: ChannelClient | None = None
        self._channel_retry_at = 0.0
        #: the latest assignment list the channel pushed, and the one last acted on
        self._pushed: list[dict[str, Any]] | None = None
        self._applied: list[dict[str, Any]] | None = None
        self._sync = cfg.sync
        self._location = cfg.location
        self.coordinator_ok = False
        self.last_error: str | None = None
        #: why the device is lost (None: it is there); see _device_lost
        self.device_error: str | None = None
        self._probe_at = 0.0
        self._lost_runs: set[tuple[str, int]] = set()
        self._last_refusal: str | None = None
        #: the device as enrolled (driver, serial): its metrics and calibration are named so
        self._device_name: tuple[str, str | None] | None = None
        self._calibration_key: str | None = None
        #: overflows and lost samples of the flowgraphs that ended; the sensors' last readings
        self._device_totals = {"overflows": 0, "dropped_samples": None}
        self._device_last: dict[str, Any] = {}
        #: the calibration record last sent, and when (monotonic)
        self._calibration_sent: tuple[Any, float] | None = None
        #: a transmission's end is logged once, by the loop or by its watchdog
        self._tx_lock = threading.Lock()

    # -- identity ---------------------------------------------------------------------------

    def _describe(self) -> dict[str, Any]:
        from gnuradio.drift import devices

        from drift.sim.device import scenario

        spec = devices.parse_device(self.cfg.device)
        caps = devices.capabilities(spec)
        loc, sync = self._location, self._sync
        gain = self.cfg.antenna_gain_dbi
        if spec.kind == "sim":
            node = next(n for n in scenario(spec).nodes if n.id == spec.args.get("node"))
            if loc is None:
                p = node.position
                loc = LocationConfig(lat_deg=p.lat, lon_deg=p.lon, alt_m=p.alt)
            if gain is None:
                gain = node.antenna_gain_dbi
            if sync is None:
                src = {"none": "system"}.get(node.clock.source, node.clock.source)
                sync = SyncConfig(source=src, uncertainty_s=node.clock.uncertainty_s or None)
        if loc is None:
            raise ConfigError("location: required for a node that is not simulated")
        self._location, self._sync = loc, sync or SyncConfig()
        if self.cfg.array is not None:
            if caps.channels != self.cfg.array.elements:
                raise ConfigError(
                    f"array: {self.cfg.array.elements} elements, but the device opens "
                    f"{caps.channels} channel(s) (channels=N in its device string)"
                )
            caps.array = self.cfg.array.layout()
        lo, hi = caps.freq_range_hz
        self._device_name = (caps.driver[:100], spec.args.get("serial"))
        self._calibration_key = devices.device_key(spec)
        return {
            "name": self.cfg.name,
            "location": loc.model_dump(),
            "devices": [
                {
                    "driver": caps.driver[:100],
                    "serial": spec.args.get("serial"),
                    "freq_min_hz": lo,
                    "freq_max_hz": hi,
                    "max_bandwidth_hz": caps.max_bandwidth_hz,
                    "tx": bool(caps.has_tx),
                    "channels": int(caps.channels),
                    **({"array": caps.array} if caps.array else {}),
                }
            ],
            "capabilities": {
                "max_jobs": self.cfg.max_jobs,
                "antenna_gain_dbi": gain or 0.0,
                **self._transmit_claim(),
            },
            "sync": self._sync.model_dump(exclude_none=True),
            **(
                {"heartbeat_timeout_s": self.cfg.heartbeat_timeout_s}
                if self.cfg.heartbeat_timeout_s
                else {}
            ),
        }

    def _transmit_claim(self) -> dict[str, Any]:
        """What the node claims about transmitting: exactly its node.yaml's ``transmit``."""
        tx = self.cfg.transmit
        if not tx.enabled:
            return {}
        return {
            "tx_opt_in": True,
            "tx_bands": [b.model_dump() for b in tx.bands],
            "tx_licence": tx.licence,
        }

    def _ssl_context(self) -> ssl.SSLContext | None:
        """For an https:// coordinator: its CA (``ca_file``) and, once the node has one, its
        client certificate."""
        if not self.cfg.tls:
            return None
        pem = self.identity.pem_path if self.identity.has_certificate else None
        return client_context(self.cfg.ca_file, pem, pem)

    def _http_client(self) -> httpx.Client:
        ctx = self._ssl_context()
        return httpx.Client(
            base_url=self.cfg.coordinator.rstrip("/") + "/api/v1",
            timeout=10,
            **({"verify": ctx} if ctx is not None else {}),
        )

    def _reconnect(self) -> None:
        """After a new certificate: HTTP and the channel open again with it."""
        old, self.http = self.http, self._http_client()
        old.close()
        if self.channel is not None:
            self.channel.close()

    def enroll(self) -> None:
        cred_file = self.state_dir / "credential.json"
        body = self._describe()
        if cred_file.exists():
            saved = json.loads(cred_file.read_text())
            self.node_id, self.credential = saved["node_id"], saved["credential"]
            if not self.identity.has_certificate:
                self._renew_certificate()  # enrolled without one: ask for one now
            return
        if not self.cfg.enrollment_token:
            raise ConfigError(
                "enrollment_token: required until the node has enrolled "
                f"(no credential in {cred_file})"
            )
        body["curve_public_key"] = self.curve_keys.public
        csr = self.identity.request(self.cfg.name)
        r = self._enroll_request({"token": self.cfg.enrollment_token, "csr": csr, **body})
        if r is None:
            return  # stopped while the coordinator was out of reach
        if r.status_code != 201:
            raise ConfigError(f"enrollment refused ({r.status_code}): {r.text[:300]}")
        out = r.json()
        self.node_id, self.credential = out["node_id"], out["credential"]
        if out.get("certificate"):
            cert = out["certificate"]
            self.identity.store(cert["certificate"], cert["ca_certificate"])
            self._reconnect()
        _write_private_json(cred_file, {"node_id": self.node_id, "credential": self.credential})
        if out.get("data_plane"):
            _write_private_json(self.state_dir / DATA_PLANE_FILE, out["data_plane"])
        log.info("enrolled as node %s", self.node_id)

    #: waits between enrolment attempts while the coordinator is out of reach: doubling from
    #: the first to the last, then the last
    ENROLL_RETRY_S = (1.0, 60.0)

    def _enroll_request(self, body: dict[str, Any]) -> httpx.Response | None:
        """POST /nodes/enroll until the coordinator answers (other than 5xx), waiting longer
        after each failure and saying so in one line each time; None if stopped first."""
        delay, longest = self.ENROLL_RETRY_S
        while not self._stop.is_set():
            try:
                r = self.http.post("/nodes/enroll", json=body)
            except httpx.HTTPError as exc:
                why = str(exc) or type(exc).__name__
            else:
                if r.status_code < 500:
                    return r
                why = f"{r.status_code} {r.reason_phrase}"
            log.warning(
                "cannot enroll: coordinator %s unreachable (%s); retrying in %g s",
                self.cfg.coordinator,
                why,
                delay,
            )
            self._stop.wait(delay)
            delay = min(2 * delay, longest)
        return None

    @property
    def curve_keys(self) -> KeyPair:
        """The node's own Curve key pair for the data plane, made once (its secret half stays
        in ``state_dir``, readable by this user only)."""
        if self._curve_keys is None:
            self._curve_keys, made = curve.load_or_create(self.state_dir / CURVE_KEY_FILE)
            if made:
                log.info("made this node's Curve key pair (public key %s)", self._curve_keys.public)
        return self._curve_keys

    def _data_plane(self) -> DataPlane:
        """How to reach the collector: asked of the coordinator (registering this node's
        Curve key if it holds another or none), else what it said last time; waits for the
        coordinator when it never said."""
        saved_file = self.state_dir / DATA_PLANE_FILE
        while True:
            try:
                plane = self._ask_data_plane()
            except (httpx.HTTPError, _NoAnswer) as exc:
                if saved_file.exists():
                    log.warning("coordinator unreachable (%s): data plane as it was last said", exc)
                    return DataPlane.model_validate_json(saved_file.read_text())
                log.warning("coordinator unreachable (%s); asking again for the data plane", exc)
                if self._stop.wait(self.cfg.heartbeat_interval_s):
                    raise ConfigError(
                        "stopped before the coordinator told the data plane"
                    ) from None
                continue
            _write_private_json(saved_file, plane.model_dump(mode="json"))
            return plane

    def _ask_data_plane(self) -> DataPlane:
        r = self.http.get(f"/nodes/{self.node_id}/data-plane", headers=self._auth)
        if r.status_code != 200:
            raise _NoAnswer(f"data plane: {r.status_code} {r.text[:200]}")
        plane = DataPlane.model_validate(r.json())
        if plane.security == "curve" and plane.node_public_key != self.curve_keys.public:
            r = self.http.put(
                f"/nodes/{self.node_id}/curve-key",
                json={"curve_public_key": self.curve_keys.public},
                headers=self._auth,
            )
            if r.status_code != 200:
                raise ConfigError(f"Curve key refused ({r.status_code}): {r.text[:300]}")
            plane = DataPlane.model_validate(r.json())
            log.info("registered this node's Curve public key %s", self.curve_keys.public)
        return plane

    def _configure_relay(self, plane: DataPlane) -> None:
        self.relay.max_frame_bytes = plane.max_frame_bytes
        if plane.security == "curve":
            if plane.server_public_key is None:
                raise ConfigError("the coordinator runs a Curve data plane but gave no key")
            self.relay.curve = CurveClient(plane.server_public_key, self.curve_keys)
        else:
            self.relay.curve = None
            log.warning("the coordinator's data plane is INSECURE: frames go in plaintext")

    @property
    def _auth(self) -> dict[str, str]:
        return {"X-Node-Token": self.credential or ""}

    #: how long to wait before asking again after a renewal failed
    RENEW_RETRY_S = 60.0

    def _renew_certificate(self) -> bool:
        """A new key and certificate from the coordinator (authenticated with the current
        certificate); False, logged, when it did not work (tried again later)."""
        self._renew_after = time.monotonic() + self.RENEW_RETRY_S
        body: dict[str, str] = {"csr": self.identity.request(self.cfg.name)}
        # the data-plane key is rotated with the certificate (on a Curve data plane)
        rotating = self.relay.curve
        new_keys = KeyPair.new() if rotating is not None else None
        if new_keys is not None:
            body["curve_public_key"] = new_keys.public
        try:
            r = self.http.post(f"/nodes/{self.node_id}/certificate", json=body, headers=self._auth)
        except httpx.HTTPError as exc:
            log.warning("certificate renewal: coordinator unreachable (%s)", exc)
            return False
        if r.status_code != 200:
            log.error("certificate renewal refused: %s %s", r.status_code, r.text[:300])
            return False
        out = r.json()
        self.identity.store(out["certificate"], out["ca_certificate"])
        if rotating is not None and new_keys is not None:
            # were this lost, the next start registers the key on disk again (PUT curve-key)
            curve.replace(self.state_dir / CURVE_KEY_FILE, new_keys)
            self._curve_keys = new_keys
            self.relay.rekey(CurveClient(rotating.server_public_key, new_keys))
        log.info(
            "certificate renewed (serial %s, valid until %s)%s",
            out["serial"],
            out["expires_at"],
            f", new Curve key {new_keys.public}" if new_keys is not None else "",
        )
        self._reconnect()
        return True

    def _renew_if_due(self) -> None:
        if time.monotonic() >= self._renew_after and self.identity.renewal_due():
            self._renew_certificate()

    # -- the loop ---------------------------------------------------------------------------

    def run(self) -> None:
        """Heartbeat every ``heartbeat_interval_s`` until :meth:`stop`; act on pushed
        assignments as they arrive."""
        self.enroll()
        if self.node_id is None:  # stopped before it could enrol
            self.http.close()
            return
        self._configure_relay(self._data_plane())
        self.relay.start()
        log.info(
            "node %s (%s) running; frames via %s to %s (%s)",
            self.node_id,
            self.cfg.name,
            self.relay.endpoint,
            self.cfg.collector_endpoint,
            "CurveZMQ" if self.relay.curve else "plaintext",
        )
        try:
            next_beat = time.monotonic()
            while not self._stop.is_set():
                self._wake.clear()
                if time.monotonic() >= next_beat:
                    next_beat = time.monotonic() + self.cfg.heartbeat_interval_s
                    self.step()
                elif self._pushed is not None and self._pushed is not self._applied:
                    self._apply_assignments(self._pushed)
                    self._send_reports()
                elif self._applied is not None and any(
                    f.done() for f, _ in self._compiling.values()
                ):
                    self._apply_assignments(self._applied)  # a compile is done: launch it
                    self._send_reports()
                self._wake.wait(max(0.0, next_beat - time.monotonic()))
        finally:
            for run in list(self.running.values()):
                self._terminate(run)
                self._transmission_ended(run)
            self._compiler.shutdown(wait=False, cancel_futures=True)
            if self.channel is not None:
                self.channel.close()
            self.relay.close()
            self.http.close()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def step(self) -> None:
        self._renew_if_due()
        self._probe_device()
        ok = self._heartbeat()
        self.relay.heartbeat(ok)
        if ok:
            self._poll_assignments()
        self._supervise()
        if ok:
            self._send_reports()

    def _cpu_percent(self) -> float:
        """Whole-machine CPU use since the previous heartbeat, from /proc/stat."""
        try:
            fields = [int(v) for v in open("/proc/stat").readline().split()[1:]]
        except (OSError, ValueError):
            return 0.0
        idle, total = fields[3] + (fields[4] if len(fields) > 4 else 0), sum(fields)
        prev, self._cpu = getattr(self, "_cpu", None), (idle, total)
        if prev is None or total <= prev[1]:
            return 0.0
        return round(100.0 * (1 - (idle - prev[0]) / (total - prev[1])), 1)

    def health(self) -> dict[str, Any]:
        return {
            "cpu_percent": min(100.0, max(0.0, self._cpu_percent())),
            "load_1m": round(os.getloadavg()[0], 2),
            "running_jobs": len(self.running),
            "dropped_samples": self.relay.overflow_items,
            "spooled_frames": max(0, self.relay.backlog()),
            "device_ok": self.last_error is None and self.device_error is None,
            "devices": self.device_metrics(),
            **(
                {"last_error": (self.device_error or self.last_error)[-500:]}
                if self.device_error or self.last_error
                else {}
            ),
        }

    # -- device telemetry and calibration -------------------------------------------------

    @staticmethod
    def _read_stats(run: Running) -> dict[str, Any] | None:
        try:
            doc = json.loads((run.workdir / DEVICE_STATS_FILE).read_text())
        except (OSError, ValueError):
            return None
        return doc if isinstance(doc, dict) else None

    def _fold_stats(self, run: Running) -> None:
        """A flowgraph ended: its counts join the totals, its sensor readings stay the last."""
        stats = self._read_stats(run)
        if stats is None:
            return
        totals = self._device_totals
        totals["overflows"] += int(stats.get("overflows") or 0)
        if stats.get("dropped_samples") is not None:
            totals["dropped_samples"] = (totals["dropped_samples"] or 0) + int(
                stats["dropped_samples"]
            )
        self._device_last = {
            k: stats[k]
            for k in ("temperature_c", "sync_uncertainty_s", "clock_locked")
            if stats.get(k) is not None
        }

    def device_metrics(self) -> list[dict[str, Any]]:
        """The device's metrics (:class:`drift.protocol.DeviceMetrics`): the running
        flowgraphs' source writes them into their job directories (read here, nothing
        touches the device); counts add up over the flowgraphs since the agent started; while
        no flowgraph runs, the sensors' last readings stand and there is no sample rate."""
        if self._device_name is None:
            return []
        driver, serial = self._device_name
        overflows = self._device_totals["overflows"]
        dropped = self._device_totals["dropped_samples"]
        out: dict[str, Any] = {"driver": driver, **({"serial": serial} if serial else {})}
        out.update(self._device_last)
        rate = 0.0
        for run in self.running.values():
            stats = self._read_stats(run)
            if stats is None:
                continue  # not streaming yet
            overflows += int(stats.get("overflows") or 0)
            if stats.get("dropped_samples") is not None:
                dropped = (dropped or 0) + int(stats["dropped_samples"])
            if run.frames_upto is None and run.proc.poll() is None:
                rate = max(rate, float(stats.get("sample_rate_hz") or 0.0))
            out.update(
                {
                    k: stats[k]
                    for k in ("temperature_c", "sync_uncertainty_s", "clock_locked")
                    if stats.get(k) is not None
                }
            )
        out["overflows"] = overflows
        if dropped is not None:
            out["dropped_samples"] = dropped
        if rate > 0:
            out["sample_rate_hz"] = rate
        return [_within_protocol(DeviceMetrics, out)]

    def calibration(self) -> list[dict[str, Any]]:
        """The device's calibration record as ``drift calibrate`` stored it (in the device
        layer's calibration store, ``$DRIFT_DATA_DIR/calibration``, the one its flowgraphs
        apply), expired or not: the coordinator shows its age and validity."""
        from gnuradio.drift.devices.calibration import CalibrationStore

        if self._device_name is None:
            return []
        key = self._calibration_key
        try:
            record = None if key is None else CalibrationStore().load(key, expired=True)
        except (OSError, ValueError, TypeError) as exc:
            log.warning("calibration record of %s unreadable: %s", key, exc)
            return []
        if record is None or not record.created:
            return []
        driver, serial = self._device_name

        def when(text: str) -> dt.datetime:
            t = dt.datetime.fromisoformat(text)
            return t if t.tzinfo else t.replace(tzinfo=dt.UTC)

        def aware(text: str) -> str:
            return when(text).isoformat()

        accepted = [
            when(h["time"])
            for h in record.history
            if isinstance(h, dict) and h.get("accepted", True) and h.get("time")
        ]
        measured = max(accepted).isoformat() if accepted else None
        doc = _within_protocol(
            DeviceCalibration,
            {
                "driver": driver,
                **({"serial": serial} if serial else {}),
                "lo_error_ppm": record.lo_error_ppm,
                "gain_points": [list(p) for p in record.gain_points][:64],
                "created": aware(record.created),
                **({"measured": measured} if measured else {}),
                **({"valid_until": aware(record.valid_until)} if record.valid_until else {}),
                **({"array": _array_doc(record.array, aware)} if record.array else {}),
            },
        )
        return [doc] if doc else []

    def _calibration_due(self) -> list[dict[str, Any]] | None:
        """The calibration to send with this heartbeat: when it changed since it was last
        sent, and every CALIBRATION_RESEND_S; None otherwise."""
        records = self.calibration()
        sent = self._calibration_sent
        if (
            sent is not None
            and sent[0] == records
            and time.monotonic() - sent[1] < CALIBRATION_RESEND_S
        ):
            return None
        return records

    def _device_lost(self, why: str) -> None:
        if self.device_error is None:
            log.error("%s; checking for it every %g s", why, self.cfg.device_probe_interval_s)
        self.device_error = why
        self._probe_at = time.monotonic() + self.cfg.device_probe_interval_s

    def _probe_device(self) -> None:
        """While the device is lost: is it back? (the device layer finds and opens it)"""
        if self.device_error is None or time.monotonic() < self._probe_at:
            return
        from gnuradio.drift import devices

        self._probe_at = time.monotonic() + self.cfg.device_probe_interval_s
        try:
            devices.capabilities(devices.parse_device(self.cfg.device))
        except Exception as exc:  # any failure to find it: still gone
            log.debug("device still lost: %s", exc)
            return
        log.info("device %s is back", self.cfg.device)
        self.device_error = None
        # work the device lost that is still this node's (nobody took it over) runs again
        self.finished -= self._lost_runs
        self._lost_runs.clear()

    # -- the coordinator: the node channel, or HTTP while it is down ------------------------

    #: how long to wait before trying to open the channel again after it failed
    CHANNEL_RETRY_S = 10.0

    def _pushed_assignments(self, assignments: list[dict[str, Any]]) -> None:
        """Called from the channel's reader thread."""
        self._pushed = assignments
        self._wake.set()

    def _open_channel(self) -> ChannelClient | None:
        if self.channel is not None and not self.channel.open:
            log.info("node channel down (%s); heartbeats go over HTTP", self.channel.closed_reason)
            self.channel.close()
            self.channel = None
            self._pushed = None
            self._channel_retry_at = time.monotonic() + self.CHANNEL_RETRY_S
        if self.cfg.channel and self.channel is None and time.monotonic() >= self._channel_retry_at:
            client = ChannelClient(
                channel_url(self.cfg.coordinator, self.node_id),
                self.credential or "",
                self._pushed_assignments,
                ssl_context=self._ssl_context(),
            )
            try:
                client.connect()
            except ChannelError as exc:
                log.debug("%s", exc)
                self._channel_retry_at = time.monotonic() + self.CHANNEL_RETRY_S
                return None
            log.info("node channel open: %s", client.url)
            self.channel = client
        return self.channel

    def _heartbeat(self) -> bool:
        body: dict[str, Any] = {"health": self.health()}
        if self._sync:
            body["sync"] = self._sync.model_dump(exclude_none=True)
        calibration = self._calibration_due()
        if calibration:
            body["calibration"] = calibration
        ok = self._send_heartbeat(body)
        if ok and calibration is not None:
            self._calibration_sent = (calibration, time.monotonic())
        return ok

    def _send_heartbeat(self, body: dict[str, Any]) -> bool:
        channel = self._open_channel()
        if channel is not None:
            try:
                channel.heartbeat(body)
                return self._reachable(True)
            except ChannelError as exc:
                log.info("node channel: %s; trying HTTP", exc)
                channel.close()
        try:
            r = self.http.post(f"/nodes/{self.node_id}/heartbeat", json=body, headers=self._auth)
        except httpx.HTTPError as exc:
            if self.coordinator_ok:
                log.warning("coordinator unreachable (%s); jobs keep running, frames spool", exc)
            return self._reachable(False)
        if r.status_code != 200:
            refusal = f"heartbeat refused: {r.status_code} {r.text[:200]}"
            # said once at the level it deserves, not at every beat
            if refusal != self._last_refusal:
                log.log(logging.ERROR if r.status_code in (401, 403) else logging.WARNING, refusal)
                self._last_refusal = refusal
            return self._reachable(False)
        self._last_refusal = None
        return self._reachable(True)

    def _reachable(self, ok: bool) -> bool:
        if ok and not self.coordinator_ok:
            log.info("coordinator reachable")
        self.coordinator_ok = ok
        return ok

    def _poll_assignments(self) -> None:
        """Act on the assignment list: the one the channel pushed last, else read it over
        HTTP."""
        if self.channel is not None and self.channel.open and self._pushed is not None:
            self._apply_assignments(self._pushed)
            return
        try:
            r = self.http.get(f"/nodes/{self.node_id}/assignments", headers=self._auth)
        except httpx.HTTPError:
            return
        if r.status_code != 200:
            log.warning("assignments: %s %s", r.status_code, r.text[:200])
            return
        self._apply_assignments(r.json())

    def _apply_assignments(self, assignments: list[dict[str, Any]]) -> None:
        """Stop what is no longer in the list (cancelled or moved), start what is new."""
        self._applied = assignments
        current = {a["id"]: a for a in assignments}
        for kept in (self._prepared, self._compiling):
            for key in [k for k in kept if k[0] not in current]:
                del kept[key]  # cancelled or moved before its start
        for aid, run in list(self.running.items()):
            if aid not in current and run.frames_upto is None and not run.stopping:
                log.info("assignment %s was cancelled or moved: stopping its flowgraph", aid)
                self._terminate(run)
                run.stopping = True
        for aid, a in current.items():
            if aid in self.running or (aid, a.get("attempts", 0)) in self.finished:
                continue
            if len(self.running) >= self.cfg.max_jobs:
                break
            self._start(a)

    def _start(self, a: dict[str, Any]) -> None:
        aid, params = a["id"], a["parameters"]
        workdir = self.state_dir / "jobs" / aid
        workdir.mkdir(parents=True, exist_ok=True)
        start_time = a.get("start_time")
        if isinstance(start_time, str):
            start_time = dt.datetime.fromisoformat(start_time).timestamp()
        ctx = compiler.NodeContext(
            device_args=self.cfg.device,
            job_id=a["job_id"],
            node_id=self.node_id,
            frames_to=self.relay.endpoint,
            workdir=str(workdir),
            time_uncertainty_s=(
                self._sync.uncertainty_s if self._sync and self._sync.uncertainty_s else 1e-3
            ),
            start_time=start_time,
        )
        # compiled at once, also for a timed start still far off: a compile error is reported
        # before the start, and grcc (seconds, the first time) does not eat into the launch
        if a["job_type"] == "custom_flowgraph" and self.cfg.custom_flowgraphs == "refuse":
            why = "this node refuses custom flowgraphs (custom_flowgraphs: refuse in its node.yaml)"
            log.warning("assignment %s: %s", aid, why)
            self.finished.add((aid, a.get("attempts", 0)))
            self.reports.append(Report(aid, "failed", f"refused: {why}"))
            return
        key = (aid, int(a.get("attempts", 0)), start_time)
        for kept in (self._prepared, self._compiling):
            for old in [k for k in kept if k[0] == aid and k != key]:
                del kept[old]  # an earlier attempt, or another start
        prepared = self._prepared.get(key)
        if prepared is None:
            compiling = self._compiling.get(key)
            if compiling is None:
                try:
                    template = None
                    if a["job_type"] == "custom_flowgraph":
                        template = self._fetch_template(
                            params["template_id"], params.get("template_sha256")
                        )
                    transmission = self._transmission(a, template)
                    if transmission is not None:
                        why = self.cfg.transmit.allows(
                            transmission["center_hz"],
                            transmission["bandwidth_hz"],
                            transmission["power_dbm"],
                        )
                        if why is not None:
                            self._refuse(a, why)
                            return
                except _Refused as exc:
                    self._refuse(a, str(exc))
                    return
                except (compiler.CompileError, ValueError) as exc:
                    self._compile_failed(a, exc)
                    return
                # compiled on a thread of its own (opening the device to read its
                # capabilities, grcc the first time: seconds on a busy machine), so the
                # heartbeats go on; the loop is woken to launch it when it is done
                fut = self._compiler.submit(self._compile, a, params, ctx, template)
                fut.add_done_callback(lambda _f: self._wake.set())
                compiling = self._compiling[key] = (fut, transmission)
            fut, transmission = compiling
            if not fut.done():
                return
            del self._compiling[key]
            try:
                prepared = self._prepared[key] = (fut.result(), transmission)
            except (compiler.CompileError, ValueError) as exc:
                self._compile_failed(a, exc)
                return
        cmd, transmission = prepared
        if start_time is not None:
            # launch ahead of the start: the flowgraph finds the start in its own stream
            wait = start_time - self.cfg.capture_prestart_s - time.time()
            if wait > self.cfg.heartbeat_interval_s:
                return  # not yet: keep heartbeating, start on a later round
            if wait > 0:
                self._stop.wait(wait)
        del self._prepared[key]
        (workdir / "command.json").write_text(json.dumps(cmd.argv))
        (workdir / DEVICE_STATS_FILE).unlink(missing_ok=True)  # an earlier attempt's
        out = open(workdir / "stdout.log", "wb")
        err = open(workdir / "stderr.log", "wb")
        proc = subprocess.Popen(
            cmd.argv,
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
            cwd=workdir,
            preexec_fn=_die_with_parent,
            env={
                **os.environ,
                "PYTHONUNBUFFERED": "1",
                "DRIFT_DEVICE_STATS": str(workdir / DEVICE_STATS_FILE),
            },
        )
        out.close()
        err.close()
        (workdir / "pid").write_text(str(proc.pid))
        duration = float(params.get("duration_s") or 3600)
        if start_time is not None:
            duration += max(0.0, start_time - time.time())
        run = self.running[aid] = Running(
            aid,
            a["job_id"],
            a["job_type"],
            proc,
            workdir,
            time.monotonic() + duration + self.cfg.grace_s,
            attempt=a.get("attempts", 0),
        )
        if transmission is not None:
            self._transmitting(run, transmission, start_time, float(params["duration_s"]))
        log.info(
            "assignment %s (%s job %s) started: pid %d", aid, a["job_type"], a["job_id"], proc.pid
        )
        self.reports.append(Report(aid, "running"))

    # -- transmitting -----------------------------------------------------------------------

    def _transmission(
        self, a: dict[str, Any], template: compiler.Template | None
    ) -> dict[str, Any] | None:
        """What an assignment would transmit (band and power), or None when it only
        receives: the transmitter of a job type that transmits, or an uploaded template with
        a transmitting block. Raises :class:`_Refused` when it transmits but does not say at
        what power."""
        params = a["parameters"]
        if template is not None:
            blocks = compiler.transmitting_blocks(template.content, template.path.name)
            if not blocks:
                return None
            values = params.get("parameters") or {}
            power = values.get("tx_power_dbm")
            if not isinstance(power, int | float) or isinstance(power, bool):
                raise _Refused(
                    f"the template transmits ({', '.join(blocks)}) without a "
                    "tx_power_dbm parameter: its power cannot be checked against this node's "
                    "licence"
                )
            low, high = float(params["start_freq_hz"]), float(params["stop_freq_hz"])
            return {
                "center_hz": (low + high) / 2,
                "bandwidth_hz": high - low,
                "power_dbm": float(power),
            }
        if a.get("role") != "transmitter":
            return None
        return {
            "center_hz": float(params["freq_hz"]),
            "bandwidth_hz": float(params.get("bandwidth_hz") or 0.0),
            "power_dbm": float(params["tx_power_dbm"]),
        }

    @staticmethod
    def _compile(
        a: dict[str, Any], params: dict[str, Any], ctx: compiler.NodeContext, template
    ) -> compiler.Command:
        if template is not None:
            return compiler.compile_job(
                a["job_type"], params.get("parameters") or {}, ctx, template=template
            )
        return compiler.compile_job(a["job_type"], params, ctx, role=a.get("role"))

    def _compile_failed(self, a: dict[str, Any], exc: Exception) -> None:
        log.error("assignment %s: %s", a["id"], exc)
        self.finished.add((a["id"], a.get("attempts", 0)))
        self.reports.append(Report(a["id"], "failed", f"could not compile the flowgraph: {exc}"))

    def _refuse(self, a: dict[str, Any], why: str) -> None:
        log.warning("assignment %s: refused: %s", a["id"], why)
        self.finished.add((a["id"], a.get("attempts", 0)))
        self.reports.append(Report(a["id"], "failed", f"refused: {why}"))

    def _log_transmission(self, entry: dict[str, Any]) -> None:
        path = self.state_dir / TRANSMISSIONS_FILE
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "a") as f:
            f.write(json.dumps(entry) + "\n")

    def _transmitting(
        self, run: Running, tx: dict[str, Any], start_time: float | None, duration_s: float
    ) -> None:
        """Log the transmission and arm its watchdog: a timer of its own (not the agent's
        loop, which may be waiting on an unreachable coordinator) that stops the flowgraph
        at the job's end, SIGTERM and then SIGKILL, whatever the flowgraph is doing."""
        start = time.time() if start_time is None else float(start_time)
        end = start + duration_s
        run.transmission = {
            **tx,
            "licence": self.cfg.transmit.licence,
            "job_id": run.job_id,
            "assignment_id": run.assignment_id,
            "planned_start": start,
            "planned_end": end,
            "launched": time.time(),
        }
        self._log_transmission({"event": "start", **run.transmission})
        log.info(
            "assignment %s transmits %g dBm at %g MHz (%g kHz) from %s to %s",
            run.assignment_id,
            tx["power_dbm"],
            tx["center_hz"] / 1e6,
            tx["bandwidth_hz"] / 1e3,
            dt.datetime.fromtimestamp(start, dt.UTC).isoformat(),
            dt.datetime.fromtimestamp(end, dt.UTC).isoformat(),
        )

        def stop() -> None:
            if run.proc.poll() is not None:
                return
            log.warning(
                "assignment %s: the job's transmission ends now; stopping its flowgraph",
                run.assignment_id,
            )
            run.transmission["stopped_by"] = "watchdog"
            run.proc.send_signal(signal.SIGTERM)
            try:
                run.proc.wait(TX_KILL_AFTER_S)
            except subprocess.TimeoutExpired:
                run.transmission["stopped_by"] = "watchdog (killed)"
                run.proc.kill()
                run.proc.wait(5)
            self._transmission_ended(run)  # logged now, whatever the agent's loop is doing

        run.watchdog = threading.Timer(max(0.0, end + TX_WATCHDOG_MARGIN_S - time.time()), stop)
        run.watchdog.daemon = True
        run.watchdog.start()

    @staticmethod
    def _ended_on_time(run: Running) -> bool:
        """A transmitter the watchdog stopped at the job's end did its part: it transmitted
        for the job's window (the transmission record says how it ended)."""
        tx = run.transmission
        return tx is not None and str(tx.get("stopped_by", "")).startswith("watchdog")

    def _transmission_ended(self, run: Running) -> dict[str, Any] | None:
        """Log a transmission's end, once (from the agent's loop or the watchdog)."""
        if run.transmission is None:
            return None
        tx = run.transmission
        with self._tx_lock:
            if "ended" in tx:
                return tx
            if run.watchdog is not None and run.watchdog is not threading.current_thread():
                run.watchdog.cancel()
            tx.setdefault("stopped_by", "flowgraph")
            tx["ended"] = time.time()
            tx["exit_status"] = run.proc.returncode
            self._log_transmission({"event": "end", **tx})
        return tx

    def _fetch_template(self, template_id: str, approved_sha256: str | None) -> compiler.Template:
        """An approved uploaded template from the coordinator: the bytes compiled and run are
        those whose SHA-256 the job was accepted with (the approved content); anything else
        is refused before grcc sees it."""
        try:
            r = self.http.get(f"/nodes/{self.node_id}/flowgraphs/{template_id}", headers=self._auth)
        except httpx.HTTPError as exc:
            raise compiler.CompileError(f"cannot fetch template {template_id}: {exc}") from None
        if r.status_code != 200:
            raise compiler.CompileError(f"template {template_id}: {r.status_code} {r.text[:200]}")
        doc = r.json()
        content = doc["content"].encode("utf-8")
        expected = approved_sha256 or doc["sha256"]
        if hashlib.sha256(content).hexdigest() != expected:
            raise compiler.CompileError(
                f"template {template_id}: its content is not the approved content "
                f"(SHA-256 {expected})"
            )
        return compiler.parse_template(content, doc["name"])

    def _terminate(self, run: Running) -> None:
        if run.proc.poll() is None:
            run.proc.send_signal(signal.SIGTERM)
            try:
                run.proc.wait(10)
            except subprocess.TimeoutExpired:
                run.proc.kill()
                run.proc.wait(5)

    def _supervise(self) -> None:
        now = time.monotonic()
        for aid, run in list(self.running.items()):
            if run.frames_upto is None:
                rc = run.proc.poll()
                if rc is None and now > run.deadline:
                    log.info("assignment %s: past its duration, stopping the flowgraph", aid)
                    self._terminate(run)
                    rc = run.proc.returncode
                if rc is None:
                    continue
                run.returncode = rc
                self._transmission_ended(run)
                if run.stopping:  # cancelled or moved: nothing to report
                    self._fold_stats(run)
                    del self.running[aid]
                    self.finished.add((aid, run.attempt))
                    continue
                # frames still on their way from the flowgraph land in the spool first
                time.sleep(0.2)
                run.frames_upto = self.relay.last_id
            lost = _device_lost(run.workdir)
            if lost:
                # the stream ended because the device went away: whatever the exit status,
                # the work is not done, and not to be retried here
                self._device_lost(lost)
                self._lost_runs.add((aid, run.attempt))
                self.reports.append(
                    Report(aid, "failed", lost, device_lost=True, transmission=run.transmission)
                )
            elif run.returncode != 0 and not self._ended_on_time(run):
                err = _stderr_tail(run.workdir / "stderr.log") or f"exit status {run.returncode}"
                self.last_error = err
                self.reports.append(
                    Report(aid, "failed", f"flowgraph failed: {err}", transmission=run.transmission)
                )
            elif self.relay.delivered(run.frames_upto):
                self.last_error = None
                self.reports.append(
                    Report(
                        aid,
                        "completed",
                        frames=self.relay.frames_sent(run.job_id),
                        transmission=run.transmission,
                    )
                )
            else:
                continue  # report completed once its frames have reached the collector
            log.info("assignment %s finished (exit %s)", aid, run.returncode)
            self._fold_stats(run)
            del self.running[aid]
            self.finished.add((aid, run.attempt))

    def _send_reports(self) -> None:
        keep = []
        for rep in self.reports:
            body = {
                "state": rep.state,
                **({"error": rep.error} if rep.error else {}),
                **({"frames": rep.frames} if rep.frames else {}),
                **({"device_lost": True} if rep.device_lost else {}),
                **({"transmission": _reported(rep.transmission)} if rep.transmission else {}),
            }
            try:
                r = self.http.post(
                    f"/nodes/{self.node_id}/assignments/{rep.assignment_id}/report",
                    json=body,
                    headers=self._auth,
                )
            except httpx.HTTPError:
                keep.append(rep)
                continue
            if r.status_code >= 500:
                rep.tries += 1
                keep.append(rep)
            elif r.status_code != 200:
                log.info(
                    "report %s %s not taken: %s %s",
                    rep.assignment_id,
                    rep.state,
                    r.status_code,
                    r.text[:200],
                )
        self.reports = keep
