"""TLS in ``drift serve``: the server's context and the client certificate as the app sees it.

uvicorn verifies a client's certificate in the handshake but does not hand it to the app. The
protocol classes here add it to each request's and WebSocket's scope as the ASGI TLS extension
describes (``scope["extensions"]["tls"]["client_cert_chain"]``, PEM), on every connection
that came over TLS. Nothing else of uvicorn's changes.

Behind a reverse proxy that terminates TLS, the proxy passes the certificate it verified in a
header (``client_cert_header``); the app reads it only from ``trusted_proxies`` and checks it
against the coordinator's CA itself.
"""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
from functools import lru_cache
from typing import Any
from urllib.parse import unquote

import uvicorn
from cryptography import x509
from starlette.requests import HTTPConnection
from uvicorn.protocols.http.auto import AutoHTTPProtocol
from uvicorn.protocols.websockets.auto import AutoWebSocketsProtocol

from drift.orchestrator.pki import load_pem

_TLS_VERSIONS = {"TLSv1.2": 0x0303, "TLSv1.3": 0x0304}


def _tls_extension(transport: asyncio.BaseTransport) -> dict[str, Any] | None:
    ssl_object = transport.get_extra_info("ssl_object")
    if ssl_object is None:
        return None
    der = ssl_object.getpeercert(binary_form=True)
    return {
        "server_cert": None,
        "client_cert_chain": [ssl.DER_cert_to_PEM_cert(der)] if der else [],
        "client_cert_name": None,
        "client_cert_error": None,
        "tls_version": _TLS_VERSIONS.get(ssl_object.version()),
        "cipher_suite": None,
    }


class _AddsTLS:
    """Mixed into uvicorn's protocol classes: wraps the app for this connection so that each
    scope carries the connection's TLS extension."""

    def connection_made(self, transport):  # noqa: D401 - asyncio's name
        super().connection_made(transport)
        tls = _tls_extension(transport)
        if tls is None:
            return
        app = self.app

        async def with_tls(scope, receive, send):
            scope.setdefault("extensions", {})["tls"] = tls
            return await app(scope, receive, send)

        self.app = with_tls


def _with_tls(base: type) -> type:
    return type(f"TLS{base.__name__}", (_AddsTLS, base), {})


HTTPProtocol = _with_tls(AutoHTTPProtocol)
WebSocketProtocol = _with_tls(AutoWebSocketsProtocol) if AutoWebSocketsProtocol else None


class Config(uvicorn.Config):
    """uvicorn's configuration with DRIFT's own server context (:func:`drift.tls.server_context`:
    TLS 1.2+, ECDHE, AEAD only, client certificates checked against the node CA)."""

    def __init__(self, app, *, ssl_context: ssl.SSLContext | None = None, **kwargs) -> None:
        self._drift_ssl = ssl_context
        if ssl_context is not None:
            kwargs.update(http=HTTPProtocol, ws=WebSocketProtocol or "auto")
        super().__init__(app, **kwargs)

    def load(self) -> None:
        super().load()
        if self._drift_ssl is not None:
            self.ssl = self._drift_ssl


# --- the app's side ---------------------------------------------------------------------------


@lru_cache(maxsize=1024)
def _parse(pem: str) -> x509.Certificate | None:
    return load_pem(pem)


def _trusted(client: str | None, proxies: tuple[str, ...]) -> bool:
    if not client or not proxies:
        return False
    try:
        address = ipaddress.ip_address(client)
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(p, strict=False) for p in proxies)


def over_tls(conn: HTTPConnection) -> bool:
    """Whether this connection came over TLS to this server (not what a proxy says)."""
    return "tls" in conn.scope.get("extensions", {})


def client_certificate(conn: HTTPConnection, settings, ca) -> x509.Certificate | None:
    """The client certificate of this request or WebSocket: from the TLS handshake (already
    verified against the client CA), or from a trusted reverse proxy's header (verified here
    against the coordinator's CA); None when there is none."""
    tls = conn.scope.get("extensions", {}).get("tls")
    if tls and tls.get("client_cert_chain"):
        return _parse(tls["client_cert_chain"][0])
    header = settings.client_cert_header
    if header and _trusted(
        conn.client.host if conn.client else None, tuple(settings.trusted_proxies)
    ):
        value = conn.headers.get(header)
        if value:
            cert = _parse(unquote(value))
            if cert is not None and ca is not None and ca.issued(cert):
                return cert
    return None


def certificate_required(conn: HTTPConnection, settings) -> bool:
    """Nodes must authenticate by certificate on TLS connections, and behind a proxy that
    passes certificates; their credential alone is enough only on plain loopback HTTP."""
    return over_tls(conn) or bool(settings.client_cert_header)
