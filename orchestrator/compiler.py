"""The job compiler: a job's parameters -> a flowgraph's parameter values -> a command line.

Every job runs as a ``.grc`` template from ``flowgraphs/``. The template's GRC ``parameter``
blocks are its interface: :func:`flowgraph_parameters` reads them (name, type, default), ``grcc``
turns the template into a Python program whose command-line options are exactly those parameters,
and :func:`compile_grc` caches that program by the SHA-256 of the ``.grc`` content, so a template
is compiled once per content however many jobs use it.

Where each parameter's value comes from is declared once, by a :class:`Binding`: a job field
of the same name maps by itself; ``context`` names what the node supplies (device, ids, where
frames go); ``derive`` computes values that depend on the device (an FFT size from the bin width
and the device's sample rate). Each job type in :mod:`drift.orchestrator.registry` holds its
binding (:data:`SPECTRUM_SCAN`, :data:`DIRECTION_FINDING` here; an uploaded template gets
:func:`uploaded_binding`), and :func:`compile_job` reads it from there. :meth:`Binding.values`
checks that every parameter of the template gets a value and that nothing is left over, so a
template and its binding cannot drift apart silently.
"""

from __future__ import annotations

import ast
import dataclasses
import fcntl
import hashlib
import math
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

#: ``flowgraphs/`` of this checkout (the templates the built-in job types run).
FLOWGRAPHS_DIR = Path(__file__).resolve().parent.parent / "flowgraphs"

#: GRC parameter types and how their values are checked and written on a command line.
_TYPES: dict[str, Callable[[Any], Any]] = {
    "eng_float": float,
    "real": float,
    "float": float,
    "intx": int,
    "int": int,
    "long": int,
    "str": str,
    "string": str,
    "": str,
}


class CompileError(ValueError):
    """A template or a job that cannot become a runnable flowgraph; the message says why."""


@dataclass(frozen=True)
class FlowgraphParameter:
    name: str
    type: str
    default: Any
    label: str

    def convert(self, value: Any) -> Any:
        conv = _TYPES.get(self.type)
        if conv is None:
            raise CompileError(f"parameter {self.name}: unsupported GRC type {self.type!r}")
        try:
            out = conv(value)
        except (TypeError, ValueError) as exc:
            raise CompileError(
                f"parameter {self.name}: {value!r} is not a valid {self.type}"
            ) from exc
        if isinstance(out, float) and not math.isfinite(out):
            raise CompileError(f"parameter {self.name}: {value!r} is not finite")
        return out

    @property
    def option(self) -> str:
        """The command-line option ``grcc`` generates for it."""
        return "--" + self.name.replace("_", "-")


@dataclass(frozen=True)
class Template:
    """A parsed ``.grc`` file: its id, content hash and parameters."""

    path: Path
    id: str
    sha256: str
    parameters: Mapping[str, FlowgraphParameter]
    content: bytes = field(repr=False, default=b"")


def _default(value: Any, type_: str) -> Any:
    if type_ in ("str", "string", ""):
        return value
    try:
        return _TYPES.get(type_, str)(value)
    except (TypeError, ValueError):
        return value  # an expression; grcc evaluates it


#: the longest piece of a template's content an error message repeats
_ECHO_CHARS = 80


def _echo(value: Any) -> str:
    """A value for an error message: its repr, cut short (a message never grows with the
    upload)."""
    text = repr(value) if isinstance(value, str) else repr(type(value).__name__)
    return text if len(text) <= _ECHO_CHARS else text[: _ECHO_CHARS - 3] + "..."


class _GrcLoader(yaml.SafeLoader):
    """YAML as GRC writes it: plain data, no aliases. An alias can make a document of a few
    hundred bytes expand into gigabytes once anything walks or prints it (a "billion laughs"
    bomb); GRC never writes one, so a template with an alias is refused where it appears."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(
                None, None, "YAML aliases are not allowed in a flowgraph", event.start_mark
            )
        return super().compose_node(parent, index)


def load_grc_yaml(content: bytes | str, path: Path | str = "<upload>") -> Any:
    """The data of a ``.grc`` file, parsed safely (plain types, no aliases)."""
    try:
        return yaml.load(content, Loader=_GrcLoader)  # noqa: S506 (a SafeLoader)
    except yaml.YAMLError as exc:
        message = str(exc)
        if len(message) > 300:
            message = message[:297] + "..."
        raise CompileError(f"{path}: not a GRC file (YAML error: {message})") from None


def block_enabled(block: Mapping[str, Any]) -> bool:
    """Whether GRC generates code for a block (its state is not ``disabled``)."""
    states = block.get("states")
    state = states.get("state", True) if isinstance(states, Mapping) else True
    return state not in (False, "disabled")


def parse_template(content: bytes, path: Path | str = "<upload>") -> Template:
    """Parse ``.grc`` content (never executing it): id, hash, parameter blocks."""
    path = Path(path)
    doc = load_grc_yaml(content, path)
    if (
        not isinstance(doc, dict)
        or not isinstance(doc.get("blocks"), list)
        or not isinstance(doc.get("options"), dict)
    ):
        raise CompileError(f"{path}: not a GRC flowgraph (needs 'options' and 'blocks')")
    opts = doc["options"].get("parameters") or {}
    if not isinstance(opts, dict):
        raise CompileError(f"{path}: options parameters must be a mapping")
    fg_id = opts.get("id") or ""
    if not isinstance(fg_id, str) or not fg_id.isidentifier():
        raise CompileError(f"{path}: options id {_echo(fg_id)} is not a Python identifier")
    if opts.get("generate_options", "no_gui") != "no_gui":
        raise CompileError(
            f"{path}: generate_options is {_echo(opts.get('generate_options'))}; "
            "jobs run without a display, so it must be no_gui"
        )
    if opts.get("output_language", "python") != "python":
        raise CompileError(f"{path}: output_language must be python")
    params: dict[str, FlowgraphParameter] = {}
    for block in doc["blocks"]:
        if not isinstance(block, dict) or block.get("id") != "parameter":
            continue
        if not block_enabled(block):
            continue
        p = block.get("parameters") or {}
        if not isinstance(p, dict):
            raise CompileError(f"{path}: a parameter block's parameters must be a mapping")
        name = block.get("name", "")
        if not isinstance(name, str) or not name.isidentifier():
            raise CompileError(f"{path}: parameter block name {_echo(name)} is not an identifier")
        type_ = p.get("type", "") or ""
        if not isinstance(type_, str) or type_ not in _TYPES:
            raise CompileError(f"{path}: parameter {name}: unsupported GRC type {_echo(type_)}")
        params[name] = FlowgraphParameter(
            name, type_, _default(p.get("value"), type_), str(p.get("label") or name)
        )
    return Template(path, fg_id, hashlib.sha256(content).hexdigest(), params, content)


def load_template(name_or_path: str | Path) -> Template:
    """A built-in template by name (``spectrum_scan``) or a ``.grc`` path."""
    path = Path(name_or_path)
    if path.suffix != ".grc":
        path = FLOWGRAPHS_DIR / f"{name_or_path}.grc"
    try:
        content = path.read_bytes()
    except OSError as exc:
        raise CompileError(f"flowgraph template {path}: {exc.strerror}") from None
    return parse_template(content, path)


def cache_dir() -> Path:
    base = os.environ.get("DRIFT_FLOWGRAPH_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "drift", "flowgraphs"
    )
    return Path(base)


_BLOCKS_FINGERPRINT: str | None = None


def blocks_fingerprint() -> str:
    """A hash of what ``grcc`` makes code from besides the template: GNU Radio's version and
    every DRIFT block definition (``drift_*.block.yml``) on GRC's block paths. Computed once
    per process."""
    global _BLOCKS_FINGERPRINT
    if _BLOCKS_FINGERPRINT is None:
        from gnuradio import gr

        prefs = gr.prefs()
        paths = [
            *os.environ.get("GRC_BLOCKS_PATH", "").split(os.pathsep),
            *prefs.get_string("grc", "local_blocks_path", "").split(os.pathsep),
            *prefs.get_string("grc", "global_blocks_path", "").split(os.pathsep),
        ]
        digest = hashlib.sha256(gr.version().encode())
        for folder in dict.fromkeys(p for p in paths if p):
            for yml in sorted(Path(folder).glob("drift_*.block.yml")):
                digest.update(yml.name.encode() + b"\0" + yml.read_bytes())
        _BLOCKS_FINGERPRINT = digest.hexdigest()
    return _BLOCKS_FINGERPRINT


def compile_grc(template: Template, cache: Path | None = None, timeout_s: float = 120) -> Path:
    """The Python program for a template, from the cache or compiled now with ``grcc``.

    Keyed by the template's content hash and :func:`blocks_fingerprint` (a changed block
    definition makes different code from the same template); concurrent compiles of one
    template (several node agents on one machine) wait for each other on a lock file, and a
    half-written result is never visible.
    """
    cache = cache or cache_dir()
    key = hashlib.sha256(f"{template.sha256}:{blocks_fingerprint()}".encode()).hexdigest()
    target = cache / key / f"{template.id}.py"
    if target.exists():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / f".{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if target.exists():
            return target
        work = Path(tempfile.mkdtemp(prefix=".grcc-", dir=cache))
        try:
            grc = work / f"{template.id}.grc"
            grc.write_bytes(template.content)
            grcc = shutil.which("grcc") or "/usr/bin/grcc"
            proc = subprocess.run(
                [grcc, "-o", str(work), str(grc)], capture_output=True, text=True, timeout=timeout_s
            )
            produced = work / f"{template.id}.py"
            if proc.returncode != 0 or not produced.exists():
                tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
                raise CompileError(f"grcc could not compile {template.path}: " + " | ".join(tail))
            grc.unlink()
            os.replace(work, cache / key)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return target


# --- bindings: where every flowgraph parameter's value comes from ---------------------------


@dataclass(frozen=True)
class NodeContext:
    """What the node supplies to every job it runs."""

    device_args: str
    job_id: str
    node_id: str
    #: ZeroMQ endpoint the flowgraph's frame sink connects to (the node agent's relay)
    frames_to: str
    #: working directory of this assignment (local outputs)
    workdir: str
    time_uncertainty_s: float = 1e-3
    #: absolute start (UNIX s) for flowgraphs that start on time; None: now
    start_time: float | None = None
    #: SHA-256 of the template being run (set by compile_job; frames carry it)
    flowgraph_hash: str = ""


Derive = Callable[[Mapping[str, Any], NodeContext], Mapping[str, Any]]


@dataclass(frozen=True)
class Binding:
    """How one job type's parameters become one template's parameter values."""

    template: str
    #: flowgraph parameters taken from the node context, by attribute name
    context: frozenset[str] = frozenset()
    #: flowgraph parameters renamed from a job field: {flowgraph parameter: job field}
    rename: Mapping[str, str] = field(default_factory=dict)
    #: computes further parameters from the job and the node (device-dependent values)
    derive: Derive | None = None
    #: job fields that are not flowgraph parameters (the coordinator uses them)
    coordinator_only: frozenset[str] = frozenset()
    #: parameters nothing supplies keep the template's default (uploaded templates)
    defaults_allowed: bool = False
    #: a node in one of these roles runs that binding instead (a transmitter's template)
    roles: Mapping[str, Binding] = field(default_factory=dict)
    #: a job type whose jobs run one of several templates (by a job field): the binding of
    #: this job; None: this binding itself
    select: Callable[[Mapping[str, Any]], Binding] | None = None

    def for_job(self, job: Mapping[str, Any]) -> Binding:
        """The binding a job of this type runs with (see ``select``)."""
        return self if self.select is None else self.select(job)

    def values(
        self, template: Template, job: Mapping[str, Any], ctx: NodeContext
    ) -> dict[str, Any]:
        """Every parameter of the template, converted to its GRC type."""
        out: dict[str, Any] = {}
        for name in template.parameters:
            if name in self.context:
                out[name] = getattr(ctx, name)
            elif name in self.rename and self.rename[name] in job:
                out[name] = job[self.rename[name]]
            elif name in job:
                out[name] = job[name]
        if self.derive is not None:
            out.update(self.derive(job, ctx))
        unknown = set(out) - set(template.parameters)
        if unknown:
            raise CompileError(f"{template.path}: no parameter block for {sorted(unknown)}")
        missing = set(template.parameters) - set(out)
        if missing and not self.defaults_allowed:
            raise CompileError(f"{template.path}: nothing supplies {sorted(missing)}")
        unused = (
            set(job)
            - set(out)
            - set(self.rename.values())
            - self.coordinator_only
            - self._derived_inputs
        )
        if unused:
            raise CompileError(f"job fields {sorted(unused)} reach no flowgraph parameter")
        return {k: template.parameters[k].convert(v) for k, v in out.items() if v is not None}

    @property
    def _derived_inputs(self) -> frozenset[str]:
        return getattr(self.derive, "inputs", frozenset())


def _derives(*inputs: str):
    """Mark a derive function with the job fields it consumes."""

    def mark(fn):
        fn.inputs = frozenset(inputs)
        return fn

    return mark


@_derives("bin_hz", "interval_s", "duration_s", "gain_db", "start_freq_hz", "stop_freq_hz")
def _scan_plan(job: Mapping[str, Any], ctx: NodeContext) -> dict[str, Any]:
    """FFT size, averages, sample rate and sweep count from the job and this node's device."""
    from gnuradio.drift import devices

    from drift.scan import ScanConfig, build_plan

    spec = devices.parse_device(ctx.device_args)
    caps = devices.capabilities(spec)
    cfg = ScanConfig(
        device=ctx.device_args,
        start_hz=job["start_freq_hz"],
        stop_hz=job["stop_freq_hz"],
        bin_hz=job["bin_hz"],
        interval_s=job.get("interval_s", 1.0),
        duration_s=job["duration_s"],
        gain_db=job.get("gain_db"),
    )
    plan = build_plan(cfg, caps)
    sweeps = max(1, int(math.floor(job["duration_s"] / cfg.interval_s + 1e-9)))
    return {
        "samp_rate_hz": plan.samp_rate_hz,
        "fft_size": plan.fft_size,
        "n_avg": plan.n_avg,
        "settle_s": plan.settle_samples / plan.samp_rate_hz,
        "sweeps": sweeps,
        "cal_offset_db": caps.cal_offset_db,
        "output": os.path.join(ctx.workdir, "psd.f32"),
        "gain_db": -1.0 if job.get("gain_db") is None else job["gain_db"],
        "device_args": _timed(ctx),
    }


@_derives("duration_s", "samp_rate_hz", "gain_db", "snippet")
def _iq_plan(job: Mapping[str, Any], ctx: NodeContext) -> dict[str, Any]:
    """Samples to capture from the duration, from the assignment's start time (at once when
    it has none); the device's default gain unless one is given."""
    from gnuradio.drift import devices

    gain = job.get("gain_db")
    caps = devices.capabilities(devices.parse_device(ctx.device_args))
    return {
        "n_samples": int(round(job["duration_s"] * job["samp_rate_hz"])),
        "samp_rate_hz": job["samp_rate_hz"],
        "snippet": int(job.get("snippet") or 65536),
        "gain_db": -1.0 if gain is None else gain,
        "start_time": 0.0 if ctx.start_time is None else float(ctx.start_time),
        "cal_offset_db": caps.cal_offset_db,
        "output": os.path.join(ctx.workdir, "iq.cf32"),
        "device_args": _timed(ctx),
    }


@_derives("bandwidth_hz", "duration_s", "center_freq_hz", "reference")
def _df_capture(job: Mapping[str, Any], ctx: NodeContext) -> dict[str, Any]:
    """A direction-finding job captures IQ from the job's common start: the band that holds
    the emitter (and the reference transmitter, when the job names one), at the device's
    lowest rate that holds it with a margin for the filters' roll-off."""
    from gnuradio.drift import devices

    from drift.orchestrator.jobs import CAPTURE_MARGIN, DirectionFindingJob

    spec = DirectionFindingJob.model_validate({**job, "type": "direction_finding"})
    center, width = spec.capture_band_hz
    caps = devices.capabilities(devices.parse_device(ctx.device_args))
    if width > caps.max_bandwidth_hz:
        raise CompileError(
            f"the capture band, {width:g} Hz, exceeds the device's {caps.max_bandwidth_hz:g} Hz"
        )
    lo, hi = caps.sample_rate_range_hz
    rate = min(max(width * (1 + CAPTURE_MARGIN), lo), hi)
    out = _iq_plan({"duration_s": job["duration_s"], "samp_rate_hz": rate}, ctx)
    out["center_freq_hz"] = center
    return out


@_derives("bandwidth_hz", "duration_s", "center_freq_hz", "reference")
def _array_capture(job: Mapping[str, Any], ctx: NodeContext) -> dict[str, Any]:
    """An angle-of-arrival capture: the direction-finding band from the job's common start,
    every coherent channel of the node's array device at once."""
    from gnuradio.drift import devices

    caps = devices.capabilities(devices.parse_device(ctx.device_args))
    if caps.channels < 2:
        raise CompileError(
            f"AoA needs a coherent array: this node's device ({caps.driver}) has "
            f"{caps.channels} channel"
        )
    out = _df_capture(job, ctx)
    out["channels"] = caps.channels
    out["snippet"] = max(1, out["snippet"] // caps.channels)  # frames of the same size
    out["output"] = os.path.join(ctx.workdir, "array.cf32")
    return out


#: A simulated device starts streaming this long before a timed capture's start, as a real
#: device started by a flowgraph launched ahead of time does: the flowgraph's Timed Head
#: finds the start in the stream (not a whole number of samples at usual rates).
SIM_LEAD_IN_S = 0.0123


def _timed(ctx: NodeContext) -> str:
    """A simulated device (not paced to the wall clock) gets its stream's start time on the
    node's clock: just before the assignment's start for a timed capture (real devices, and
    paced simulations, start when the process does)."""
    args = ctx.device_args
    if (
        ctx.start_time is None
        or not args.startswith("sim=")
        or ",start=" in args
        or "realtime=1" in args
    ):
        return args
    return f"{args},start={ctx.start_time - SIM_LEAD_IN_S!r}"


_FRAME_CONTEXT = frozenset(
    {"device_args", "job_id", "node_id", "frames_to", "time_uncertainty_s", "flowgraph_hash"}
)

SPECTRUM_SCAN = Binding(
    "spectrum_scan",
    context=_FRAME_CONTEXT,
    derive=_scan_plan,
    coordinator_only=frozenset({"node_count", "node_ids", "priority", "type"}),
)
"""A ``spectrum_scan`` job on ``flowgraphs/spectrum_scan.grc``."""

IQ_CAPTURE = Binding(
    "iq_capture",
    context=_FRAME_CONTEXT,
    derive=_iq_plan,
    coordinator_only=frozenset({"node_count", "node_ids", "priority", "type"}),
)
"""A raw timed IQ capture (``center_freq_hz``, ``samp_rate_hz``, ``duration_s``) on
``flowgraphs/iq_capture.grc``."""

_DF_COORDINATOR_ONLY = frozenset(
    {
        "method",
        "area",
        "node_count",
        "node_ids",
        "priority",
        "type",
        "max_range_m",
        "max_sync_uncertainty_s",
        "estimator",
        "array_nodes",
    }
)

ARRAY_CAPTURE = Binding(
    "array_capture",
    context=_FRAME_CONTEXT,
    derive=_array_capture,
    coordinator_only=_DF_COORDINATOR_ONLY,
)
"""A ``direction_finding`` job with ``method: aoa``: every channel of the node's array from
the job's start (``flowgraphs/array_capture.grc``)."""

DIRECTION_FINDING = Binding(
    "iq_capture",
    context=_FRAME_CONTEXT,
    derive=_df_capture,
    coordinator_only=_DF_COORDINATOR_ONLY,
    select=lambda job: ARRAY_CAPTURE if job.get("method") == "aoa" else DIRECTION_FINDING,
    roles={"array": ARRAY_CAPTURE},
)
"""A ``direction_finding`` job: every node's capture of the job's band from its start (an
AoA job's, and a hybrid job's array nodes' (role ``array``): :data:`ARRAY_CAPTURE`)."""


def _propagation_rate(job: Mapping[str, Any], caps: Any, margin: float) -> float:
    lo, hi = caps.sample_rate_range_hz
    bw = float(job.get("bandwidth_hz") or 100e3)
    if bw > caps.max_bandwidth_hz:
        raise CompileError(
            f"bandwidth_hz: {bw:g} Hz exceeds the device's {caps.max_bandwidth_hz:g} Hz"
        )
    return min(max(bw * margin, lo), hi)


#: a propagation test's receivers capture this many times the test band (the rest of the
#: capture measures the noise floor beside it)
PROPAGATION_RX_SPAN = 2.0
#: its transmitter samples this many times the band
PROPAGATION_TX_SPAN = 1.25


def _on_the_air(ctx: NodeContext) -> NodeContext:
    """A simulated device paced to the wall clock: it receives the scenario's air (the other
    simulated nodes' transmissions) as it is when each sample is made."""
    args = ctx.device_args
    if args.startswith("sim=") and "realtime=" not in args:
        args += ",realtime=1"
    return dataclasses.replace(ctx, device_args=args)


@_derives("freq_hz", "bandwidth_hz", "duration_s")
def _propagation_rx(job: Mapping[str, Any], ctx: NodeContext) -> dict[str, Any]:
    """A receiver of a propagation test captures IQ around the test frequency from the
    common start: the analysis measures the calibrated power in the band from it."""
    from gnuradio.drift import devices

    caps = devices.capabilities(devices.parse_device(ctx.device_args))
    rate = _propagation_rate(job, caps, PROPAGATION_RX_SPAN)
    out = _iq_plan({"duration_s": job["duration_s"], "samp_rate_hz": rate}, _on_the_air(ctx))
    out["center_freq_hz"] = float(job["freq_hz"])
    return out


@_derives("freq_hz", "bandwidth_hz", "duration_s", "tx_power_dbm", "waveform")
def _propagation_tx(job: Mapping[str, Any], ctx: NodeContext) -> dict[str, Any]:
    """The transmitter of a propagation test: its waveform at the job's power, from the
    common start for the job's duration."""
    from gnuradio.drift import devices

    caps = devices.capabilities(devices.parse_device(ctx.device_args))
    rate = _propagation_rate(job, caps, PROPAGATION_TX_SPAN)
    return {
        "device_args": ctx.device_args,
        "center_freq_hz": float(job["freq_hz"]),
        "samp_rate_hz": rate,
        "n_samples": int(round(float(job["duration_s"]) * rate)),
        "tx_power_dbm": float(job["tx_power_dbm"]),
        "waveform": job.get("waveform") or "cw",
        # BPSK chips at half the band: their main lobe fills most of it
        "chip_rate_hz": float(job.get("bandwidth_hz") or 100e3) / 2,
        "start_time": 0.0 if ctx.start_time is None else float(ctx.start_time),
    }


_PROPAGATION_COORDINATOR = frozenset(
    {"tx_node_id", "receiver_count", "max_sync_uncertainty_s", "priority", "type"}
)

PROPAGATION_TEST = Binding(
    "iq_capture",
    context=_FRAME_CONTEXT,
    derive=_propagation_rx,
    coordinator_only=_PROPAGATION_COORDINATOR | {"tx_power_dbm", "waveform"},
    roles={
        "transmitter": Binding(
            "propagation_tx",
            derive=_propagation_tx,
            coordinator_only=_PROPAGATION_COORDINATOR,
        )
    },
)
"""A ``propagation_test`` job: receivers capture the band from the common start
(``iq_capture``); the transmitter runs ``propagation_tx``."""

UPLOADED = Binding("", defaults_allowed=True)
"""Marks a job type whose template is uploaded with each job (``custom_flowgraph``): the
template's own parameter blocks are its schema, see :func:`uploaded_binding`."""


def uploaded_binding(template: Template) -> Binding:
    """An uploaded template's binding: job fields map by name, the node context fills the
    parameters named like its fields, the rest keep their defaults."""
    return Binding(
        template.id,
        defaults_allowed=True,
        context=frozenset(n for n in template.parameters if n in NodeContext.__dataclass_fields__),
    )


@dataclass(frozen=True)
class Command:
    argv: list[str]
    template: Template
    values: dict[str, Any]
    program: Path


def command_line(
    program: Path, template: Template, values: Mapping[str, Any], python: str | None = None
) -> list[str]:
    argv = [python or sys.executable, "-u", str(program)]
    for name, value in values.items():
        p = template.parameters[name]
        argv.append(f"{p.option}={value!r}" if isinstance(value, float) else f"{p.option}={value}")
    return argv


def compile_job(
    job_type: str | Binding,
    job: Mapping[str, Any],
    ctx: NodeContext,
    template: Template | None = None,
    cache: Path | None = None,
    role: str | None = None,
) -> Command:
    """The command that runs one assignment of a job on this node.

    `job_type`: a registered job type's name (its binding comes from the registry) or a
    binding. `template` is an uploaded template (custom flowgraphs: their own parameters are
    their schema, so job fields map by name and the node context fills the rest).
    """
    if isinstance(job_type, Binding):
        binding = job_type
    else:
        from drift.orchestrator.registry import JOB_TYPES

        if job_type not in JOB_TYPES:
            raise CompileError(f"unknown job type {job_type!r}")
        binding = JOB_TYPES[job_type].binding.for_job(job)
    if role is not None and role in binding.roles:
        binding = binding.roles[role]
    if template is not None:
        binding = uploaded_binding(template)
        job = {k: v for k, v in job.items() if k in template.parameters}
    elif binding is UPLOADED:
        raise CompileError(f"job type {job_type!r} runs an uploaded template; none was given")
    else:
        template = load_template(binding.template)
    ctx = dataclasses.replace(ctx, flowgraph_hash=template.sha256)
    values = binding.values(template, job, ctx)
    program = compile_grc(template, cache)
    return Command(command_line(program, template, values), template, values, program)


# --- uploaded templates (the custom_flowgraph job type) ---------------------------------------

MAX_TEMPLATE_BYTES = 1 << 20
#: blocks that carry Python source of their own; an admin approving the template must know
EMBEDDED_CODE_BLOCKS = frozenset({"epy_block", "epy_module", "python_module"})
_STRUCTURAL_BLOCKS = frozenset({"parameter", "variable", "import", "options", "note"})

#: the parameters that hold Python source run as it is (not an expression): block id ->
#: (parameter, kind in the expression list)
CODE_PARAMETERS: dict[str, tuple[str, str]] = {
    "import": ("imports", "import"),
    "epy_block": ("_source_code", "source"),
    "epy_module": ("source_code", "source"),
    "python_module": ("source_code", "source"),
    "snippet": ("code", "snippet"),
}
#: parameters GRC never evaluates (free text)
_NOT_EVALUATED = frozenset({"comment"})

#: block families that drive radio hardware: their sinks (and UHD's TX blocks) transmit
_RADIO_FAMILIES = ("soapy_", "osmosdr_", "uhd_", "iio_")


def transmits(block_id: str) -> bool:
    """Whether a block makes the node transmit: DRIFT's Device Sink, a sink of gr-soapy,
    gr-osmosdr, gr-uhd or gr-iio, or a UHD TX block. (ZeroMQ, file, network and audio sinks are not radios.)"""
    if block_id == "drift_device_sink":
        return True
    return block_id.startswith(_RADIO_FAMILIES) and (
        block_id.endswith("_sink") or "_tx_" in block_id or block_id.endswith("_tx")
    )


def transmitting_blocks(content: bytes, name: str = "<upload>") -> tuple[str, ...]:
    """The names of a template's enabled blocks that transmit (see :func:`transmits`)."""
    doc = load_grc_yaml(content, name)
    return tuple(
        sorted(
            str(b.get("name"))
            for b in doc.get("blocks") or []
            if isinstance(b, dict)
            and isinstance(b.get("id"), str)
            and transmits(b["id"])
            and block_enabled(b)
        )
    )


#: param id -> (dtype, enum options) of one block type, as GRC defines it
BlockParams = dict[str, tuple[str, frozenset[str]]]


def _is_python(text: str) -> bool:
    """Whether GRC could run `text` as Python: it parses as an expression and is not a
    literal. Text that does not parse runs nothing (GRC takes it as a string, or refuses)."""
    code = text.strip()
    if not code:
        return False
    try:
        ast.literal_eval(code)
        return False
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        pass
    try:
        ast.parse(code, mode="eval")
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return False
    return True


def python_expressions(
    doc: Mapping[str, Any], block_params: Callable[[str], BlockParams | None] | None = None
) -> list[dict[str, Any]]:
    """Every piece of Python a flowgraph runs, for the admin who approves it: the source of
    ``import``, ``epy_block``, ``epy_module`` and ``snippet`` blocks, every ``variable``'s
    value, and every other parameter value that is not a literal (GRC evaluates them when
    ``grcc`` compiles the flowgraph, and the generated program evaluates them again).

    Each entry: ``block`` (its name), ``block_id`` (its type), ``parameter``, ``kind``
    (``import``, ``source``, ``snippet``, ``variable``, ``expression``), ``code``, and
    ``runs_code``: false only for an expression of nothing but names, literals and operators
    (a call, an attribute, a subscript, a lambda... make it true), so an approver can read
    those first.
    `block_params` gives GRC's parameter types of a block type: the value of an ``enum``
    parameter that is one of its options is not evaluated, so it is left out.
    """
    out: list[dict[str, Any]] = []
    blocks = doc.get("blocks") if isinstance(doc, Mapping) else None
    options = doc.get("options") if isinstance(doc, Mapping) else None
    every = ([options] if isinstance(options, Mapping) else []) + (
        list(blocks) if isinstance(blocks, list) else []
    )
    for block in every:
        if not isinstance(block, Mapping):
            continue
        block_id = "options" if block is options else block.get("id")
        block_id = block_id if isinstance(block_id, str) else ""
        name = block.get("name")
        name = name if isinstance(name, str) else ("options" if block is options else "")
        params = block.get("parameters")
        if not isinstance(params, Mapping):
            continue
        known = block_params(block_id) if block_params is not None else None
        code_param, code_kind = CODE_PARAMETERS.get(block_id, (None, ""))
        for key, value in params.items():
            key = str(key)
            if value is None or isinstance(value, (bool, int, float)) or key in _NOT_EVALUATED:
                continue
            text = value if isinstance(value, str) else str(value)
            if key == code_param:
                kind = code_kind
                if not text.strip():
                    continue
            elif block_id == "variable" and key == "value":
                kind = "variable"
                if not text.strip():
                    continue
            else:
                dtype, enum = (known or {}).get(key, ("", frozenset()))
                if dtype == "enum" and text in enum:
                    continue
                if dtype == "_multiline" or not _is_python(text):
                    continue
                kind = "expression"
            out.append(
                {
                    "block": name,
                    "block_id": block_id,
                    "parameter": key,
                    "kind": kind,
                    "code": text,
                    "runs_code": kind in ("import", "source", "snippet") or _runs_code(text),
                }
            )
    return out


#: what an expression may hold and still be only names, literals and operators on them
_PLAIN_NODES = (
    ast.Expression,
    ast.Name,
    ast.Load,
    ast.Constant,
    ast.BinOp,
    ast.UnaryOp,
    ast.BoolOp,
    ast.Compare,
    ast.IfExp,
    ast.Tuple,
    ast.List,
    ast.Set,
    ast.Dict,
    ast.operator,
    ast.unaryop,
    ast.boolop,
    ast.cmpop,
)


def _runs_code(text: str) -> bool:
    """Whether an expression does more than combine names and literals with operators: a
    call, an attribute, a subscript, a lambda, a comprehension... (conservative: anything
    else counts)."""
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return True
    return not all(isinstance(node, _PLAIN_NODES) for node in ast.walk(tree))


def _grc_block_params(block_id: str) -> BlockParams | None:
    """GRC's parameter types of a block type, from the block library here."""
    platform = _platform()
    block = platform.blocks.get(block_id)
    if block is None:
        return None
    out: BlockParams = {}
    for data in getattr(block, "parameters_data", ()):
        options = data.get("options") or ()
        out[str(data.get("id"))] = (
            str(data.get("dtype", "")),
            frozenset(str(o) for o in options)
            if isinstance(options, (list, tuple))
            else frozenset(),
        )
    return out


def _platform() -> Any:
    """GRC's block library here (stock GNU Radio, gr-drift, installed OOT modules); built
    once per process."""
    global _PLATFORM
    if _PLATFORM is None:
        from gnuradio import gr
        from gnuradio.grc.core.platform import Platform

        platform = Platform(
            version=gr.version(),
            prefs=gr.prefs(),
            version_parts=(gr.major_version(), gr.api_version(), gr.minor_version()),
        )
        platform.build_library()
        _PLATFORM = platform
    return _PLATFORM


_PLATFORM: Any = None


def known_blocks() -> frozenset[str]:
    """Every block id GRC knows here (stock GNU Radio, gr-drift, installed OOT modules)."""
    return frozenset(_platform().blocks)


@dataclass(frozen=True)
class UploadReport:
    template: Template
    blocks: tuple[str, ...]
    embedded_code: tuple[str, ...]
    #: see :func:`python_expressions`
    expressions: tuple[dict[str, Any], ...] = ()
    #: names of the blocks that transmit (see :func:`transmits`)
    transmit_blocks: tuple[str, ...] = ()


def validate_upload(content: bytes, name: str = "<upload>") -> UploadReport:
    """Check an uploaded ``.grc`` without running it: size, structure, headless Python output,
    parameter blocks with supported types, and every block known to GRC on this machine.

    Nothing in it is evaluated: GRC parameter values are Python expressions, so a template is
    code, and only an admin's approval makes it runnable on nodes. Every piece of Python in it
    is listed (:func:`python_expressions`) so the admin sees what would run, and so are the
    blocks that would make a node transmit.
    """
    if len(content) > MAX_TEMPLATE_BYTES:
        raise CompileError(f"{name}: {len(content)} bytes; the limit is {MAX_TEMPLATE_BYTES}")
    template = parse_template(content, name)
    doc = load_grc_yaml(content, name)
    ids = []
    transmitting = []
    for i, block in enumerate(doc["blocks"]):
        if not isinstance(block, dict) or not isinstance(block.get("id"), str):
            raise CompileError(f"{name}: blocks[{i}] has no block id")
        block_name = block.get("name")
        if not isinstance(block_name, str) or not block_name.isidentifier():
            raise CompileError(f"{name}: blocks[{i}] name {_echo(block_name)} is not an identifier")
        if not isinstance(block.get("parameters") or {}, dict):
            raise CompileError(f"{name}: blocks[{i}] ({block_name}) parameters must be a mapping")
        ids.append(block["id"])
        if transmits(block["id"]) and block_enabled(block):
            transmitting.append(block_name)
    unknown = sorted({b for b in ids if b not in _STRUCTURAL_BLOCKS} - known_blocks())
    if unknown:
        shown = ", ".join(_echo(b) for b in unknown[:10]) + (", ..." if len(unknown) > 10 else "")
        raise CompileError(f"{name}: blocks unknown to GNU Radio Companion here: [{shown}]")
    if not template.parameters:
        raise CompileError(f"{name}: no parameter blocks, so a job could not set anything")
    return UploadReport(
        template,
        tuple(sorted(set(ids))),
        tuple(sorted(set(ids) & EMBEDDED_CODE_BLOCKS)),
        tuple(python_expressions(doc, _grc_block_params)),
        tuple(sorted(transmitting)),
    )
