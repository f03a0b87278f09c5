"""Requests find their route through the path index exactly as the router would find it."""

import re
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from starlette.routing import BaseRoute, Match, Route

from crm_api.app import create_app
from crm_api.core.route_index import RouteIndex
from live import settings_for
from support import assert_problem

SOME_ID = "0193a6b2-5c1e-7c39-9d7a-3f1d2b6c8e01"


def _scope(method: str, path: str) -> dict[str, Any]:
    return {"type": "http", "method": method, "path": path, "root_path": "", "headers": []}


def _by_scanning(routes: list[BaseRoute], scope: dict[str, Any]) -> BaseRoute | None:
    """The router's rule: the first route, in order, that matches fully."""
    for route in routes:
        if route.matches(scope)[0] is Match.FULL:
            return route
    return None


def _indexed(app: FastAPI) -> RouteIndex:
    index = app.router.middleware_stack
    assert isinstance(index, RouteIndex)
    return index


def test_every_operation_is_found_as_the_router_finds_it() -> None:
    app = create_app(settings_for("postgresql://unused@127.0.0.1/unused"))
    index = _indexed(app)
    checked = 0
    for route in app.router.routes:
        if not isinstance(route, Route):
            continue
        path = re.sub(r"\{[^}]+\}", SOME_ID, route.path)
        for method in route.methods or ():
            scope = _scope(method, path)
            found = index.find(scope)
            assert found is not None, (method, path)
            assert found[0] is _by_scanning(app.router.routes, scope), (method, path)
            checked += 1
    assert checked > 100  # every REST operation, not a handful


def test_a_literal_segment_wins_over_a_parameter_declared_after_it() -> None:
    index = _indexed(create_app(settings_for("postgresql://unused@127.0.0.1/unused")))
    found = index.find(_scope("GET", "/v1/customers/export"))
    assert found is not None and found[0].path == "/v1/customers/export"
    found = index.find(_scope("GET", f"/v1/customers/{SOME_ID}"))
    assert found is not None and found[0].path == "/v1/customers/{customer_id}"
    assert found[1]["path_params"] == {"customer_id": SOME_ID}


async def test_a_path_with_another_method_is_405_listing_every_allowed_one(api) -> None:
    response = await api.delete("/v1/customers")
    assert_problem(response, 405, "method-not-allowed")
    assert response.headers["allow"] == "GET, POST"
    response = await api.post(f"/v1/customers/{SOME_ID}")
    assert_problem(response, 405, "method-not-allowed")
    assert response.headers["allow"] == "DELETE, GET, PATCH"


async def test_an_unknown_path_is_a_404_problem(api) -> None:
    assert_problem(await api.get("/v1/no-such-thing"), 404, "not-found")
    assert_problem(await api.get(f"/v1/customers/{SOME_ID}/no-such-thing"), 404, "not-found")


async def test_a_trailing_slash_redirects_to_the_operation(api) -> None:
    response = await api.get("/v1/customers/")
    assert response.status_code == 307
    assert response.headers["location"] == "http://crm.test/v1/customers"


async def test_graphql_and_routes_added_later_are_still_served(app, api) -> None:
    async def late() -> JSONResponse:
        return JSONResponse({"late": True})

    app.add_api_route("/late", late)
    assert (await api.get("/late")).json() == {"late": True}
    response = await api.post("/graphql", json={"query": "{ __typename }"})
    assert response.json() == {"data": {"__typename": "Query"}}


def test_a_path_parameter_spans_segments_and_others_do_not() -> None:
    app = FastAPI()

    async def one() -> JSONResponse:
        return JSONResponse({})

    app.add_api_route("/files/{name}", one)
    app.add_api_route("/files/{rest:path}", one)
    app.add_api_route("/files/{name}/meta", one)
    index = RouteIndex(app.router)
    for path in ("/files/a", "/files/a/meta", "/files/a/b/c", "/files/a/meta/x"):
        found = index.find(_scope("GET", path))
        assert found is not None, path
        assert found[0] is _by_scanning(app.router.routes, _scope("GET", path)), path
    assert index.find(_scope("GET", "/files/a/b/c"))[0].path == "/files/{rest:path}"  # type: ignore[index]
