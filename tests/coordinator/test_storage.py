"""Migrations, settings and the first start."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from fastapi.testclient import TestClient
from pydantic import SecretStr, ValidationError

from drift.api import create_app
from drift.orchestrator.migrations import downgrade, upgrade
from drift.orchestrator.settings import Settings
from drift.orchestrator.storage import Base, make_engine


def test_migrations_match_the_models_and_go_both_ways(db_url: str):
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
        downgrade(db_url, "base")
        with engine.connect() as conn:
            assert MigrationContext.configure(conn).get_current_revision() is None
        upgrade(db_url)
        with engine.connect() as conn:
            assert MigrationContext.configure(conn).get_current_revision() == "0007t"
    finally:
        engine.dispose()


def test_placeholder_secret_refused_outside_development(tmp_path: Path):
    with pytest.raises(ValidationError, match="placeholder"):
        Settings(data_dir=tmp_path, secret_key=SecretStr("changethis"))
    with pytest.raises(ValidationError, match="placeholder"):
        Settings(data_dir=tmp_path, secret_key=SecretStr("short"))
    Settings(data_dir=tmp_path, secret_key=SecretStr("changethis"), environment="development")


def test_settings_from_environment(monkeypatch, tmp_path: Path):
    monkeypatch.setenv("DRIFT_DATA_DIR", str(tmp_path / "d"))
    monkeypatch.setenv("DRIFT_SECRET_KEY", "changethis")
    with pytest.raises(ValidationError):
        Settings()
    monkeypatch.delenv("DRIFT_SECRET_KEY")
    settings = Settings()
    assert settings.sqlalchemy_url == f"sqlite:///{tmp_path / 'd' / 'coordinator.db'}"


def test_first_start_without_configuration(tmp_path: Path, caplog):
    """Default SQLite in the data directory, a generated admin password in a private file."""
    settings = Settings(data_dir=tmp_path / "var", argon2_time_cost=1, argon2_memory_kib=64)
    with caplog.at_level("WARNING", logger="drift.api"), TestClient(create_app(settings)) as c:
        password_file = tmp_path / "var" / "initial-admin-password"
        assert password_file.stat().st_mode & 0o077 == 0
        assert str(password_file) in caplog.text and "/api/v1/auth/token" in caplog.text
        password = password_file.read_text().strip()
        assert password not in caplog.text
        r = c.post("/api/v1/auth/token", data={"username": "admin", "password": password})
        assert r.status_code == 200
    assert (tmp_path / "var" / "coordinator.db").exists()
    # a second start finds the admin and creates nobody
    caplog.clear()
    with caplog.at_level("WARNING", logger="drift.api"), TestClient(create_app(settings)):
        assert "created the first user" not in caplog.text


def test_yaml_settings_file_with_environment_over_it(monkeypatch, tmp_path: Path):
    from drift.orchestrator.settings import load_settings

    cfg = tmp_path / "drift.yaml"
    cfg.write_text(
        f"data_dir: {tmp_path / 'from-file'}\nheartbeat_timeout_s: 42\n"
        "collector_bind: tcp://127.0.0.1:6000\n"
    )
    monkeypatch.delenv("DRIFT_DATA_DIR", raising=False)
    monkeypatch.setenv("DRIFT_HEARTBEAT_TIMEOUT_S", "7")
    s = load_settings(cfg)
    assert s.data_dir == tmp_path / "from-file"
    assert s.heartbeat_timeout_s == 7  # the environment wins
    assert s.collector_bind == "tcp://127.0.0.1:6000"
    cfg.write_text("data_dir: /x\n\nscheduler_interval_s: -1\n")
    with pytest.raises(ValueError, match=r"drift.yaml:3: scheduler_interval_s: .*greater than 0"):
        load_settings(cfg)
    cfg.write_text("database_url: sqlite://\nno_such_setting: 1\n")
    with pytest.raises(ValueError, match=r"drift.yaml:2: no_such_setting: not a setting"):
        load_settings(cfg)
    with pytest.raises(ValueError, match="nope.yaml"):
        load_settings(tmp_path / "nope.yaml")


def test_sqlite_writers_take_turns_and_every_ending_hands_the_turn_on(tmp_path: Path):
    """The writers of one process queue for SQLite's write lock in the engine, not in SQLite's
    sleeping busy handler: concurrent read-modify-write transactions all commit, in turn, and
    the turn is handed on however a transaction ends (else every later writer would wait
    30 s)."""
    import threading

    from sqlalchemy import text

    engine = make_engine(f"sqlite:///{tmp_path / 'turns.db'}")
    turn = engine.write_turn
    with engine.begin() as c:
        c.execute(text("CREATE TABLE counter (n INTEGER NOT NULL)"))
        c.execute(text("INSERT INTO counter VALUES (0)"))
    assert not turn.locked()

    def bump(conn):
        n = conn.execute(text("SELECT n FROM counter")).scalar_one()
        conn.execute(text("UPDATE counter SET n = :n"), {"n": n + 1})

    with engine.connect() as c:  # rolled back
        c.begin()
        assert turn.locked()
        bump(c)
        c.rollback()
    assert not turn.locked()
    with pytest.raises(ValueError), engine.begin() as c:  # an error inside
        bump(c)
        raise ValueError("inside the transaction")
    assert not turn.locked()
    c = engine.connect()  # handed back with its transaction still open
    c.begin()
    bump(c)
    c.close()
    assert not turn.locked()

    errors = []

    def writer():
        try:
            for _ in range(25):
                with engine.begin() as conn:
                    bump(conn)
        except Exception as exc:  # pragma: no cover - what the assertion reports
            errors.append(exc)

    threads = [threading.Thread(target=writer) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    with engine.connect() as c:
        assert c.execute(text("SELECT n FROM counter")).scalar_one() == 200  # none lost
    assert not turn.locked()
    engine.dispose()
