"""The REST API over HTTP (httpx against the ASGI app), on SQLite and on PostgreSQL."""

from __future__ import annotations

import uuid

import pytest

from .conftest import SCAN, Api

ZERO = str(uuid.UUID(int=0))

# every route, with the least role that may use it (None: a node route or open)
USER_ROUTES = [
    ("GET", "/api/v1/users/me", None, "viewer"),
    ("GET", "/api/v1/users", None, "admin"),
    ("POST", "/api/v1/users", {"username": "x", "password": "p" * 12}, "admin"),
    ("PATCH", f"/api/v1/users/{ZERO}", {}, "admin"),
    ("GET", "/api/v1/api-keys", None, "viewer"),
    ("POST", "/api/v1/api-keys", {"name": "k"}, "viewer"),
    ("DELETE", f"/api/v1/api-keys/{ZERO}", None, "viewer"),
    ("GET", "/api/v1/api-keys/all", None, "admin"),
    ("GET", "/api/v1/jobs", None, "viewer"),
    ("POST", "/api/v1/jobs", SCAN, "operator"),
    ("GET", f"/api/v1/jobs/{ZERO}", None, "viewer"),
    ("POST", f"/api/v1/jobs/{ZERO}/cancel", None, "operator"),
    ("GET", "/api/v1/nodes", None, "viewer"),
    ("GET", f"/api/v1/nodes/{ZERO}", None, "viewer"),
    ("POST", "/api/v1/nodes/enrollment-tokens", None, "admin"),
]
NODE_ROUTES = [
    ("POST", "/api/v1/nodes/{id}/heartbeat", {}),
    ("GET", "/api/v1/nodes/{id}/assignments", None),
    ("POST", f"/api/v1/nodes/{{id}}/assignments/{ZERO}/report", {"state": "running"}),
]
RANK = ["viewer", "operator", "admin"]


def call(api: Api, method: str, path: str, body, headers=None):
    return api.client.request(method, path, json=body, headers=headers or {})


@pytest.mark.parametrize(("method", "path", "body", "least"), USER_ROUTES)
def test_user_routes_need_authentication_and_role(api: Api, method, path, body, least):
    r = call(api, method, path, body)
    assert r.status_code == 401, r.text
    assert r.headers["www-authenticate"] == "Bearer"
    assert call(api, method, path, body, {"Authorization": "Bearer nonsense"}).status_code == 401
    assert call(api, method, path, body, {"X-API-Key": "drk_nonsense"}).status_code == 401
    for role in RANK[: RANK.index(least)]:
        r = call(api, method, path, body, api.user(role))
        assert r.status_code == 403, (role, r.text)
    r = call(api, method, path, body, api.user(least))
    assert r.status_code not in (401, 403), r.text


@pytest.mark.parametrize(("method", "path", "body"), NODE_ROUTES)
def test_node_routes_need_the_node_itself(api: Api, method, path, body):
    me, my_headers = api.enroll("me", 50, 8)
    other, other_headers = api.enroll("other", 51, 8)
    url = path.format(id=me)
    assert call(api, method, url, body).status_code == 401
    assert call(api, method, url, body, {"X-Node-Token": "drn_nonsense"}).status_code == 401
    # a user, even an admin, is not a node
    assert call(api, method, url, body, api.admin).status_code == 401
    r = call(api, method, url, body, other_headers)
    assert r.status_code == 403 and "itself" in r.json()["detail"]
    assert call(api, method, url, body, my_headers).status_code in (200, 404)


def test_admin_is_created_on_first_start_and_nothing_is_open(api: Api):
    me = api.client.get("/api/v1/users/me", headers=api.admin).json()
    assert me["username"] == "admin" and me["role"] == "admin"
    bad = api.client.post("/api/v1/auth/token", data={"username": "admin", "password": "wrong"})
    assert bad.status_code == 401
    assert api.client.get("/healthz").status_code == 200
    assert api.client.get("/openapi.json").status_code == 200


def test_api_key_acts_as_its_user_until_deleted(api: Api):
    r = api.client.post("/api/v1/api-keys", json={"name": "script"}, headers=api.user("operator"))
    assert r.status_code == 201
    key = {"X-API-Key": r.json()["key"]}
    assert api.client.get("/api/v1/users/me", headers=key).json()["role"] == "operator"
    assert api.client.post("/api/v1/jobs", json=SCAN, headers=key).status_code == 201
    r = api.client.delete(f"/api/v1/api-keys/{r.json()['id']}", headers=key)
    assert r.status_code == 204
    assert api.client.get("/api/v1/users/me", headers=key).status_code == 401


def test_submit_list_get_cancel(api: Api):
    op = api.user("operator")
    r = api.client.post("/api/v1/jobs", json={**SCAN, "priority": 7}, headers=op)
    assert r.status_code == 201, r.text
    job = r.json()
    assert job["status"] == "pending" and job["priority"] == 7
    assert job["parameters"]["start_freq_hz"] == 88e6 and "type" not in job["parameters"]
    assert job["pending_reason"] == "waiting for the scheduler"
    assert [t["to_status"] for t in job["transitions"]] == ["pending"]

    viewer = api.user("viewer")
    page = api.client.get("/api/v1/jobs", params={"status": "pending"}, headers=viewer).json()
    assert page["total"] == 1 and page["items"][0]["id"] == job["id"]
    assert (
        api.client.get("/api/v1/jobs", params={"type": "direction_finding"}, headers=viewer).json()[
            "total"
        ]
        == 0
    )
    got = api.client.get(f"/api/v1/jobs/{job['id']}", headers=viewer)
    assert got.status_code == 200 and got.json()["id"] == job["id"]
    assert api.client.get(f"/api/v1/jobs/{uuid.uuid4()}", headers=viewer).status_code == 404

    # another operator may not cancel it; its owner may, once
    r = api.client.post(
        f"/api/v1/jobs/{job['id']}/cancel", headers=api.user("operator", ("transmit",))
    )
    assert r.status_code == 403
    r = api.client.post(
        f"/api/v1/jobs/{job['id']}/cancel", json={"reason": "wrong band"}, headers=op
    )
    assert r.status_code == 200
    assert r.json()["status"] == "cancelled"
    assert r.json()["status_reason"] == "cancelled by operator-plain: wrong band"
    # cancelling again changes nothing (idempotent)
    again = api.client.post(f"/api/v1/jobs/{job['id']}/cancel", headers=api.admin)
    assert again.status_code == 200 and again.json()["transitions"] == r.json()["transitions"]


def test_pagination_and_time_filters(api: Api):
    op = api.user("operator")
    ids = [api.client.post("/api/v1/jobs", json=SCAN, headers=op).json()["id"] for _ in range(5)]
    first = api.client.get("/api/v1/jobs", params={"limit": 2}, headers=op).json()
    second = api.client.get("/api/v1/jobs", params={"limit": 2, "offset": 2}, headers=op).json()
    assert first["total"] == 5 and len(first["items"]) == 2 and len(second["items"]) == 2
    seen = {j["id"] for j in first["items"] + second["items"]}
    assert len(seen) == 4 and seen <= set(ids)
    after = api.client.get(
        "/api/v1/jobs", params={"created_after": "2999-01-01T00:00:00Z"}, headers=op
    ).json()
    assert after["total"] == 0
    before = api.client.get(
        "/api/v1/jobs", params={"created_before": "2999-01-01T00:00:00+02:00"}, headers=op
    ).json()
    assert before["total"] == 5


def test_idempotency_key_returns_the_first_job(api: Api):
    op = {**api.user("operator"), "Idempotency-Key": "scan-2026-01-01"}
    first = api.client.post("/api/v1/jobs", json=SCAN, headers=op)
    again = api.client.post("/api/v1/jobs", json=SCAN, headers=op)
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"]
    assert api.client.get("/api/v1/jobs", headers=op).json()["total"] == 1


def test_a_propagation_test_needs_the_transmit_permission(api: Api):
    """propagation_test makes a node transmit: an operator without the transmit permission
    gets a 403 naming it, and nothing is stored; with it, the job is accepted."""
    job = {"type": "propagation_test", "freq_hz": 435e6, "tx_power_dbm": 10, "duration_s": 30}
    r = api.client.post("/api/v1/jobs", json=job, headers=api.user("operator"))
    assert r.status_code == 403, r.text
    assert "transmit" in r.json()["detail"]
    assert api.client.get("/api/v1/jobs", headers=api.user("viewer")).json()["total"] == 0
    r = api.client.post("/api/v1/jobs", json=job, headers=api.user("operator", ("transmit",)))
    assert r.status_code == 201, r.text


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**SCAN, "stop_freq_hz": 50e6}, "stop_freq_hz"),
        ({**SCAN, "start_freq_hz": -1}, "start_freq_hz"),
        ({**SCAN, "bin_hz": "wide"}, "bin_hz"),
        ({**SCAN, "priority": 1000}, "priority"),
        ({**SCAN, "node_ids": ["not-a-uuid"]}, "node_ids"),
        ({**SCAN, "colour": "red"}, "colour"),
        ({k: v for k, v in SCAN.items() if k != "duration_s"}, "duration_s"),
        ({**SCAN, "type": "teleport"}, "type"),
        (
            {
                "type": "direction_finding",
                "center_freq_hz": 1e8,
                "bandwidth_hz": 1e5,
                "duration_s": 1,
                "area": {"lat_deg": 91, "lon_deg": 0},
            },
            "lat_deg",
        ),
        (
            {
                "type": "direction_finding",
                "center_freq_hz": 1e8,
                "bandwidth_hz": 1e5,
                "duration_s": 1,
                "area": {"lat_deg": 1, "lon_deg": 0},
                "method": "tdoa",
                "node_count": 2,
            },
            "node_count",
        ),
    ],
)
def test_invalid_job_is_4xx_naming_the_field(api: Api, body, field):
    r = api.client.post("/api/v1/jobs", json=body, headers=api.user("operator"))
    assert r.status_code == 422, r.text
    assert field in r.text


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"status": "sleeping"}, "status"),
        ({"type": "teleport"}, "type"),
        ({"node_id": "x"}, "node_id"),
        ({"limit": 0}, "limit"),
        ({"offset": -1}, "offset"),
        ({"created_after": "yesterday"}, "created_after"),
        ({"created_before": "9999-12-31T23:00:00-05:00"}, "created_before"),
    ],
)
def test_invalid_query_is_4xx_naming_the_field(api: Api, params, field):
    r = api.client.get("/api/v1/jobs", params=params, headers=api.user("viewer"))
    assert r.status_code == 422, r.text
    assert field in r.text


def test_enrollment_token_is_single_use(api: Api):
    token = api.client.post("/api/v1/nodes/enrollment-tokens", headers=api.admin).json()["token"]
    body = {
        "token": token,
        "name": "roof",
        "location": {"lat_deg": 50, "lon_deg": 8},
        "devices": [
            {
                "driver": "rtlsdr",
                "freq_min_hz": 24e6,
                "freq_max_hz": 1.7e9,
                "max_bandwidth_hz": 2.4e6,
            }
        ],
    }
    assert api.client.post("/api/v1/nodes/enroll", json=body).status_code == 201
    assert api.client.post("/api/v1/nodes/enroll", json=body).status_code == 401
    r = api.client.post("/api/v1/nodes/enroll", json={**body, "name": "a\x00b"})
    assert r.status_code == 422 and "name" in r.text
    nodes = api.client.get("/api/v1/nodes", headers=api.user("viewer")).json()
    assert [n["name"] for n in nodes] == ["roof"]
    assert nodes[0]["status"] == "online" and nodes[0]["devices"][0]["driver"] == "rtlsdr"


def test_node_heartbeat_and_sync(api: Api):
    node_id, headers = api.enroll("roof", 50, 8, sync="system")
    r = api.client.post(
        f"/api/v1/nodes/{node_id}/heartbeat", json={"sync": {"source": "gps"}}, headers=headers
    )
    assert r.status_code == 200 and r.json()["status"] == "online"
    node = api.client.get(f"/api/v1/nodes/{node_id}", headers=api.user("viewer")).json()
    assert node["sync_source"] == "gps" and node["sync_uncertainty_s"] == pytest.approx(50e-9)


def test_node_list_callers_that_miss_together_share_one_render(api, monkeypatch):
    """Twenty concurrent GET /nodes on a cold cache: one render (the list was rendered once per
    caller before, a burst of renders at every expiry), every caller the same body."""
    import asyncio

    import httpx

    from drift.api.routes import nodes as routes

    for i in range(3):
        api.enroll(f"n{i}", 48 + i, 11)
    renders = []
    real = routes.render_nodes

    def counted(runtime, status_):
        renders.append(status_)
        return real(runtime, status_)

    monkeypatch.setattr(routes, "render_nodes", counted)
    app = api.client.app
    app.state.runtime.node_lists.clear()

    async def burst():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await asyncio.gather(
                *(client.get("/api/v1/nodes", headers=api.admin) for _ in range(20))
            )

    replies = api.client.portal.call(burst)
    assert [r.status_code for r in replies] == [200] * 20
    assert len({r.content for r in replies}) == 1
    assert sorted(n["name"] for n in replies[0].json()) == ["n0", "n1", "n2"]
    assert renders == [None]


def test_reads_answer_while_a_writer_holds_the_database(api: Api):
    """A write transaction (a scheduler tick, a submission) holds SQLite's one write lock from
    its first statement, and a job's row on PostgreSQL. The read-only routes go through the
    read engine: they answer meanwhile instead of queueing behind every writer."""
    import threading

    from sqlalchemy import text

    node_id, _ = api.enroll("n", 48, 11)
    job_id = api.client.post("/api/v1/jobs", json=SCAN, headers=api.admin).json()["id"]
    viewer, admin = api.user("viewer"), api.admin
    paths = [
        (f"/api/v1/jobs/{job_id}", viewer),
        ("/api/v1/jobs", viewer),
        (f"/api/v1/nodes/{node_id}", viewer),
        ("/api/v1/flowgraphs", viewer),
        ("/api/v1/users", admin),
        ("/api/v1/api-keys", admin),
    ]
    codes: dict[str, int] = {}

    def read_all():
        for path, headers in paths:
            codes[path] = api.client.get(path, headers=headers).status_code

    engine = api.client.app.state.runtime.engine
    with engine.connect() as writer:
        writer.begin()  # BEGIN IMMEDIATE on SQLite: the write lock, held
        writer.execute(
            text("UPDATE jobs SET priority = priority WHERE id = :id"),
            {"id": job_id if engine.dialect.name == "postgresql" else job_id.replace("-", "")},
        )
        reader = threading.Thread(target=read_all)
        reader.start()
        reader.join(10)
        done, answered = not reader.is_alive(), list(codes)
        writer.rollback()
    reader.join(60)
    assert done, f"reads waited for the writer; answered before it let go: {answered}"
    assert codes == {path: 200 for path, _ in paths}
