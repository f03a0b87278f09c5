"""GraphiQL at GET /graphql, with its assets served from this package: it works offline.

The assets in static/ are copied unchanged from the npm registry: graphiql@3.9.0
(graphiql.min.js and .css, the last release with a browser bundle), react@18.2.0 and
react-dom@18.2.0 (umd/*.production.min.js); all MIT licensed, see static/LICENSES.txt.
"""

from pathlib import Path
from string import Template

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.routing import APIRoute
from starlette.datastructures import Headers, QueryParams
from starlette.routing import Match
from starlette.types import Scope

from crm_api.core.errors import NotFound

STATIC = Path(__file__).parent / "static"
ASSETS = frozenset(
    {
        "graphiql.min.css",
        "graphiql.min.js",
        "react.production.min.js",
        "react-dom.production.min.js",
    }
)
ASSET_ROUTE = "graphql_ide_asset"
PLACEHOLDER_KEY = "<your API key>"
MISSING_KEY = (
    "Put your API key in the Headers pane below, in place of " + PLACEHOLDER_KEY + ", then "
    "re-fetch the schema (the arrows in the Documentation Explorer) for completion."
)

PAGE = Template("""<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8">
    <title>crm-api GraphiQL</title>
    <style>body { margin: 0; } #graphiql { height: 100vh; }</style>
    <link rel="stylesheet" href="${css}">
    <script src="${react}"></script>
    <script src="${react_dom}"></script>
    <script src="${graphiql}"></script>
  </head>
  <body>
    <div id="graphiql">Loading...</div>
    <script>
      const url = window.location.href.split("?")[0];
      const socket = new URL(url);
      socket.protocol = socket.protocol === "https:" ? "wss:" : "ws:";
      const sending = GraphiQL.createFetcher({ url, subscriptionUrl: socket.toString() });
      const placeholder = "Bearer ${placeholder_key}";
      // Until a key replaces the placeholder, say what to do rather than fetch a 401.
      const fetcher = (params, options) =>
        options?.headers?.Authorization === placeholder
          ? Promise.resolve({ errors: [{ message: "${missing_key}" }] })
          : sending(params, options);
      ReactDOM.createRoot(document.getElementById("graphiql")).render(
        React.createElement(GraphiQL, {
          fetcher,
          defaultHeaders: JSON.stringify({ Authorization: placeholder }),
          isHeadersEditorEnabled: true,
          defaultEditorToolsVisibility: "headers",
        }),
      );
    </script>
  </body>
</html>
""")


def _enabled(scope: Scope) -> bool:
    return scope["app"].state.settings.graphql_ide_enabled


class _PageRoute(APIRoute):
    """Matches only a browser asking for the page (a GET accepting HTML, without a
    ``query``) while the IDE is on; every other request goes on to the GraphQL endpoint."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child_scope = super().matches(scope)
        wanted = (
            match is Match.FULL
            and "text/html" in Headers(scope=scope).get("accept", "")
            and "query" not in QueryParams(scope["query_string"])
            and _enabled(scope)
        )
        return (match, child_scope) if wanted else (Match.NONE, {})


async def _page(request: Request) -> HTMLResponse:
    def url(asset: str) -> str:
        return request.url_for(ASSET_ROUTE, asset=asset).path

    return HTMLResponse(
        PAGE.substitute(
            css=url("graphiql.min.css"),
            react=url("react.production.min.js"),
            react_dom=url("react-dom.production.min.js"),
            graphiql=url("graphiql.min.js"),
            placeholder_key=PLACEHOLDER_KEY,
            missing_key=MISSING_KEY,
        )
    )


async def _asset(asset: str, request: Request) -> FileResponse:
    if asset not in ASSETS or not _enabled(request.scope):
        raise NotFound(f"No IDE asset {asset!r} is served here.")
    return FileResponse(STATIC / asset, headers={"Cache-Control": "public, max-age=86400"})


def serve(router: APIRouter) -> None:
    """Add the IDE page and its assets to the GraphQL endpoint's ``router``. Neither needs
    an API key: a browser cannot send one when it opens the page."""
    router.add_api_route(
        "/ide/{asset}", _asset, methods=["GET"], name=ASSET_ROUTE, include_in_schema=False
    )
    router.add_api_route(
        "", _page, methods=["GET"], route_class_override=_PageRoute, include_in_schema=False
    )
    # Ahead of the endpoint's own GET, which authenticates first.
    router.routes.insert(0, router.routes.pop())
