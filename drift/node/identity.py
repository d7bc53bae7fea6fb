"""A node's certificate: its key (made here, never sent), the signing request it sends with its
enrollment or renewal, and the certificate the coordinator's CA returns.

Files in the agent's ``state_dir`` (the directory 0700, keys 0600):

- ``node.pem``: the certificate in use and its key, in one file replaced at once (a renewal
  interrupted half-way never leaves a key without its certificate);
- ``node.key.next``: the key of a renewal in flight, until its certificate arrives;
- ``coordinator-ca.crt``: the CA that signed the certificate (sent back with it).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from drift.fileperm import replace_private


def _csr(key: ec.EllipticCurvePrivateKey, name: str) -> str:
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name[:64] or "node")]))
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM).decode()


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@dataclass
class NodeIdentity:
    """The certificate files in one agent's state directory."""

    state_dir: Path

    @property
    def pem_path(self) -> Path:
        """The certificate and its key (load_cert_chain takes both from this one file)."""
        return self.state_dir / "node.pem"

    @property
    def ca_path(self) -> Path:
        return self.state_dir / "coordinator-ca.crt"

    @property
    def _next_key_path(self) -> Path:
        return self.state_dir / "node.key.next"

    @property
    def has_certificate(self) -> bool:
        return self.pem_path.exists()

    def request(self, name: str) -> str:
        """A CSR on a new key (kept as the next key until its certificate comes)."""
        self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        key = ec.generate_private_key(ec.SECP256R1())
        replace_private(self._next_key_path, _key_pem(key))
        return _csr(key, name)

    def store(self, certificate_pem: str, ca_pem: str | None) -> None:
        """Take the certificate for the last :meth:`request`: it and its key become the
        ones in use, in one step. Refuses a certificate that is not for that key."""
        key_pem = self._next_key_path.read_bytes()
        key = serialization.load_pem_private_key(key_pem, password=None)
        cert = x509.load_pem_x509_certificate(certificate_pem.encode())
        if cert.public_key().public_numbers() != key.public_key().public_numbers():
            raise ValueError("the coordinator returned a certificate for another key")
        if ca_pem:
            replace_private(self.ca_path, ca_pem.encode(), 0o644)
        replace_private(self.pem_path, certificate_pem.encode() + key_pem)
        self._next_key_path.unlink()

    def _cert(self) -> x509.Certificate | None:
        try:
            return x509.load_pem_x509_certificate(self.pem_path.read_bytes())
        except (OSError, ValueError):
            return None

    def lifetime(self) -> tuple[dt.datetime, dt.datetime] | None:
        """(not before, not after) of the certificate in use."""
        cert = self._cert()
        if cert is None:
            return None
        a, b = cert.not_valid_before, cert.not_valid_after
        return (
            a if a.tzinfo else a.replace(tzinfo=dt.UTC),
            b if b.tzinfo else b.replace(tzinfo=dt.UTC),
        )

    def renewal_due(self, now: dt.datetime | None = None, fraction: float = 0.5) -> bool:
        """Whether less than ``fraction`` of the certificate's lifetime is left."""
        span = self.lifetime()
        if span is None:
            return False
        now = now or dt.datetime.now(dt.UTC)
        start, end = span
        return (end - now) < (end - start) * fraction
