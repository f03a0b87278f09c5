"""Swagger UI and ReDoc served with their assets from the package: no CDN, works offline."""

from functools import cache
from pathlib import Path

import fastapi_offline
from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles

ASSETS = Path(fastapi_offline.__file__).parent / "static"
PREFIX = "/_assets"
REDOC_JS = "redoc.standalone.js"
# ReDoc's sidebar footer shows Redocly's logo from their CDN, and no option turns it off.
REDOCLY_LOGO = b"https://cdn.redoc.ly/redoc/logo-mini.svg"


@cache
def _redoc_bundle() -> bytes:
    """ReDoc's bundle with the logo's address emptied: an empty image source fails at once,
    without a request, and the footer then drops the image and keeps its text."""
    return (ASSETS / REDOC_JS).read_bytes().replace(REDOCLY_LOGO, b"")


def install(app: FastAPI) -> None:
    # Ahead of the mount, which would otherwise serve the bundle unchanged.
    @app.get(f"{PREFIX}/{REDOC_JS}", include_in_schema=False)
    async def redoc_bundle() -> Response:
        return Response(
            _redoc_bundle(),
            media_type="text/javascript",
            headers={"Cache-Control": "public, max-age=86400"},
        )

    app.mount(PREFIX, StaticFiles(directory=ASSETS), name="docs-assets")
    title = app.title

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{title} - Swagger UI",
            swagger_js_url=f"{PREFIX}/swagger-ui-bundle.js",
            swagger_css_url=f"{PREFIX}/swagger-ui.css",
            swagger_favicon_url=f"{PREFIX}/favicon.png",
            swagger_ui_parameters={
                "persistAuthorization": True,
                "displayRequestDuration": True,
                # Its default badge loads from validator.swagger.io, sending it our spec's URL.
                "validatorUrl": None,
            },
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{title} - ReDoc",
            redoc_js_url=f"{PREFIX}/{REDOC_JS}",
            redoc_favicon_url=f"{PREFIX}/favicon.png",
            with_google_fonts=False,
        )
