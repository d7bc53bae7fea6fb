"""Node identity by certificate, and TLS on the REST API and the node channel.

Oracles independent of the code under test: ``openssl verify`` for what the coordinator's CA
signs; Python's own TLS client (set to what an old or weak client offers) for what the server
accepts; a server certificate from a CA this test makes with ``cryptography`` itself; and, end
to end, the real ``drift serve`` and ``drift node`` processes, whose node certificates the test
reads from the node's own state directory.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import socket
import ssl
import subprocess
import sys
import time
import urllib.parse
import uuid
import warnings
from pathlib import Path

import httpx
import pytest
import zmq
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from websockets.sync.client import connect

from drift import curve
from drift.curve import KeyPair, make_client
from drift.localnet import LocalNetwork, TLSFiles, free_port, wait_for
from drift.node.identity import NodeIdentity
from drift.orchestrator.pki import CertificateAuthority, CertificateRequestError
from drift.protocol import CLOSE_UNAUTHORIZED

SCENARIO = Path(__file__).parent / "data" / "network.yaml"

SCAN = {
    "type": "spectrum_scan",
    "start_freq_hz": 430e6,
    "stop_freq_hz": 436e6,
    "bin_hz": 5e3,
    "interval_s": 1.0,
    "duration_s": 2.0,
}


def _openssl_verify(ca: Path, cert: Path, purpose: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["openssl", "verify", "-CAfile", str(ca), "-purpose", purpose, str(cert)],
        capture_output=True,
        text=True,
    )


# --- the CA ------------------------------------------------------------------------------------


def test_the_ca_signs_a_node_certificate_for_the_csr_key_that_openssl_accepts_as_client_only(
    tmp_path,
):
    ca = CertificateAuthority.load_or_create(tmp_path / "ca")
    assert os.stat(tmp_path / "ca").st_mode & 0o777 == 0o700
    assert os.stat(tmp_path / "ca" / "ca.key").st_mode & 0o777 == 0o600
    node = NodeIdentity(tmp_path / "node")
    csr = node.request("whatever-the-node-calls-itself")
    node_id = uuid.uuid4()
    issued = ca.sign_node(csr, node_id, validity_s=3600)
    node.store(issued.pem, ca.cert_pem)
    assert os.stat(node.pem_path).st_mode & 0o777 == 0o600

    cert = x509.load_pem_x509_certificate(issued.pem.encode())
    # the coordinator names the node, not the CSR
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == str(node_id)
    assert format(cert.serial_number, "x") == issued.serial
    lifetime = cert.not_valid_after - dt.datetime.utcnow()
    assert dt.timedelta(minutes=55) < lifetime <= dt.timedelta(hours=1)

    leaf = tmp_path / "leaf.pem"
    leaf.write_text(issued.pem)
    ok = _openssl_verify(ca.cert_path, leaf, "sslclient")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    # a node certificate cannot serve as a server's
    assert _openssl_verify(ca.cert_path, leaf, "sslserver").returncode != 0
    # another coordinator's CA did not sign it
    other = CertificateAuthority.load_or_create(tmp_path / "other")
    assert _openssl_verify(other.cert_path, leaf, "sslclient").returncode != 0
    assert ca.issued(cert) and not other.issued(cert)

    # the same directory gives the same CA back
    again = CertificateAuthority.load_or_create(tmp_path / "ca")
    assert again.cert_pem == ca.cert_pem


def test_the_ca_refuses_what_it_must_not_sign(tmp_path):
    ca = CertificateAuthority.load_or_create(tmp_path / "ca")
    with pytest.raises(CertificateRequestError, match="not a PEM"):
        ca.sign_node("-----BEGIN CERTIFICATE REQUEST-----\nnope\n", uuid.uuid4(), 60)
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "weak")]))
        .sign(weak, hashes.SHA256())
        .public_bytes(serialization.Encoding.PEM)
        .decode()
    )
    with pytest.raises(CertificateRequestError, match="2048"):
        ca.sign_node(csr, uuid.uuid4(), 60)
    with pytest.raises(CertificateRequestError, match="longer than"):
        ca.sign_node("x" * 9000, uuid.uuid4(), 60)
    # half a CA is not silently replaced by a new one (every node certificate would die)
    (tmp_path / "ca" / "ca.key").unlink()
    with pytest.raises(ValueError, match="only one of"):
        CertificateAuthority.load_or_create(tmp_path / "ca")


def test_a_node_renews_when_half_its_certificate_is_left(tmp_path):
    ca = CertificateAuthority.load_or_create(tmp_path / "ca")
    node = NodeIdentity(tmp_path / "node")
    assert not node.renewal_due()  # no certificate: enrolment, not renewal
    issued = ca.sign_node(node.request("n"), uuid.uuid4(), validity_s=3600)
    node.store(issued.pem, None)
    now = dt.datetime.now(dt.UTC)
    assert not node.renewal_due(now)
    assert not node.renewal_due(now + dt.timedelta(minutes=25))
    assert node.renewal_due(now + dt.timedelta(minutes=35))
    # a certificate for another key is refused, and the one in use stays
    node.request("n")
    foreign = ca.sign_node(NodeIdentity(tmp_path / "x").request("x"), uuid.uuid4(), 3600)
    with pytest.raises(ValueError, match="another key"):
        node.store(foreign.pem, None)
    assert x509.load_pem_x509_certificate(node.pem_path.read_bytes()).serial_number == int(
        issued.serial, 16
    )


# --- drift serve's transport policy ----------------------------------------------------------


def _test_ca(root: Path) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A CA of this test's own (not DRIFT's code) for the coordinator's server certificate."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test server CA")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    root.mkdir(parents=True, exist_ok=True)
    (root / "ca.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key, cert


def _leaf(
    root: Path,
    name: str,
    ca_key,
    ca_cert,
    *,
    server: bool,
) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=1))
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address(name))]
            ),
            critical=False,
        )
    cert = builder.sign(ca_key, hashes.SHA256())
    cert_path, key_path = root / f"{name}.crt", root / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.fixture(scope="module")
def server_tls(tmp_path_factory) -> TLSFiles:
    root = tmp_path_factory.mktemp("server-tls")
    ca_key, ca_cert = _test_ca(root)
    cert, key = _leaf(root, "127.0.0.1", ca_key, ca_cert, server=True)
    return TLSFiles(cert, key, root / "ca.crt")


def _serve(args: list[str], data: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "DRIFT_DATA_DIR": str(data), "DRIFT_COLLECTOR_BIND": ""}
    env.pop("DRIFT_DATABASE_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "drift.cli", "serve", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_serve_refuses_plain_http_off_loopback_and_bad_tls_files_with_exit_status_2(
    tmp_path, server_tls
):
    # refused before anything is bound or written
    out = _serve(["--host", "0.0.0.0", "--port", str(free_port())], tmp_path / "d1")
    assert out.returncode == 2, out.stdout + out.stderr
    assert "refusing to serve plain HTTP on 0.0.0.0" in out.stderr
    assert "--insecure-http" in out.stderr
    assert not (tmp_path / "d1").exists()
    out = _serve(["--tls-cert", str(server_tls.cert), "--port", str(free_port())], tmp_path / "d2")
    assert out.returncode == 2 and "tls_cert and tls_key go together" in out.stderr, out.stderr
    missing = tmp_path / "nope.key"
    out = _serve(
        ["--tls-cert", str(server_tls.cert), "--tls-key", str(missing), "--port", "0"],
        tmp_path / "d3",
    )
    assert out.returncode == 2 and f"{missing}: no such file" in out.stderr, out.stderr
    out = _serve(
        [
            "--tls-cert",
            str(server_tls.cert),
            "--tls-key",
            str(server_tls.ca),  # a certificate where the key belongs
            "--port",
            "0",
        ],
        tmp_path / "d4",
    )
    assert out.returncode == 2 and "not a certificate and its key" in out.stderr, out.stderr


def test_insecure_http_is_allowed_off_loopback_only_when_asked_and_then_warned(caplog):
    from drift.api.server import ServeError, check_transport
    from drift.orchestrator.settings import Settings

    with pytest.raises(ServeError):
        check_transport(Settings(), "192.0.2.10")
    check_transport(Settings(), "::1")
    check_transport(Settings(), "127.0.0.5")
    with caplog.at_level("WARNING"):
        check_transport(Settings(insecure_http=True), "192.0.2.10")
    assert "plain HTTP on 192.0.2.10" in caplog.text


def _handshake(port: int, ctx: ssl.SSLContext) -> tuple[str, str]:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            return tls.version(), tls.cipher()[0]


# --- end to end --------------------------------------------------------------------------------


def _node_client(net: LocalNetwork, pem: Path | None) -> httpx.Client:
    ctx = ssl.create_default_context(cafile=str(net.tls.ca))
    if pem is not None:
        ctx.load_cert_chain(str(pem))
    return httpx.Client(base_url=net.base + "/api/v1", verify=ctx, timeout=10)


def _serial(pem: Path) -> str:
    return format(x509.load_pem_x509_certificate(pem.read_bytes()).serial_number, "x")


def test_a_network_over_tls_with_node_certificates_renewal_and_revocation(tmp_path, server_tls):
    nodes = ["a", "b"]
    with LocalNetwork(
        tmp_path / "net",
        SCENARIO,
        nodes,
        tls=server_tls,
        # short enough that the agents renew during this test (at half of it)
        env={"DRIFT_NODE_CERTIFICATE_VALIDITY_S": "60", "DRIFT_AUTH_CACHE_S": "0"},
    ) as net:
        port = net.port
        # -- what the server accepts: TLS 1.2+, ECDHE with AEAD only
        modern = ssl.create_default_context(cafile=str(server_tls.ca))
        version, _ = _handshake(port, modern)
        assert version in ("TLSv1.2", "TLSv1.3")
        tls12 = ssl.create_default_context(cafile=str(server_tls.ca))
        tls12.maximum_version = ssl.TLSVersion.TLSv1_2
        version, cipher = _handshake(port, tls12)
        assert version == "TLSv1.2" and cipher.startswith("ECDHE-"), cipher
        assert "GCM" in cipher or "CHACHA20" in cipher, cipher
        cbc = ssl.create_default_context(cafile=str(server_tls.ca))
        cbc.maximum_version = ssl.TLSVersion.TLSv1_2
        cbc.set_ciphers("ECDHE-ECDSA-AES128-SHA256:ECDHE-ECDSA-AES256-SHA:AES128-SHA")
        with pytest.raises(ssl.SSLError):
            _handshake(port, cbc)
        # (this machine's OpenSSL speaks TLS 1.1 when asked to: the server is what refuses)
        old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        old.load_verify_locations(str(server_tls.ca))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            old.minimum_version = ssl.TLSVersion.TLSv1
            old.maximum_version = ssl.TLSVersion.TLSv1_1
        old.set_ciphers("ALL:@SECLEVEL=0")
        with pytest.raises(ssl.SSLError):
            _handshake(port, old)

        # -- the agents enrolled with certificates and use them (HTTP and a wss:// channel)
        pems = {n: tmp_path / "net" / f"node-{n}" / "node.pem" for n in nodes}
        enrolled = {n: _serial(p) for n, p in pems.items()}
        first_a = tmp_path / "a-enrolled.pem"  # node a's first certificate, kept aside
        first_a.write_bytes(pems["a"].read_bytes())
        os.chmod(first_a, 0o600)
        listed = {n["name"]: n for n in net.api("GET", "/nodes")}
        for n in nodes:
            assert listed[n]["cert_serial"] == enrolled[n]
        wait_for(
            lambda: all("node channel open: wss://" in net.log_text(f"node-{n}") for n in nodes),
            30,
            "both agents' channels over wss://",
        )
        # ... and send their frames over CurveZMQ with the key pair each made
        curve_files = {n: tmp_path / "net" / f"node-{n}" / "curve.key_secret" for n in nodes}
        first_keys = {n: curve.load_or_create(f)[0] for n, f in curve_files.items()}
        for n in nodes:
            assert "(CurveZMQ)" in net.log_text(f"node-{n}")
            with _node_client(net, pems[n]) as as_n:
                plane = as_n.get(f"/nodes/{net.node_uuid[n]}/data-plane").json()
            assert plane["security"] == "curve"
            assert plane["node_public_key"] == first_keys[n].public
        server_key = plane["server_public_key"]

        job_id = net.submit({**SCAN, "node_count": 2})
        job = net.wait_job(job_id, timeout_s=180)
        assert job["status"] == "completed", job
        for n in nodes:
            assert len(net.spectrum(job_id, n)) >= 2 * 4

        a_id, b_id = net.node_uuid["a"], net.node_uuid["b"]
        credential = json.loads((tmp_path / "net" / "node-a" / "credential.json").read_text())
        beat = {"health": {"cpu_percent": 1.0, "running_jobs": 0}}

        # -- over TLS the credential alone is not enough; another node's certificate is not
        with _node_client(net, None) as bare:
            r = bare.post(
                f"/nodes/{a_id}/heartbeat",
                json=beat,
                headers={"X-Node-Token": credential["credential"]},
            )
            assert r.status_code == 401 and "client certificate" in r.json()["detail"], r.text
        with _node_client(net, pems["a"]) as as_a:
            r = as_a.post(f"/nodes/{b_id}/heartbeat", json=beat)
            assert r.status_code == 403, r.text
        # -- a certificate from a CA that is not the coordinator's fails the handshake
        rogue_key, rogue_ca = _test_ca(tmp_path / "rogue")
        rogue_cert, rogue_key_path = _leaf(
            tmp_path / "rogue", a_id, rogue_key, rogue_ca, server=False
        )
        ctx = ssl.create_default_context(cafile=str(server_tls.ca))
        ctx.load_cert_chain(str(rogue_cert), str(rogue_key_path))
        with httpx.Client(base_url=net.base + "/api/v1", verify=ctx, timeout=10) as rogue:
            with pytest.raises(httpx.TransportError):
                rogue.post(f"/nodes/{a_id}/heartbeat", json=beat).raise_for_status()

        # -- the agents renew at half of their 60 s and keep working with the new certificate
        def renewed():
            return all(_serial(p) != enrolled[n] for n, p in pems.items())

        wait_for(renewed, 90, "both agents to renew their certificates", 1.0)
        for n in nodes:
            assert "certificate renewed" in net.log_text(f"node-{n}")

        def recorded():
            rows = {n["name"]: n for n in net.api("GET", "/nodes")}
            return all(rows[n]["cert_serial"] == _serial(pems[n]) for n in nodes) and rows

        rows = wait_for(recorded, 30, "the new serials on record")
        assert all(rows[n]["status"] == "online" for n in nodes)
        # the data-plane key was rotated with the certificate: a new pair on the node, its
        # public half on record
        new_keys = {n: curve.load_or_create(f)[0] for n, f in curve_files.items()}
        for n in nodes:
            assert new_keys[n].public != first_keys[n].public
            with _node_client(net, pems[n]) as as_n:
                plane = as_n.get(f"/nodes/{net.node_uuid[n]}/data-plane").json()
            assert plane["node_public_key"] == new_keys[n].public
        # a handshake with the old key is refused (a key no node holds)
        _collector_refuses(net, server_key, first_keys["a"])
        # once renewed, the earlier certificate (still within its validity) is refused
        with _node_client(net, first_a) as as_old_a:
            r = as_old_a.post(f"/nodes/{a_id}/heartbeat", json=beat)
            assert r.status_code == 401 and "not current" in r.json()["detail"], r.text
        job_id = net.submit({**SCAN, "node_count": 2})
        assert net.wait_job(job_id, timeout_s=180)["status"] == "completed"

        # -- revoking node b: refused on HTTP and the channel, its work goes elsewhere
        before_revoke = pems["b"].read_bytes()
        revoked = net.api("POST", f"/nodes/{b_id}/revoke")
        assert revoked["revoked_at"] is not None
        b_pem = tmp_path / "b-copy.pem"
        b_pem.write_bytes(before_revoke)
        os.chmod(b_pem, 0o600)
        with _node_client(net, b_pem) as as_b:
            r = as_b.post(f"/nodes/{b_id}/heartbeat", json=beat)
            assert r.status_code == 401 and "revoked" in r.json()["detail"], r.text
            csr = NodeIdentity(tmp_path / "z").request("z")
            r = as_b.post(f"/nodes/{b_id}/certificate", json={"csr": csr})
            assert r.status_code == 401, r.text
        ws_ctx = ssl.create_default_context(cafile=str(server_tls.ca))
        ws_ctx.load_cert_chain(str(b_pem))
        url = net.base.replace("https://", "wss://") + f"/api/v1/nodes/{b_id}/channel"
        with connect(url, ssl=ws_ctx, open_timeout=10) as ws:
            with pytest.raises(Exception) as closed:
                ws.recv(timeout=10)
            assert getattr(closed.value, "rcvd", None) is not None
            assert closed.value.rcvd.code == CLOSE_UNAUTHORIZED

        def offline():
            return net.api("GET", f"/nodes/{b_id}")["status"] == "offline"

        wait_for(offline, 30, "the revoked node to go offline")
        # ... and on the data plane: its current Curve key is refused at the handshake
        _collector_refuses(net, server_key, new_keys["b"])
        # the agent is told why, on its channel and over HTTP
        wait_for(
            lambda: (
                "the node was revoked" in net.log_text("node-b")
                and "heartbeat refused: 401" in net.log_text("node-b")
            ),
            30,
            "node b's agent to hear that it was revoked",
        )
        # the other node still works
        job_id = net.submit({**SCAN, "node_count": 1})
        job = net.wait_job(job_id, timeout_s=180)
        assert job["status"] == "completed"
        assert {a["node_id"] for a in job["assignments"]} == {a_id}


def _collector_refuses(net: LocalNetwork, server_key: str, keys: KeyPair) -> None:
    """A Curve client of the collector with these keys is refused at its handshake (counted
    as a key no node holds). The collector reads the nodes' keys again every 5 s: until it
    has, a new connection may still get in, so each try is a new connection."""
    before = net.metric("drift_data_plane_handshakes_total", result="unknown_key")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        sock = zmq.Context.instance().socket(zmq.PUSH)
        sock.setsockopt(zmq.LINGER, 0)
        make_client(sock, server_key, keys)
        sock.connect(f"tcp://127.0.0.1:{net.collector_port}")
        time.sleep(1.0)
        sock.close()
        if net.metric("drift_data_plane_handshakes_total", result="unknown_key") > before:
            return
    raise AssertionError("the collector still takes the key after 30 s")


def test_drift_ca_issues_a_server_certificate_that_openssl_verifies_and_never_overwrites(tmp_path):
    (tmp_path / "c.yaml").write_text(f"data_dir: {tmp_path / 'var'}\n")

    def ca(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "drift.cli", "ca", "--config", str(tmp_path / "c.yaml"), *args],
            capture_output=True,
            text=True,
            timeout=60,
        )

    out = ca("server-cert", "coordinator.example.org", "192.0.2.10", "--out", str(tmp_path / "t"))
    assert out.returncode == 0, out.stderr
    shown = ca("show")
    assert shown.returncode == 0 and shown.stdout.startswith("-----BEGIN CERTIFICATE-----")
    (tmp_path / "ca.crt").write_text(shown.stdout)
    crt = tmp_path / "t" / "server.crt"
    ok = _openssl_verify(tmp_path / "ca.crt", crt, "sslserver")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    text = subprocess.run(
        ["openssl", "x509", "-in", str(crt), "-noout", "-ext", "subjectAltName"],
        capture_output=True,
        text=True,
    ).stdout
    assert "DNS:coordinator.example.org" in text and "IP Address:192.0.2.10" in text
    # a server certificate is no client certificate
    assert _openssl_verify(tmp_path / "ca.crt", crt, "sslclient").returncode != 0
    assert os.stat(tmp_path / "t" / "server.key").st_mode & 0o777 == 0o600
    before = crt.read_bytes()
    again = ca("server-cert", "other", "--out", str(tmp_path / "t"))
    assert again.returncode == 2 and "exists" in again.stderr
    assert crt.read_bytes() == before


def _enroll_with_csr(net: LocalNetwork, identity: NodeIdentity, name: str) -> dict:
    token = net.api("POST", "/nodes/enrollment-tokens")["token"]
    r = net.http.post(
        "/nodes/enroll",
        json={
            "token": token,
            "name": name,
            "location": {"lat_deg": 50.0, "lon_deg": 8.0},
            "devices": [
                {
                    "driver": "rtlsdr",
                    "freq_min_hz": 24e6,
                    "freq_max_hz": 1.7e9,
                    "max_bandwidth_hz": 2.4e6,
                }
            ],
            "csr": identity.request(name),
        },
    )
    assert r.status_code == 201, r.text
    out = r.json()
    identity.store(out["certificate"]["certificate"], out["certificate"]["ca_certificate"])
    return out


@pytest.mark.parametrize("proxy", ["127.0.0.1", "192.0.2.1"])
def test_behind_a_reverse_proxy_the_certificate_header_counts_only_from_trusted_proxies(
    tmp_path, proxy
):
    header = "X-Client-Cert"
    with LocalNetwork(
        tmp_path / "net",
        SCENARIO,
        [],
        env={
            "DRIFT_CLIENT_CERT_HEADER": header,
            "DRIFT_TRUSTED_PROXIES": json.dumps([proxy]),
            "DRIFT_AUTH_CACHE_S": "0",
        },
    ) as net:
        node = NodeIdentity(tmp_path / "node")
        out = _enroll_with_csr(net, node, "proxied")
        node_id = out["node_id"]
        leaf = node.pem_path.read_text().split("-----END CERTIFICATE-----")[0]
        leaf += "-----END CERTIFICATE-----\n"
        escaped = urllib.parse.quote(leaf, safe="")  # as nginx's $ssl_client_escaped_cert
        beat = {"health": {"cpu_percent": 1.0, "running_jobs": 0}}
        url = f"/nodes/{node_id}/heartbeat"
        with_cert = net.http.post(url, json=beat, headers={header: escaped})
        token_only = net.http.post(url, json=beat, headers={"X-Node-Token": out["credential"]})
        # a certificate from another CA in the header, as a misconfigured proxy would pass it
        rogue_key, rogue_ca = _test_ca(tmp_path / "rogue")
        rogue_cert, _ = _leaf(tmp_path / "rogue", node_id, rogue_key, rogue_ca, server=False)
        rogue = net.http.post(
            url,
            json=beat,
            headers={header: urllib.parse.quote(rogue_cert.read_text(), safe="")},
        )
        if proxy == "127.0.0.1":  # the test's requests come from the trusted proxy
            assert with_cert.status_code == 200, with_cert.text
        else:  # from an address that is no proxy: the header is ignored
            assert with_cert.status_code == 401, with_cert.text
        # with a certificate header configured, nodes must present certificates
        assert token_only.status_code == 401 and "certificate" in token_only.text
        assert rogue.status_code == 401, rogue.text
