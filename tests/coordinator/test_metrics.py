"""GET /metrics: real values after real actions, parsed with Prometheus' own parser."""

from __future__ import annotations

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from drift.api import create_app
from drift.orchestrator.scheduler import Scheduler

from .conftest import SCAN, Api


def _samples(text: str) -> dict[tuple, float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def _value(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_count_jobs_nodes_and_allocation_failures(api: Api, settings, sessions):
    before = _samples(api.client.get("/metrics", headers=api.admin).text)
    api.enroll("roof", 48.1, 11.5)  # 24 MHz-1.7 GHz
    a = api.client.post("/api/v1/jobs", json=SCAN, headers=api.admin).json()
    far = {**SCAN, "start_freq_hz": 5.0e9, "stop_freq_hz": 5.1e9}  # nobody covers it
    api.client.post("/api/v1/jobs", json=far, headers=api.admin)
    assert api.client.post(f"/api/v1/jobs/{a['id']}/cancel", headers=api.admin).status_code == 200
    Scheduler(sessions, settings).tick()
    r = api.client.get("/metrics", headers=api.admin)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    after = _samples(r.text)
    assert _value(after, "drift_active_nodes") == 1
    assert _value(after, "drift_jobs_current", status="cancelled", type="spectrum_scan") == 1
    assert _value(after, "drift_jobs_current", status="pending", type="spectrum_scan") == 1
    for name, labels, delta in [
        ("drift_jobs_total", {"status": "cancelled", "type": "spectrum_scan"}, 1),
        ("drift_allocation_failures_total", {"type": "spectrum_scan"}, 1),
    ]:
        assert _value(after, name, **labels) - _value(before, name, **labels) == delta, name


def test_metrics_need_credentials_or_the_metrics_token(tmp_path, settings):
    token = "scrape-" + "x" * 40
    app = create_app(settings.model_copy(update={"metrics_token": SecretStr(token)}))
    with TestClient(app) as client:
        assert client.get("/metrics").status_code == 401
        assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
        r = client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200 and "drift_frames_stored_total" in r.text
