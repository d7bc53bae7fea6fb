"""Request bodies and uploaded flowgraphs: bodies are limited before they are read (a 100 MB
body against a real ``drift serve``: 413 while most of it is still unsent, and the server's
memory does not grow by it), a YAML alias bomb gets a short 422, and an uploaded template
lists every piece of Python it runs (what its approval approves), its transmitting blocks
(which need the transmit permission), and pins jobs to its approved content."""

from __future__ import annotations

import json
import select
import socket
import time
from pathlib import Path
from urllib.parse import urlparse

import httpx
import pytest
import yaml

from .conftest import Api
from .served import drift_serve

ROOT = Path(__file__).resolve().parents[2]
CAPTURE = yaml.safe_load((ROOT / "flowgraphs" / "iq_capture.grc").read_text())
CAPTURE["options"]["parameters"]["id"] = "my_capture"

PAYLOAD = "__import__('os').system('id > /tmp/drift-pwned')"
IMPORTED = "import os; os.system('touch /tmp/drift-pwned-too')"

# 410 bytes whose last alias stands for 9**7 = 4.8 million strings: a "billion laughs"
ALIAS_BOMB = (
    'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    "b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
    "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
    "d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
    "e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\n"
    "f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\n"
    "g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\n"
    "options: {parameters: {id: *g, generate_options: no_gui}}\n"
    "blocks: [{name: x, id: parameter, parameters: {type: intx, value: *g}}]\n"
    "zz: 123\n"
)


def _block(name: str, block_id: str, **parameters) -> dict:
    return {
        "name": name,
        "id": block_id,
        "parameters": {"comment": "", **parameters},
        "states": {"coordinate": [8, 8], "rotation": 0, "state": "enabled"},
    }


def _grc(*extra: dict, fg_id: str = "my_capture") -> str:
    doc = json.loads(json.dumps(CAPTURE))
    doc["options"]["parameters"]["id"] = fg_id
    doc["blocks"].extend(extra)
    return yaml.safe_dump(doc, sort_keys=False)


def _upload(api: Api, content: str, headers=None) -> httpx.Response:
    return api.client.post(
        "/api/v1/flowgraphs",
        json={"name": "mine", "content": content},
        headers=headers or api.user("operator"),
    )


def test_a_410_byte_alias_bomb_gets_a_422_of_under_1_kb(api: Api):
    assert len(ALIAS_BOMB.encode()) == 410
    t0 = time.perf_counter()
    r = _upload(api, ALIAS_BOMB)
    took = time.perf_counter() - t0
    assert r.status_code == 422, r.text[:500]
    assert len(r.content) < 1024, len(r.content)
    assert r.json()["detail"][0]["loc"] == ["body", "content"]
    assert "aliases are not allowed" in r.text
    assert took < 5


def test_error_messages_never_grow_with_the_upload(api: Api):
    long_id = "x-" + "y" * 200_000  # not an identifier, and long
    doc = yaml.safe_load(_grc())
    doc["options"]["parameters"]["id"] = long_id
    r = _upload(api, yaml.safe_dump(doc))
    assert r.status_code == 422 and len(r.content) < 1024 and "identifier" in r.text


def test_the_expression_list_shows_the_code_the_approval_covers(api: Api):
    content = _grc(
        _block("pwn", "variable", value=PAYLOAD),
        _block("imports_0", "import", imports=IMPORTED),
        _block("taps", "variable", value="firdes.low_pass(1.0, samp_rate_hz, 1e3, 1e2)"),
        _block("plain", "variable", value="samp_rate_hz / 2"),
    )
    r = _upload(api, content)
    assert r.status_code == 201, r.text
    up = r.json()
    by_block = {(e["block"], e["parameter"]): e for e in up["expressions"]}
    assert by_block[("pwn", "value")] == {
        "block": "pwn",
        "block_id": "variable",
        "parameter": "value",
        "kind": "variable",
        "code": PAYLOAD,
        "runs_code": True,
    }
    assert by_block[("imports_0", "imports")]["code"] == IMPORTED
    assert by_block[("imports_0", "imports")]["kind"] == "import"
    assert by_block[("taps", "value")]["runs_code"] is True
    assert by_block[("plain", "value")]["runs_code"] is False
    # parameter values that are expressions (not literals) are listed too; literals are not
    assert ("drift_iq_sink_0", "job_id") in by_block
    assert not any(e["code"] in ("0", "1e6", "True") for e in up["expressions"])
    assert up["transmit_blocks"] == []
    # what the admin approves is what this answer lists
    approved = api.client.post(f"/api/v1/flowgraphs/{up['id']}/approve", headers=api.admin)
    assert approved.status_code == 200
    assert approved.json()["expressions"] == up["expressions"]
    listed = api.client.get(f"/api/v1/flowgraphs/{up['id']}", headers=api.user("viewer")).json()
    assert listed["expressions"] == up["expressions"] and listed["approved_at"] is not None


CUSTOM_JOB = {
    "type": "custom_flowgraph",
    "parameters": {"center_freq_hz": 431.92e6, "samp_rate_hz": 1e6, "n_samples": 1000},
    "start_freq_hz": 431e6,
    "stop_freq_hz": 433e6,
    "duration_s": 5,
}


@pytest.mark.parametrize(
    ("sink", "transmits"),
    [
        ("soapy_hackrf_sink", True),
        ("osmosdr_sink", True),
        ("uhd_usrp_sink", True),
        ("iio_pluto_sink", True),
        ("zeromq_push_sink", False),
    ],
)
def test_a_template_with_a_transmitting_sink_needs_the_transmit_permission(
    api: Api, sink: str, transmits: bool
):
    up = _upload(api, _grc(_block("out_0", sink), fg_id=f"with_{sink}")).json()
    assert up["transmit_blocks"] == (["out_0"] if transmits else [])
    api.client.post(f"/api/v1/flowgraphs/{up['id']}/approve", headers=api.admin)
    job = {**CUSTOM_JOB, "template_id": up["id"]}
    r = api.client.post("/api/v1/jobs", json=job, headers=api.user("operator"))
    if transmits:
        assert r.status_code == 403 and "transmit permission" in r.text, r.text
        r = api.client.post("/api/v1/jobs", json=job, headers=api.user("operator", ("transmit",)))
    assert r.status_code == 201, r.text


def test_jobs_are_pinned_to_the_approved_content(api: Api):
    up = _upload(api, _grc()).json()
    api.client.post(f"/api/v1/flowgraphs/{up['id']}/approve", headers=api.admin)
    job = {**CUSTOM_JOB, "template_id": up["id"]}
    r = api.client.post("/api/v1/jobs", json=job, headers=api.user("operator"))
    assert r.status_code == 201, r.text
    assert r.json()["parameters"]["template_sha256"] == up["sha256"]
    r = api.client.post(
        "/api/v1/jobs", json={**job, "template_sha256": "0" * 64}, headers=api.user("operator")
    )
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "template_sha256"]


def test_bodies_have_limits_and_uploads_their_own(tmp_path: Path, db_url: str):
    from fastapi.testclient import TestClient

    from drift.api import create_app

    from .conftest import make_settings

    settings = make_settings(tmp_path / "d", db_url, max_body_bytes=64 * 1024)
    with TestClient(create_app(settings)) as client:
        api = Api(client)
        big = {"name": "x" * (100 * 1024)}
        r = client.post("/api/v1/api-keys", json=big, headers=api.admin)
        assert r.status_code == 413 and "larger than 65536 bytes" in r.text
        # an upload of 100 KiB passes the default limit: its own is 4 MiB
        r = _upload(api, _grc() + "#" * (100 * 1024) + "\n", headers=api.admin)
        assert r.status_code == 201, r.text[:300]


def _post_raw(base: str, path: str, headers: dict[str, str], body_bytes: int, chunked: bool):
    """POST a body of `body_bytes` zeros over a raw socket, 64 KiB at a time, and stop as
    soon as an answer arrives: (status, bytes of body sent before it came)."""
    url = urlparse(base)
    sock = socket.create_connection((url.hostname, url.port), timeout=30)
    head = f"POST {path} HTTP/1.1\r\nHost: {url.hostname}\r\n" + "".join(
        f"{k}: {v}\r\n" for k, v in headers.items()
    )
    head += "Transfer-Encoding: chunked\r\n" if chunked else f"Content-Length: {body_bytes}\r\n"
    sock.sendall((head + "\r\n").encode())
    piece = b"0" * 65536
    sent = 0
    answer = b""
    try:
        while sent < body_bytes:
            readable, writable, _ = select.select([sock], [sock], [], 30)
            if readable:
                break
            if writable:
                data = b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece
                sock.send(data)  # may take part of it: the count is close enough
                sent += len(piece)
        answer = sock.recv(65536)
    except (BrokenPipeError, ConnectionResetError):
        pass
    finally:
        sock.close()
    status = int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else None
    return status, sent


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_100_mb_body_gets_413_without_being_read_whole(tmp_path: Path, chunked: bool):
    size = 100 * 1000 * 1000
    with drift_serve(tmp_path) as served, httpx.Client(base_url=served.base, timeout=30) as http:
        headers = {**served.admin(http), "Content-Type": "application/json"}
        # warm up the route, then take the server's memory
        assert http.post("/api/v1/jobs", content=b"{}", headers=headers).status_code == 422
        before = served.rss_bytes()
        status, sent = _post_raw(served.base, "/api/v1/jobs", headers, size, chunked)
        after = served.rss_bytes()
        assert status == 413, (status, sent)
        # refused with most of the body never sent: by its Content-Length before a byte of
        # it was read, or once the chunks passed 1 MiB (what the sockets' buffers took aside)
        assert sent < size / 5, f"{sent / 1e6:.0f} MB sent before the answer"
        assert after - before < 20e6, f"the server grew by {(after - before) / 1e6:.0f} MB"
        # and it goes on serving
        assert http.get("/api/v1/jobs", headers=headers).status_code == 200


@pytest.mark.parametrize(
    "content",
    [
        "options: {parameters: []}\nblocks: []\n",
        "options: {parameters: {id: [1, 2]}}\nblocks: []\n",
        "options: {parameters: {id: x}}\nblocks: [{id: parameter, name: p, states: [1]}]\n",
        "options: {parameters: {id: x}}\nblocks: [{id: parameter, name: p, parameters: [1]}]\n",
        "options: {parameters: {id: x}}\nblocks: [{id: parameter, name: [p], parameters: {}}]\n",
        "options: {parameters: {id: x}}\nblocks: [{id: parameter, name: p, "
        "parameters: {type: {a: 1}}}]\n",
        "options: {parameters: {id: x}}\nblocks: [{id: variable, name: '1; x', "
        "parameters: {value: '1'}}]\n",
        "options: {parameters: {id: x}}\nblocks: [{id: variable, name: v, parameters: 5}]\n",
        "!!python/object/apply:os.system ['true']\n",
    ],
)
def test_malformed_templates_are_refused_or_taken_never_a_500(api: Api, content: str):
    r = _upload(api, content)
    assert r.status_code in (201, 422), r.text
    assert r.status_code == 201 or len(r.content) < 1024
