"""Hostile input on every route answers 4xx, never 5xx (a hand-made complement to the schema fuzz)."""

from __future__ import annotations

import pytest

from .conftest import SCAN, Api

BODIES = [
    b"",
    b"not json",
    b"[]",
    b"null",
    b'{"type": "spectrum_scan", "start_freq_hz": NaN}',
    b'{"type": "spectrum_scan", "start_freq_hz": 1e309}',
    b'{"type": "spectrum_scan", "priority": 100000000000000000000000000000}',
    b'{"name": "a\\u0000b", "username": "a\\u0000b", "password": "\\u0000\\u0000\\u0000\\u0000"}',
    b'{"token": "\\u0000", "name": "n", "location": {"lat_deg": 1, "lon_deg": 1}, "devices": []}',
    b'{"state": "completed", "error": "\\u0000"}',
    b'{"expires_at": "9999-12-31T23:59:59-05:00", "name": "k"}',
    b'{"ttl_s": 1e300}',
]


def routes(node_id: str) -> list[tuple[str, str]]:
    zero = "00000000-0000-0000-0000-000000000000"
    return [
        ("POST", "/api/v1/auth/token"),
        ("POST", "/api/v1/users"),
        ("PATCH", f"/api/v1/users/{zero}"),
        ("POST", "/api/v1/api-keys"),
        ("POST", "/api/v1/jobs"),
        ("POST", f"/api/v1/jobs/{zero}/cancel"),
        ("POST", "/api/v1/nodes/enrollment-tokens"),
        ("POST", "/api/v1/nodes/enroll"),
        ("POST", f"/api/v1/nodes/{node_id}/heartbeat"),
        ("POST", f"/api/v1/nodes/{node_id}/assignments/{zero}/report"),
    ]


def test_hostile_bodies(api: Api):
    node_id, node_headers = api.enroll("n", 1, 1)
    headers = {**api.admin, **node_headers, "Content-Type": "application/json"}
    for method, path in routes(node_id):
        for body in BODIES:
            r = api.client.request(method, path, content=body, headers=headers)
            assert r.status_code < 500, (method, path, body, r.text)


@pytest.mark.parametrize(
    "params",
    [
        {"offset": 10**30},
        {"limit": "1e3"},
        {"created_after": "0001-01-01T00:00:00+01:00"},
        {"node_id": "\x00"},
        {"status": "\x00"},
    ],
)
def test_hostile_queries(api: Api, params):
    r = api.client.get("/api/v1/jobs", params=params, headers=api.admin)
    assert 400 <= r.status_code < 500, r.text


def test_hostile_headers(api: Api):
    for key in ["\x7f", "a" * 129, " "]:
        r = api.client.post(
            "/api/v1/jobs", json=SCAN, headers={**api.admin, "Idempotency-Key": key}
        )
        assert r.status_code == 422, r.text
    r = api.client.get("/api/v1/jobs", headers={"Authorization": "Bearer " + "x" * 5000})
    assert r.status_code == 401
