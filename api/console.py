"""The web console at ``/`` and Swagger UI at ``/docs``, both from files in this package.

The console is plain ES modules under ``static/console`` (no build step); the libraries it uses
(Leaflet, uPlot) and Swagger UI's assets are installed from the npm registry by
``scripts/bootstrap`` (``console/package-lock.json``) into ``static/vendor``. Nothing a page
here loads comes from another origin: the console's Content-Security-Policy says so to the
browser, and its map has no basemap unless ``console_tile_url`` names a tile server (whose
origin is then allowed for images only).
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from drift.orchestrator.settings import Settings

STATIC = Path(__file__).resolve().parent / "static"
VENDOR = STATIC / "vendor"
SWAGGER_REDIRECT = "/docs/oauth2-redirect"


def content_security_policy(settings: Settings) -> str:
    """The console's policy: everything from this origin, map tiles from the configured
    tile server if there is one."""
    img = "'self' data: blob:"
    if settings.console_tile_url:
        parts = urlsplit(settings.console_tile_url.replace("{s}", "a"))
        # a {s} subdomain template allows every subdomain of the tile host
        host = parts.netloc
        if "{s}" in settings.console_tile_url:
            host = "*." + host.split(".", 1)[1] if "." in host else host
        img += f" {parts.scheme}://{host}"
    return (
        "default-src 'self'; "
        f"img-src {img}; "
        "style-src 'self' 'unsafe-inline'; "
        "script-src 'self'; "
        "connect-src 'self'; "
        "frame-ancestors 'none'; base-uri 'self'; form-action 'self'"
    )


def install(app: FastAPI, settings: Settings) -> None:
    """Routes for the console, its configuration and the local Swagger UI (the app is made
    with ``docs_url=None`` and ``redoc_url=None``: FastAPI's own pages load from a CDN)."""
    csp = content_security_policy(settings)
    headers = {
        "Content-Security-Policy": csp,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-cache",
    }

    @app.get("/", include_in_schema=False)
    def console() -> FileResponse:
        return FileResponse(STATIC / "console" / "index.html", headers=headers)

    @app.get("/console/config.json", include_in_schema=False)
    def console_config() -> JSONResponse:
        """What the console needs before log-in: the map's tile source (none by default)."""
        return JSONResponse(
            {
                "tile_url": settings.console_tile_url,
                "tile_attribution": settings.console_tile_attribution,
                "vendor_installed": (VENDOR / "leaflet" / "leaflet-src.esm.js").is_file(),
            },
            headers={"Cache-Control": "no-cache"},
        )

    @app.get("/docs", include_in_schema=False)
    def swagger(request: Request) -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} - API",
            swagger_js_url="/static/vendor/swagger-ui/swagger-ui-bundle.js",
            swagger_css_url="/static/vendor/swagger-ui/swagger-ui.css",
            swagger_favicon_url="/static/console/favicon.svg",
            oauth2_redirect_url=SWAGGER_REDIRECT,
            # the validator badge would ask a public service about the schema
            swagger_ui_parameters={"validatorUrl": None},
        )

    @app.get(SWAGGER_REDIRECT, include_in_schema=False)
    def swagger_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    # static files last: /api/v1, /docs and the rest are matched first
    app.mount("/static", StaticFiles(directory=STATIC, check_dir=False), name="static")
