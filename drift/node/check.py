"""``drift node --check-config``: what a node.yaml would do, checked before the agent runs it.

Each finding is one line naming the field. Errors are what would stop the agent (or make the
coordinator refuse it); warnings are what may be intended (a device not plugged in yet, plain
HTTP to another host behind ``--insecure-http``).
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from drift.node.config import AgentConfig, ConfigError, load_config


@dataclass
class Findings:
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    facts: list[str] = field(default_factory=list)


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _nearest_existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check(path: str | Path) -> Findings:
    """Check the node.yaml at `path` without enrolling, connecting or streaming."""
    found = Findings()
    try:
        cfg = load_config(path)
    except ConfigError as exc:
        found.errors.append(str(exc))
        return found
    _check_coordinator(cfg, found)
    _check_state_dir(cfg, found)
    _check_device(cfg, found)
    return found


def _check_coordinator(cfg: AgentConfig, found: Findings) -> None:
    host = urlparse(cfg.coordinator).hostname or ""
    found.facts.append(f"coordinator {cfg.coordinator}")
    if not cfg.tls and not _loopback(host):
        found.warnings.append(
            f"coordinator: plain http:// to {host} (not this host): the coordinator takes it only "
            "with --insecure-http, and the node then authenticates without a certificate; use "
            "https://"
        )
    if cfg.ca_file is not None:
        from cryptography import x509

        try:
            cert = x509.load_pem_x509_certificate(cfg.ca_file.read_bytes())
        except (OSError, ValueError):
            found.errors.append(f"ca_file: {cfg.ca_file}: not a PEM certificate")
        else:
            found.facts.append(f"ca_file {cfg.ca_file} ({cert.subject.rfc4514_string()})")
        if not cfg.tls:
            found.warnings.append("ca_file: only used with an https:// coordinator")


def _check_state_dir(cfg: AgentConfig, found: Findings) -> None:
    state = cfg.state_dir
    if state.exists() and not state.is_dir():
        found.errors.append(f"state_dir: {state} is not a directory")
        return
    target = state if state.exists() else _nearest_existing(state.parent)
    if not os.access(target, os.W_OK | os.X_OK):
        found.errors.append(f"state_dir: {state}: {target} is not writable by this user")
    enrolled = (state / "credential.json").is_file()
    if not enrolled and not cfg.enrollment_token:
        found.errors.append(
            f"enrollment_token: required until the node has enrolled (no credential in {state})"
        )
    found.facts.append(f"state_dir {state} ({'enrolled' if enrolled else 'not enrolled yet'})")


def _check_device(cfg: AgentConfig, found: Findings) -> None:
    from gnuradio.drift import devices

    try:
        spec = devices.parse_device(cfg.device)
    except devices.DeviceError as exc:
        found.errors.append(f"device: {exc}")
        return
    if spec.kind != "sim" and cfg.location is None:
        found.errors.append("location: required for a node that is not simulated")
    try:
        caps = devices.capabilities(spec)
    except Exception as exc:  # the device layer names what it could not find
        found.warnings.append(f"device: {cfg.device}: not usable now ({exc})")
        return
    lo, hi = caps.freq_range_hz
    found.facts.append(f"device {caps.driver}: {lo / 1e6:g}-{hi / 1e6:g} MHz")
    if cfg.array is not None and cfg.array.elements != caps.channels:
        found.errors.append(
            f"array: {cfg.array.elements} elements, but the device opens {caps.channels} "
            "channel(s) (channels=N in its device string)"
        )
    elif caps.channels > 1:
        found.facts.append(
            f"{caps.channels} coherent channels"
            + (", array layout known" if cfg.array or caps.array else ", no array layout")
        )
    _check_transmit(cfg, caps, found)


def _check_transmit(cfg: AgentConfig, caps, found: Findings) -> None:
    tx = cfg.transmit
    if not tx.enabled:
        found.facts.append("transmit: off (the node never transmits)")
        return
    if not caps.has_tx:
        found.errors.append(f"transmit.enabled: the device {caps.driver} cannot transmit")
        return
    lo, hi = caps.freq_range_hz
    for i, b in enumerate(tx.bands):
        if b.low_hz < lo or b.high_hz > hi:
            found.errors.append(
                f"transmit.bands.{i}: {b.low_hz / 1e6:g}-{b.high_hz / 1e6:g} MHz is outside the "
                f"device's {lo / 1e6:g}-{hi / 1e6:g} MHz"
            )
    found.facts.append(
        f"transmit: on under licence {tx.licence}, "
        + ", ".join(
            f"{b.low_hz / 1e6:g}-{b.high_hz / 1e6:g} MHz up to {b.max_power_dbm:g} dBm"
            for b in tx.bands
        )
    )
