"""The HTTP edge: body size limit, CORS for browser frontends, unknown routes and methods."""

import httpx
import pytest

from crm_api.app import create_app
from support import assert_problem


@pytest.fixture
async def strict_app(settings):
    application = create_app(
        settings.model_copy(
            update={"max_body_bytes": 2048, "cors_origins": ["https://app.example.com"]}
        )
    )
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def strict(strict_app, admin_key):
    transport = httpx.ASGITransport(app=strict_app)
    headers = {"Authorization": f"Bearer {admin_key}"}
    async with httpx.AsyncClient(transport=transport, base_url="http://t", headers=headers) as c:
        yield c


async def test_bodies_over_the_limit_get_413_and_write_nothing(strict):
    response = await strict.post("/v1/customers", json={"attributes": {"blob": "x" * 4096}})
    assert_problem(response, 413, "content-too-large")
    assert (await strict.get("/v1/customers")).json()["data"] == []


async def test_cors_lets_configured_origins_read_our_headers(strict):
    preflight = await strict.options(
        "/v1/customers",
        headers={
            "Origin": "https://app.example.com",
            "Access-Control-Request-Method": "PATCH",
            "Access-Control-Request-Headers": "authorization,if-match",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "https://app.example.com"
    response = await strict.get("/v1/customers", headers={"Origin": "https://app.example.com"})
    exposed = response.headers["access-control-expose-headers"].lower()
    assert "etag" in exposed and "x-request-id" in exposed
    other = await strict.get("/v1/customers", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers


async def test_unknown_routes_and_methods_are_problems(api):
    assert_problem(await api.get("/v1/nothing-here"), 404, "not-found")
    assert_problem(await api.put("/v1/customers"), 405, "method-not-allowed")


@pytest.mark.parametrize("path", ["/v1/customers", "/v1/customers/import"])
async def test_streamed_bodies_over_the_limit_get_413(strict, path):
    async def chunks():  # no Content-Length: the limit must hold while streaming
        yield b'{"a": "' + b"x" * 1500
        yield b"x" * 1500 + b'"}'

    headers = {
        "Content-Type": "application/json" if path.endswith("customers") else "application/x-ndjson"
    }
    response = await strict.post(path, content=chunks(), headers=headers)
    assert_problem(response, 413, "content-too-large")
