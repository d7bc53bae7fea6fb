"""TLS as DRIFT speaks it, on both ends: TLS 1.2 or later, ECDHE key exchange, AEAD ciphers only
(AES-GCM, ChaCha20-Poly1305). TLS 1.3's own suites are all of that kind; for TLS 1.2 the list
below leaves out everything else (CBC, RSA key transport, static DH).

Used by ``drift serve --tls-cert/--tls-key`` (the server's context, which also asks clients
for a certificate and checks it against the coordinator's CA) and by the node agent (its
client context: the coordinator's CA from node.yaml's ``ca_file``, and the node's own
certificate)."""

from __future__ import annotations

import ssl
from pathlib import Path

#: TLS 1.2 suites: ephemeral ECDH, authenticated encryption only
TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20"


class TLSConfigError(ValueError):
    """A certificate, key or CA file that cannot be used; the message names it and why."""


def _harden(ctx: ssl.SSLContext) -> ssl.SSLContext:
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(TLS12_CIPHERS)
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    return ctx


def _load_chain(ctx: ssl.SSLContext, cert: Path | str, key: Path | str, what: str) -> None:
    for label, path in (("certificate", cert), ("key", key)):
        if not Path(path).is_file():
            raise TLSConfigError(f"{what} {label} {path}: no such file")
    try:
        ctx.load_cert_chain(str(cert), str(key))
    except ssl.SSLError as exc:
        raise TLSConfigError(
            f"{what}: {cert} and {key} are not a certificate and its key in PEM ({exc.reason})"
        ) from None


def _load_ca(ctx: ssl.SSLContext, ca: Path | str, what: str) -> None:
    if not Path(ca).is_file():
        raise TLSConfigError(f"{what} {ca}: no such file")
    try:
        ctx.load_verify_locations(cafile=str(ca))
    except ssl.SSLError as exc:
        raise TLSConfigError(f"{what} {ca}: not PEM certificates ({exc.reason})") from None


def server_context(
    cert: Path | str, key: Path | str, client_ca: Path | str | None = None
) -> ssl.SSLContext:
    """The coordinator's context. With ``client_ca``, clients are asked for a certificate
    (optional: users authenticate with passwords and keys instead) and one that is offered
    must chain to that CA, or the handshake fails."""
    ctx = _harden(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER))
    _load_chain(ctx, cert, key, "--tls-cert/--tls-key")
    if client_ca is not None:
        _load_ca(ctx, client_ca, "--client-ca")
        ctx.verify_mode = ssl.CERT_OPTIONAL
    return ctx


def client_context(
    ca_file: Path | str | None = None,
    cert: Path | str | None = None,
    key: Path | str | None = None,
) -> ssl.SSLContext:
    """A client's context: the server is checked against ``ca_file`` (the system's trusted
    CAs when None), by certificate and host name; ``cert``/``key`` are offered when asked."""
    ctx = _harden(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT))
    if ca_file is not None:
        _load_ca(ctx, ca_file, "ca_file")
    else:
        ctx.load_default_certs(ssl.Purpose.SERVER_AUTH)
    if cert is not None and key is not None:
        _load_chain(ctx, cert, key, "node")
    return ctx


LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1", "ip6-localhost"})


def is_loopback(host: str) -> bool:
    """Whether a listen address only reaches this machine (127.0.0.0/8, ::1, localhost)."""
    import ipaddress

    host = host.strip("[]")
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
