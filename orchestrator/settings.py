"""Coordinator settings, read from the environment (prefix ``DRIFT_``) when constructed.

Nothing is read at import time: build a :class:`Settings` where the process starts (``drift serve``)
or in a test, and pass it down.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import secrets
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from drift.curve import KeyPair, is_key, load_or_create
from drift.fileperm import create_private, private_dir, private_file

log = logging.getLogger(__name__)

#: Values that mean "someone copied the example"; refused outside development.
PLACEHOLDER_SECRETS = frozenset({"", "changethis", "changeme", "secret", "password", "drift"})
MIN_SECRET_LENGTH = 32


class Settings(BaseSettings):
    """Everything the coordinator needs to run; defaults give an embedded single-machine setup."""

    model_config = SettingsConfigDict(env_prefix="DRIFT_", extra="ignore")

    environment: Literal["development", "production"] = "production"
    data_dir: Path = Path("./var")
    #: SQLAlchemy URL; default: a SQLite file in ``data_dir``.
    database_url: str | None = None
    #: JWT signing key; default: a random key kept in ``data_dir/secret_key``.
    secret_key: SecretStr | None = None
    access_token_expire_s: int = Field(default=3600, gt=0)
    auto_migrate: bool = True
    #: at start, how long to wait for the database and Redis to accept connections (a
    #: container stack starts them together), retrying with back-off; 0 = fail at once
    startup_wait_s: float = Field(default=0.0, ge=0, le=3600)

    #: The user created on first start when no user exists.
    admin_username: str = "admin"
    #: Its password; default: generated and written to ``data_dir/initial-admin-password``.
    admin_password: SecretStr | None = None

    argon2_time_cost: int = Field(default=3, ge=1)
    argon2_memory_kib: int = Field(default=65536, ge=8)
    #: password checks (argon2) run this many at a time, in threads of their own (each
    #: already uses several cores), so a flood of log-ins leaves heartbeats and dispatch
    #: their share of the machine
    password_check_workers: int = Field(default=1, ge=1, le=64)
    #: log-ins running or waiting for a password check at once; one more is answered 503
    #: with Retry-After
    password_check_queue: int = Field(default=64, ge=1, le=100_000)
    #: how much lower the CPU priority of password checks is than the rest of the process
    #: (a nice increment, Linux: per thread); 0 = the same
    password_check_nice: int = Field(default=10, ge=0, le=19)

    #: failed log-ins of one account within ``login_window_s`` before further tries of it
    #: are refused (429 with Retry-After, the password not even checked) until the window
    #: ends; shared by the replicas through Redis when ``redis_url`` is set
    login_max_failures: int = Field(default=20, ge=1, le=1_000_000)
    #: the same, per client address (several users may share one)
    login_max_failures_per_address: int = Field(default=100, ge=1, le=1_000_000)
    #: the window opens with its first failure and lasts this long
    login_window_s: float = Field(default=60.0, gt=0, le=24 * 3600)

    #: the largest request body taken, bytes (JSON, forms); larger ones get 413 before they
    #: are read (by their Content-Length, or as soon as a chunked body passes it)
    max_body_bytes: int = Field(default=1 << 20, ge=1024, le=1 << 30)
    #: the same for flowgraph uploads (POST /api/v1/flowgraphs: a .grc of up to 1 MiB, as
    #: JSON text)
    max_upload_bytes: int = Field(default=4 << 20, ge=1024, le=1 << 30)

    enrollment_token_ttl_s: int = Field(default=24 * 3600, gt=0)
    #: how long a node certificate is valid; nodes renew when half of it is left, so a node
    #: that stays away longer than this must enroll again
    node_certificate_validity_s: int = Field(default=7 * 86400, ge=60, le=366 * 86400)
    #: where the CA that signs node certificates keeps its key and certificate (replicas
    #: share it); default: ``data_dir/ca``
    ca_dir: Path | None = None

    #: TLS for the REST API and the node channel (``drift serve --tls-cert/--tls-key``): the
    #: server's certificate chain and key, PEM
    tls_cert: Path | None = None
    tls_key: Path | None = None
    #: CA file client certificates are checked against; default: the coordinator's own CA
    client_ca: Path | None = None
    #: serve plain HTTP on an address that is not loopback (behind a reverse proxy that
    #: terminates TLS, or a trusted network); refused otherwise
    insecure_http: bool = False
    #: behind a reverse proxy that terminates TLS: the request header in which it passes the
    #: verified client certificate (URL-encoded PEM, nginx's ``$ssl_client_escaped_cert``),
    #: read only from ``trusted_proxies``; with it, nodes must present certificates
    client_cert_header: str | None = None
    #: addresses (or networks, CIDR) of the reverse proxies whose ``client_cert_header`` counts
    trusted_proxies: list[str] = Field(default_factory=list)
    heartbeat_timeout_s: float = Field(default=60.0, gt=0)
    scheduler_interval_s: float = Field(default=2.0, gt=0)

    #: ZeroMQ endpoint the collector binds (PULL; node agents push frames to it); "" = none.
    #: Port 0 picks a free port (logged).
    collector_bind: str = "tcp://127.0.0.1:5560"
    #: how nodes' relays reach the collector: "curve" (CurveZMQ: encrypted, and every frame
    #: attributed to the enrolled node whose key sent it; other peers cannot connect) or
    #: "insecure" (plaintext: anyone who reaches the collector's port can send frames, which
    #: are attributed by their metadata; a closed network, or a test bench)
    data_plane: Literal["curve", "insecure"] = "curve"
    #: the collector's Curve secret key (Z85, 40 characters); default: a key pair made once
    #: and kept in data_dir/curve-server.key_secret. Replicas that give nodes the same
    #: collector must share it
    curve_secret_key: SecretStr | None = None
    #: the largest frame the collector takes (its three parts together): a larger one is
    #: refused and counted, and a single part over it is never read (ZeroMQ drops the
    #: connection that sends it). 2^20 float32 bins, the largest PSD, take 4 MiB
    max_frame_bytes: int = Field(default=8 << 20, ge=64 << 10, le=1 << 30)
    #: the most payload items (PSD bins, IQ samples, detections) a frame may announce
    max_frame_bins: int = Field(default=1 << 20, ge=1, le=1 << 24)
    #: frames of a job that ended (completed, failed, cancelled) are still taken this long
    #: after it ended (a node's spool may still hold some); later ones are refused
    data_plane_job_grace_s: float = Field(default=300.0, ge=0, le=30 * 24 * 3600)
    #: how long the collector reuses what it read of a job (status, its nodes) before
    #: reading it again; a node it does not find among a job's nodes is looked up again at
    #: once if what it knows is older than a fifth of this
    data_plane_cache_s: float = Field(default=1.0, gt=0, le=60)
    #: sequence tracking: at most this many (job, node, frame type) streams (the least
    #: recently used is forgotten), each with at most this many ranges of missing frames
    sequence_max_streams: int = Field(default=4096, ge=1, le=1 << 20)
    sequence_max_hole_ranges: int = Field(default=64, ge=1, le=1 << 16)
    #: Redis shared by coordinator replicas (redis://host:6379/0): exactly-once delivery
    #: marks and the scheduler's tick lease; none: in-process (one coordinator)
    redis_url: str | None = None
    #: bearer token Prometheus may scrape /metrics with (viewers' credentials work too)
    metrics_token: SecretStr | None = None
    #: where PSD frames, detections and IQ captures go: none = the embedded SQLite file in
    #: data_dir; influxdb://host:8086/drift for InfluxDB 1.x (1.6.7 and later);
    #: influxdb2://host:8086/BUCKET?org=ORG for InfluxDB 2.x (or 1.8+, org "-")
    timeseries_url: str | None = None
    #: API token for an influxdb2:// store (1.8: "user:password")
    timeseries_token: SecretStr | None = None

    #: how long a replica may reuse what it read about a caller (user, role, API key); a
    #: user disabled or a key revoked on another replica is refused after at most this long
    #: (on the same replica at once); 0 = look up every request
    auth_cache_s: float = Field(default=1.0, ge=0, le=60)
    #: how long GET /api/v1/nodes may serve the list it rendered last (per filter); 0 = never
    node_list_cache_s: float = Field(default=1.0, ge=0, le=60)
    #: node channels: how often this replica looks for assignment changes it was not told
    #: about (made by another replica, or a retry's back-off ending); its own are pushed at once
    dispatch_poll_s: float = Field(default=1.0, gt=0, le=60)

    #: a running job is ended this long after its duration_s (late nodes are cancelled)
    job_grace_s: float = Field(default=120.0, ge=0)

    #: how long before a timed job's common start (direction finding) its nodes must have
    #: their assignments, beyond the dispatch latency measured for them: the node launches
    #: its flowgraph ``capture_prestart_s`` (node.yaml, 3 s by default) ahead, plus a margin
    capture_lead_s: float = Field(default=4.0, ge=0.1, le=3600)
    #: the dispatch latency assumed for a node whose first deliveries were never measured
    dispatch_latency_default_s: float = Field(default=1.0, ge=0, le=3600)

    #: processes that run job analyses (TDOA, detection merging); 0 runs them in a thread of
    #: the coordinator's process instead
    analysis_workers: int = Field(default=1, ge=0, le=64)
    #: how long a replica's claim on a job's analysis holds before another replica may take
    #: it over (it is renewed while the analysis runs)
    analysis_lease_s: float = Field(default=120.0, gt=0, le=24 * 3600)
    #: a job's analysis waits at most this long for the frames its nodes reported sent to be
    #: stored (then it runs on what arrived, and says so)
    analysis_wait_s: float = Field(default=30.0, ge=0, le=3600)
    #: tries before a job whose analysis keeps dying (its worker killed) is failed
    analysis_max_attempts: int = Field(default=3, ge=1, le=20)
    #: the web console's map tiles: a URL template with {z}/{x}/{y} (e.g. a tile server on the
    #: operator's own network); none (default): no basemap, the node and result layers only, and
    #: the console makes no request beyond the coordinator
    console_tile_url: str | None = Field(default=None, max_length=500, pattern=r"^https?://")
    console_tile_attribution: str = Field(default="", max_length=500)

    assignment_max_attempts: int = Field(default=3, ge=1, le=20)
    retry_backoff_initial_s: float = Field(default=5.0, ge=0)
    retry_backoff_max_s: float = Field(default=120.0, ge=0)

    @model_validator(mode="after")
    def _refuse_placeholder_secret(self) -> Settings:
        if self.secret_key is None or self.environment == "development":
            return self
        value = self.secret_key.get_secret_value()
        if value.lower() in PLACEHOLDER_SECRETS or len(value) < MIN_SECRET_LENGTH:
            raise ValueError(
                "DRIFT_SECRET_KEY is a placeholder or shorter than "
                f"{MIN_SECRET_LENGTH} characters; set a real secret (or leave it unset to have "
                "one generated in the data directory)"
            )
        return self

    @model_validator(mode="after")
    def _tls_pair(self) -> Settings:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key go together: give both or neither")
        for entry in self.trusted_proxies:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(
                    f"trusted_proxies: {entry!r} is not an address or a network (CIDR)"
                ) from None
        return self

    @property
    def ca_path(self) -> Path:
        return self.ca_dir or self.data_dir / "ca"

    @model_validator(mode="after")
    def _curve_key_is_a_key(self) -> Settings:
        if self.curve_secret_key is not None and not is_key(
            self.curve_secret_key.get_secret_value()
        ):
            raise ValueError(
                "DRIFT_CURVE_SECRET_KEY is not a Curve secret key (40 characters of Z85)"
            )
        return self

    @property
    def sqlalchemy_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'coordinator.db').resolve()}"

    def signing_key(self) -> str:
        """The JWT key: the configured one, or one kept (created once) in the data directory."""
        if self.secret_key is not None:
            return self.secret_key.get_secret_value()
        path = self.data_dir / "secret_key"
        if write_private(path, secrets.token_urlsafe(48)):
            log.info("generated a signing key in %s", path)
        else:
            private_file(path)  # one an older version left readable
        return path.read_text().strip()

    def curve_server_keys(self) -> KeyPair:
        """The collector's Curve key pair: from ``curve_secret_key``, or the one kept (made
        once) in the data directory."""
        if self.curve_secret_key is not None:
            return KeyPair.from_secret(self.curve_secret_key.get_secret_value())
        pair, made = load_or_create(self.data_dir / "curve-server.key_secret")
        if made:
            log.info("made the collector's Curve key pair in %s", self.data_dir)
        return pair


def write_private(path: Path, text: str) -> bool:
    """Create a file only its owner can read; False (and nothing written) if it exists."""
    private_dir(path.parent)
    return create_private(path, text + "\n")


def load_settings(config: str | Path | None = None) -> Settings:
    """Settings from a YAML file (keys as the field names, e.g. ``database_url``), with the
    environment (``DRIFT_*``) taking precedence over the file, and defaults under both."""
    if config is None:
        return Settings()
    from drift import yamlconf

    path = Path(config)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ValueError(f"{path}: {exc.strerror}") from None
    root, data = yamlconf.parse(text, str(path))
    unknown = sorted(set(data) - set(Settings.model_fields))
    if unknown:
        line = yamlconf.line_of(root, (unknown[0],)) or 1
        raise ValueError(
            f"{path}:{line}: {unknown[0]}: not a setting (known: "
            f"{', '.join(sorted(Settings.model_fields))})"
        )
    from_env = {k for k in data if f"DRIFT_{k.upper()}" in os.environ}
    try:
        return Settings(**{k: v for k, v in data.items() if k not in from_env})
    except ValidationError as exc:
        raise yamlconf.describe(exc, root, str(path)) from None
