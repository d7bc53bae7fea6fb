"""What a running API process holds: settings, database, hashers. Built in the app's lifespan."""

from __future__ import annotations

import datetime as dt
import logging
import secrets
from dataclasses import dataclass, field

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from drift.api.cache import TTLCache
from drift.api.hub import NodeHub
from drift.api.security import PasswordChecks, Passwords, Tokens
from drift.fileperm import private_dir
from drift.orchestrator.dispatch import DeliveryLedger, make_ledger
from drift.orchestrator.migrations import upgrade
from drift.orchestrator.pki import CertificateAuthority
from drift.orchestrator.settings import Settings, write_private
from drift.orchestrator.states import Role
from drift.orchestrator.storage import User, make_engine, make_session_factory
from drift.orchestrator.throttle import LoginThrottle, make_throttle
from drift.orchestrator.timeseries import TimeSeriesStore, open_configured_store
from drift.protocol import DataPlane

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    passwords: Passwords
    tokens: Tokens
    spectrum: TimeSeriesStore | None = None  # PSD frames, detections, IQ: embedded or InfluxDB
    ledger: DeliveryLedger | None = None  # first deliveries, tick lease: Redis or in-process
    #: sessions for requests that only read: on SQLite they neither wait for nor hold the
    #: write lock (the same factory as ``sessions`` on other databases)
    read_sessions: sessionmaker[Session] | None = None
    read_engine: Engine | None = None
    #: callers already looked up: (kind, credential digest) -> detached User
    principals: TTLCache | None = None
    #: rendered GET /nodes bodies by filter, and the renders in progress (so that callers who
    #: miss together share one)
    node_lists: TTLCache | None = None
    node_list_renders: dict = field(default_factory=dict)
    #: heartbeats and node channels (started with the app, in its event loop)
    hub: NodeHub | None = None
    #: signs node certificates (its key and certificate in ``settings.ca_path``)
    ca: CertificateAuthority | None = None
    #: log-ins: failed tries counted per account and address, password checks in a pool
    throttle: LoginThrottle | None = None
    password_checks: PasswordChecks | None = None
    #: the collector's Curve public key, given to nodes (none on an insecure data plane)
    curve_public_key: str | None = None

    @classmethod
    def start(cls, settings: Settings) -> Runtime:
        """Open the database (migrating it if allowed) and make sure someone can log in."""
        private_dir(settings.data_dir)
        url = settings.sqlalchemy_url
        if settings.auto_migrate:
            upgrade(url)
        engine = make_engine(url)
        runtime = cls(
            settings=settings,
            engine=engine,
            sessions=make_session_factory(engine),
            passwords=Passwords(settings.argon2_time_cost, settings.argon2_memory_kib),
            tokens=Tokens(settings.signing_key(), settings.access_token_expire_s),
        )
        if engine.dialect.name == "sqlite":
            runtime.read_engine = make_engine(url, write_lock=False)
            runtime.read_sessions = make_session_factory(runtime.read_engine)
        else:
            runtime.read_sessions = runtime.sessions
        runtime.principals = TTLCache(settings.auth_cache_s)
        runtime.node_lists = TTLCache(settings.node_list_cache_s, max_entries=16)
        runtime.spectrum = open_configured_store(settings)
        runtime.ledger = make_ledger(settings.redis_url)
        runtime.ca = CertificateAuthority.load_or_create(settings.ca_path)
        runtime.throttle = make_throttle(
            settings.redis_url,
            settings.login_max_failures,
            settings.login_max_failures_per_address,
            settings.login_window_s,
        )
        runtime.password_checks = PasswordChecks(
            runtime.passwords,
            settings.password_check_workers,
            settings.password_check_queue,
            settings.password_check_nice,
        )
        if settings.data_plane == "curve":
            runtime.curve_public_key = settings.curve_server_keys().public
        runtime.ensure_admin()
        return runtime

    def data_plane(self, node_public_key: str | None = None) -> DataPlane:
        """What a node needs to send its frames (with the key held for it)."""
        return DataPlane(
            security=self.settings.data_plane,
            server_public_key=self.curve_public_key,
            node_public_key=node_public_key,
            max_frame_bytes=self.settings.max_frame_bytes,
        )

    def close(self) -> None:
        if self.password_checks is not None:
            self.password_checks.close()
        if self.spectrum is not None:
            self.spectrum.close()
        if self.read_engine is not None:
            self.read_engine.dispose()
        self.engine.dispose()

    def ensure_admin(self) -> None:
        """With no user at all, create the admin and log how to log in."""
        settings = self.settings
        with self.sessions.begin() as session:
            if session.scalar(select(func.count()).select_from(User)):
                return
            if settings.admin_password is not None:
                password = settings.admin_password.get_secret_value()
                where = "the password in DRIFT_ADMIN_PASSWORD"
            else:
                password = secrets.token_urlsafe(18)
                path = settings.data_dir / "initial-admin-password"
                path.unlink(missing_ok=True)
                write_private(path, password)
                where = f"the password in {path.resolve()} (readable by this user only)"
            session.add(
                User(
                    username=settings.admin_username,
                    password_hash=self.passwords.hash(password),
                    role=Role.ADMIN,
                    permissions=[],
                    created_at=dt.datetime.now(dt.UTC),
                )
            )
        log.warning(
            "created the first user %r (admin); log in with %s: "
            "POST /api/v1/auth/token (OAuth2 password form) or the Authorize button at /docs",
            settings.admin_username,
            where,
        )
