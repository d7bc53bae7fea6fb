"""Log-ins and sessions: failed log-ins throttled per account and per address (in memory and
shared through Redis), logged as security events without the password; passwords capped in
length before any hashing; a password change, a disable or a role change revokes the bearer
tokens issued before it; API keys expire and admins see every user's keys."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from drift.api import create_app
from drift.localnet import wait_for

from .conftest import ADMIN_PASSWORD, PASSWORD, Api, make_settings

WINDOW_S = 2.0


def _login(client: TestClient, username: str, password: str):
    return client.post("/api/v1/auth/token", data={"username": username, "password": password})


@pytest.fixture
def throttled(tmp_path: Path, db_url: str):
    """An app whose log-in window is short enough to wait out in a test."""
    settings = make_settings(
        tmp_path / "data", db_url, login_window_s=WINDOW_S, login_max_failures=20
    )
    with TestClient(create_app(settings)) as client:
        yield Api(client)


def test_the_21st_wrong_password_in_a_window_gets_429_and_the_right_one_works_after_it(
    throttled: Api, caplog
):
    client = throttled.client
    guessed = "wrong-guess-number-"
    with caplog.at_level("DEBUG"):
        started = time.monotonic()
        for i in range(20):
            r = _login(client, "admin", f"{guessed}{i}")
            assert r.status_code == 401, (i, r.text)
        r = _login(client, "admin", f"{guessed}20")
        assert r.status_code == 429, r.text
        retry_after = int(r.headers["Retry-After"])
        assert 1 <= retry_after <= WINDOW_S
        # throttled: the right password is not even checked until the window ends
        assert _login(client, "admin", ADMIN_PASSWORD).status_code == 429
        assert time.monotonic() - started < WINDOW_S, "the test was too slow for its window"
    security = [r for r in caplog.records if r.name == "drift.security"]
    assert sum("log-in failed" in r.getMessage() for r in security) == 20
    assert any("log-in refused" in r.getMessage() and "admin" in r.getMessage() for r in security)
    # logged, but never the password
    assert guessed not in caplog.text and ADMIN_PASSWORD not in caplog.text
    time.sleep(retry_after + 0.1)
    assert _login(client, "admin", ADMIN_PASSWORD).status_code == 200


def test_failures_are_counted_per_address_across_accounts(tmp_path: Path, db_url: str):
    settings = make_settings(
        tmp_path / "data",
        db_url,
        login_window_s=60,
        login_max_failures=1000,
        login_max_failures_per_address=5,
    )
    with TestClient(create_app(settings)) as client:
        for i in range(5):
            assert _login(client, f"user{i}", "nope-nope-nope").status_code == 401
        r = _login(client, "someone-else", "nope-nope-nope")
        assert r.status_code == 429 and int(r.headers["Retry-After"]) > 0


def test_replicas_on_one_redis_share_the_count(tmp_path: Path, sqlite_template: Path, redis_url):
    """Guesses spread over two replicas meet one limit."""
    import redis

    redis.Redis.from_url(redis_url).flushdb()
    db = tmp_path / "coordinator.db"
    db.write_bytes(sqlite_template.read_bytes())
    apps = [
        create_app(
            make_settings(
                tmp_path / f"data{i}",
                f"sqlite:///{db}",
                redis_url=redis_url,
                login_max_failures=6,
                login_window_s=60,
            )
        )
        for i in range(2)
    ]
    with TestClient(apps[0]) as one, TestClient(apps[1]) as two:
        for i in range(6):
            assert _login((one, two)[i % 2], "admin", "wrong-password-x").status_code == 401
        for client in (one, two):
            r = _login(client, "admin", ADMIN_PASSWORD)
            assert r.status_code == 429, r.text


def test_an_overlong_password_is_refused_before_hashing(api: Api, monkeypatch):
    runtime = api.client.app.state.runtime
    hashed = []
    real = runtime.passwords.verify
    monkeypatch.setattr(
        runtime.passwords, "verify", lambda h, p: hashed.append(len(p)) or real(h, p)
    )
    r = _login(api.client, "admin", "x" * 257)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "password"]
    assert hashed == []
    # and one that fits is checked as ever
    assert _login(api.client, "admin", "x" * 256).status_code == 401 and hashed == [256]
    r = api.client.post(
        "/api/v1/users",
        json={"username": "long", "password": "p" * 257},
        headers=api.admin,
    )
    assert r.status_code == 422


def _bearer(api: Api, username: str, password: str) -> dict[str, str]:
    r = _login(api.client, username, password)
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def _new_user(api: Api, username: str, role: str = "operator") -> str:
    r = api.client.post(
        "/api/v1/users",
        json={"username": username, "password": PASSWORD, "role": role},
        headers=api.admin,
    )
    assert r.status_code == 201, r.text
    return r.json()["id"]


def test_a_password_change_revokes_earlier_tokens_which_cannot_mint_keys(api: Api):
    user_id = _new_user(api, "alice")
    old = _bearer(api, "alice", PASSWORD)
    assert api.client.get("/api/v1/users/me", headers=old).status_code == 200
    r = api.client.patch(
        f"/api/v1/users/{user_id}", json={"password": "a-brand-new-password"}, headers=api.admin
    )
    assert r.status_code == 200, r.text
    r = api.client.get("/api/v1/users/me", headers=old)
    assert r.status_code == 401 and "revoked" in r.text
    r = api.client.post("/api/v1/api-keys", json={"name": "stolen"}, headers=old)
    assert r.status_code == 401
    assert _login(api.client, "alice", PASSWORD).status_code == 401
    new = _bearer(api, "alice", "a-brand-new-password")
    assert api.client.get("/api/v1/users/me", headers=new).status_code == 200
    assert api.client.post("/api/v1/api-keys", json={"name": "k"}, headers=new).status_code == 201


@pytest.mark.parametrize("change", [{"disabled": True}, {"role": "viewer"}])
def test_a_disable_or_a_role_change_revokes_earlier_tokens(api: Api, change):
    user_id = _new_user(api, "bob")
    old = _bearer(api, "bob", PASSWORD)
    r = api.client.patch(f"/api/v1/users/{user_id}", json=change, headers=api.admin)
    assert r.status_code == 200, r.text
    if change.get("disabled"):
        api.client.patch(f"/api/v1/users/{user_id}", json={"disabled": False}, headers=api.admin)
    # even once re-enabled, the token from before stays revoked
    assert api.client.get("/api/v1/users/me", headers=old).status_code == 401
    fresh = _bearer(api, "bob", PASSWORD)
    assert api.client.get("/api/v1/users/me", headers=fresh).status_code == 200
    # a change of permissions alone leaves tokens as they are
    api.client.patch(f"/api/v1/users/{user_id}", json={"permissions": []}, headers=api.admin)
    assert api.client.get("/api/v1/users/me", headers=fresh).status_code == 200


def test_api_keys_expire_and_admins_list_every_users_keys(api: Api):
    operator = api.user("operator")
    soon = (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=2)).isoformat()
    r = api.client.post(
        "/api/v1/api-keys", json={"name": "short", "expires_at": soon}, headers=operator
    )
    assert r.status_code == 201, r.text
    short = {"X-API-Key": r.json()["key"]}
    r = api.client.post("/api/v1/api-keys", json={"name": "lasting"}, headers=api.admin)
    assert r.status_code == 201
    assert api.client.get("/api/v1/users/me", headers=short).status_code == 200

    listing = api.client.get("/api/v1/api-keys/all", headers=api.admin)
    assert listing.status_code == 200, listing.text
    keys = {k["name"]: k for k in listing.json()}
    assert keys["short"]["username"] == "operator-plain" and keys["lasting"]["username"] == "admin"
    assert "key" not in keys["short"] and not keys["short"]["expired"]
    assert api.client.get("/api/v1/api-keys/all", headers=operator).status_code == 403

    wait_for(
        lambda: api.client.get("/api/v1/users/me", headers=short).status_code == 401,
        10,
        "the key to expire",
    )
    keys = {k["name"]: k for k in api.client.get("/api/v1/api-keys/all", headers=api.admin).json()}
    assert keys["short"]["expired"] and not keys["lasting"]["expired"]
    # an admin may delete anyone's key
    r = api.client.delete(f"/api/v1/api-keys/{keys['short']['id']}", headers=api.admin)
    assert r.status_code == 204


def test_password_checks_run_a_few_at_a_time_and_refuse_past_their_queue():
    import asyncio
    import threading

    from drift.api.security import Busy, PasswordChecks

    running, most = 0, 0
    lock = threading.Lock()
    release = threading.Event()

    class Slow:
        def verify(self, stored_hash, password):
            nonlocal running, most
            with lock:
                running += 1
                most = max(most, running)
            release.wait(5)
            with lock:
                running -= 1
            return True

    checks = PasswordChecks(Slow(), workers=2, max_waiting=5)

    async def flood():
        tasks = [asyncio.create_task(checks.verify("h", "p")) for _ in range(5)]
        await asyncio.sleep(0.2)
        with pytest.raises(Busy):  # a sixth while five are in
            await checks.verify("h", "p")
        release.set()
        return await asyncio.gather(*tasks)

    try:
        assert asyncio.run(flood()) == [True] * 5
    finally:
        checks.close()
    assert most == 2
