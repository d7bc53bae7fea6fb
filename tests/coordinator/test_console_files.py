"""The console's files and Swagger UI, served by the coordinator from its own package: no page
here names another origin (the browser tests in tests/test_console.py check what a page really
requests)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from drift.api import create_app
from drift.api.console import STATIC

from .conftest import make_settings

EXTERNAL = re.compile(r"""(?:src|href)=["']?(?:https?:)?//""")


def client(tmp_path: Path, sqlite_template: Path, **settings) -> TestClient:
    db = tmp_path / "coordinator.db"
    shutil.copy(sqlite_template, db)
    return TestClient(create_app(make_settings(tmp_path / "data", f"sqlite:///{db}", **settings)))


def test_the_console_and_swagger_ui_load_nothing_from_another_origin(tmp_path, sqlite_template):
    with client(tmp_path, sqlite_template) as c:
        page = c.get("/")
        assert page.status_code == 200 and "DRIFT console" in page.text
        csp = page.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "connect-src 'self'" in csp
        assert "img-src 'self' data: blob:;" in csp  # no tile server configured
        docs = c.get("/docs")
        assert docs.status_code == 200
        assert not EXTERNAL.search(page.text) and not EXTERNAL.search(docs.text), docs.text
        assert "/static/vendor/swagger-ui/swagger-ui-bundle.js" in docs.text
        assert '"validatorUrl": null' in docs.text
        assert c.get("/redoc").status_code == 404  # FastAPI's ReDoc page loads from a CDN
        # every script and stylesheet the pages name is served here
        for path in re.findall(r"""(?:src|href)=["'](/static/[^"']+)""", page.text + docs.text):
            assert c.get(path).status_code == 200, path
        for module in (STATIC / "console").glob("*.js"):
            text = module.read_text()
            assert "http://" not in text and "https://" not in text, module.name
            for imported in re.findall(r"""from ["'](/static/[^"']+)""", text):
                assert c.get(imported).status_code == 200, (module.name, imported)
        assert c.get("/console/config.json").json() == {
            "tile_url": None,
            "tile_attribution": "",
            "vendor_installed": True,
        }
        # the API is where it was
        assert c.get("/api/v1/users/me").status_code == 401
        assert "/" not in c.get("/openapi.json").json()["paths"]


def test_a_configured_tile_server_is_the_one_other_origin_for_images(tmp_path, sqlite_template):
    url = "https://tiles.example.org/{z}/{x}/{y}.png"
    with client(tmp_path, sqlite_template, console_tile_url=url) as c:
        csp = c.get("/").headers["content-security-policy"]
        assert "img-src 'self' data: blob: https://tiles.example.org;" in csp
        assert "connect-src 'self'" in csp
        assert c.get("/console/config.json").json()["tile_url"] == url


def test_a_tile_url_must_be_http(tmp_path, sqlite_template):
    with pytest.raises(ValueError, match="console_tile_url"):
        make_settings(tmp_path, "sqlite://", console_tile_url="javascript:alert(1)")
