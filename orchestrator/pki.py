"""The coordinator's certificate authority: it signs each node's certificate.

A node makes its own key and sends a certificate signing request (CSR) with its enrollment
(and again, with a new key, to renew before expiry); the CA signs a certificate whose subject
is the node's id, valid for ``node_certificate_validity_s``, for TLS client authentication
only. The node's private key never leaves the node. Which certificate is a node's current one
is the database's business (``nodes.cert_serial``): the coordinator accepts a node's
certificate only while its serial is the one on record and the node is not revoked, so
renewing replaces the previous certificate at once and revoking takes effect without
certificate revocation lists.

The CA's key (EC P-256) and certificate live in ``ca_dir`` (default ``data_dir/ca``, the
directory 0700 and the key 0600), made on the coordinator's first start. Replicas of one
coordinator share that directory (or a copy of it). ``drift ca`` prints the CA certificate
(node.yaml's ``ca_file`` when the coordinator's own server certificate comes from it) and
issues server certificates for test set-ups.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import ipaddress
import os
import secrets
import uuid
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from drift.fileperm import replace_private

#: a CSR bigger than this is not a CSR
MAX_CSR_BYTES = 8192
CA_VALIDITY = dt.timedelta(days=3650)
#: certificates are valid from a little before they are made (clocks differ)
BACKDATE = dt.timedelta(minutes=5)


class CertificateRequestError(ValueError):
    """A CSR that cannot be signed; the message says why."""


@dataclass(frozen=True)
class Issued:
    pem: str
    serial: str  # hexadecimal, as stored in nodes.cert_serial
    not_after: dt.datetime


@dataclass(frozen=True)
class PeerCertificate:
    """What the coordinator reads from a verified client certificate."""

    node_id: uuid.UUID | None  # None: the subject is not a node id
    serial: str
    not_after: dt.datetime


def _utc(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _not_after(cert: x509.Certificate) -> dt.datetime:
    return _utc(cert.not_valid_after)


def _not_before(cert: x509.Certificate) -> dt.datetime:
    return _utc(cert.not_valid_before)


def _serial_hex(serial: int) -> str:
    return format(serial, "x")


def _check_public_key(key) -> None:
    if isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.name not in ("secp256r1", "secp384r1"):
            raise CertificateRequestError(
                f"csr: EC keys must be on P-256 or P-384, not {key.curve.name}"
            )
    elif isinstance(key, rsa.RSAPublicKey):
        if key.key_size < 2048:
            raise CertificateRequestError(f"csr: RSA keys need 2048 bits, not {key.key_size}")
    else:
        raise CertificateRequestError("csr: the key must be EC (P-256, P-384) or RSA")


class CertificateAuthority:
    def __init__(self, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate, directory: Path):
        self.key = key
        self.cert = cert
        self.directory = directory
        self.cert_pem = cert.public_bytes(serialization.Encoding.PEM).decode()

    @property
    def cert_path(self) -> Path:
        return self.directory / "ca.crt"

    @classmethod
    def load_or_create(
        cls, directory: Path, name: str = "DRIFT coordinator CA"
    ) -> CertificateAuthority:
        """The CA kept in ``directory``, made there (key 0600, directory 0700) if missing."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        # processes starting together (an API process and its replicas) make one CA
        with open(directory / ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            return cls._load_or_make(directory, name)

    @classmethod
    def _load_or_make(cls, directory: Path, name: str) -> CertificateAuthority:
        key_path, cert_path = directory / "ca.key", directory / "ca.crt"
        if key_path.exists() and cert_path.exists():
            try:
                key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
                cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
            except ValueError as exc:
                raise ValueError(
                    f"{directory}: the CA's key or certificate is damaged ({exc})"
                ) from None
            return cls(key, cert, directory)
        if key_path.exists() or cert_path.exists():
            raise ValueError(
                f"{directory}: has only one of ca.key and ca.crt; restore the other (a new CA "
                "would make every node certificate invalid)"
            )
        os.chmod(directory, 0o700)
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "DRIFT"),
                # a random part: two coordinators' CAs never share a name
                x509.NameAttribute(NameOID.COMMON_NAME, f"{name} {secrets.token_hex(4)}"),
            ]
        )
        ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - BACKDATE)
            .not_valid_after(now + CA_VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(ski, critical=False)
            .sign(key, hashes.SHA256())
        )
        replace_private(
            key_path,
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
        )
        replace_private(cert_path, cert.public_bytes(serialization.Encoding.PEM))
        os.chmod(cert_path, 0o644)
        return cls(key, cert, directory)

    # -- issuing ----------------------------------------------------------------------------

    def _builder(self, subject: x509.Name, public_key, now: dt.datetime, validity: dt.timedelta):
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.cert.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            # a tenth of a short validity at most, so that "half of it left" (when nodes
            # renew) stays about half of the time it is really used
            .not_valid_before(now - min(BACKDATE, validity / 10))
            .not_valid_after(min(now + validity, _not_after(self.cert)))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
        )

    def sign_node(
        self, csr_pem: str, node_id: uuid.UUID, validity_s: float, now: dt.datetime | None = None
    ) -> Issued:
        """A client certificate for ``node_id`` on the key of ``csr_pem``. Only the CSR's key
        is used (it must have signed the CSR); its subject and extensions are not: the
        coordinator decides who the node is."""
        if len(csr_pem.encode()) > MAX_CSR_BYTES:
            raise CertificateRequestError(f"csr: longer than {MAX_CSR_BYTES} bytes")
        try:
            csr = x509.load_pem_x509_csr(csr_pem.encode())
        except ValueError:
            raise CertificateRequestError("csr: not a PEM certificate signing request") from None
        if not csr.is_signature_valid:
            raise CertificateRequestError("csr: its signature does not match its key")
        public_key = csr.public_key()
        _check_public_key(public_key)
        now = now or dt.datetime.now(dt.UTC)
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "DRIFT node"),
                x509.NameAttribute(NameOID.COMMON_NAME, str(node_id)),
            ]
        )
        cert = (
            self._builder(subject, public_key, now, dt.timedelta(seconds=validity_s))
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .add_extension(
                x509.SubjectAlternativeName(
                    [x509.UniformResourceIdentifier(f"urn:uuid:{node_id}")]
                ),
                critical=False,
            )
            .sign(self.key, hashes.SHA256())
        )
        return Issued(
            cert.public_bytes(serialization.Encoding.PEM).decode(),
            _serial_hex(cert.serial_number),
            _not_after(cert),
        )

    def issue_server(self, names: list[str], validity_s: float = 365 * 86400) -> tuple[str, str]:
        """A server certificate and its key (both PEM) for these host names and addresses:
        for test set-ups and networks without another CA."""
        if not names:
            raise ValueError("a server certificate needs at least one host name or address")
        key = ec.generate_private_key(ec.SECP256R1())
        alt: list[x509.GeneralName] = []
        for name in names:
            try:
                alt.append(x509.IPAddress(ipaddress.ip_address(name)))
            except ValueError:
                alt.append(x509.DNSName(name))
        now = dt.datetime.now(dt.UTC)
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
        cert = (
            self._builder(subject, key.public_key(), now, dt.timedelta(seconds=validity_s))
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.SubjectAlternativeName(alt), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        return cert.public_bytes(serialization.Encoding.PEM).decode(), key_pem

    # -- checking ---------------------------------------------------------------------------

    def issued(self, cert: x509.Certificate, now: dt.datetime | None = None) -> bool:
        """Whether this CA signed ``cert`` and it is valid now (for certificates that did not
        come through a TLS handshake checked against this CA: a reverse proxy's header)."""
        if cert.issuer != self.cert.subject:
            return False
        try:
            self.key.public_key().verify(
                cert.signature,
                cert.tbs_certificate_bytes,
                ec.ECDSA(cert.signature_hash_algorithm),
            )
        except InvalidSignature:
            return False
        now = now or dt.datetime.now(dt.UTC)
        return _not_before(cert) <= now <= _not_after(cert)


def read_peer(cert: x509.Certificate) -> PeerCertificate:
    """The node id (the subject's common name), serial and expiry of a node certificate."""
    node_id = None
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if names:
        try:
            node_id = uuid.UUID(str(names[0].value))
        except ValueError:
            node_id = None
    return PeerCertificate(node_id, _serial_hex(cert.serial_number), _not_after(cert))


def load_pem(pem: str) -> x509.Certificate | None:
    try:
        return x509.load_pem_x509_certificate(pem.encode())
    except ValueError:
        return None
