"""GraphiQL at GET /graphql: served with every asset from the app itself (no internet
needed), in development by default, and not at all where it is switched off."""

from html.parser import HTMLParser

import httpx
import pytest

from crm_api.config import Environment, Settings
from live import settings_for

HTML = {"Accept": "text/html,application/xhtml+xml"}


class _Assets(HTMLParser):
    """The URLs a page loads: its scripts' ``src`` and its links' ``href``."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        wanted = {"script": "src", "link": "href"}.get(tag)
        self.urls += [value for name, value in attrs if name == wanted and value]


def assets_of(page: str) -> list[str]:
    parser = _Assets()
    parser.feed(page)
    return parser.urls


@pytest.fixture
def settings(request: pytest.FixtureRequest, database_url: str) -> Settings:
    """As ``environment`` (default: development) with ``overrides``."""
    environment, overrides = getattr(request, "param", (Environment.DEVELOPMENT, {}))
    update = {"environment": environment, **overrides}
    return settings_for(database_url).model_copy(update=update)


async def test_a_browser_gets_graphiql_with_every_asset_from_the_app(client: httpx.AsyncClient):
    page = await client.get("/graphql", headers=HTML)  # no API key: a browser has none

    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    urls = assets_of(page.text)
    assert len(urls) == 4, urls
    assert "://" not in page.text
    for url in urls:
        assert url.startswith("/graphql/"), url
        asset = await client.get(url)
        assert asset.status_code == 200, url
        kind = "text/css" if url.endswith(".css") else "text/javascript"
        assert asset.headers["content-type"].startswith(kind), url
        assert len(asset.content) > 1000, url
    assert any(url.endswith("/graphiql.min.js") for url in urls)


async def test_a_query_in_the_url_is_run_even_by_a_browser(api: httpx.AsyncClient):
    response = await api.get("/graphql", params={"query": "{ __typename }"}, headers=HTML)

    assert response.json() == {"data": {"__typename": "Query"}}


async def test_only_the_ides_own_assets_are_served(client: httpx.AsyncClient):
    for name in ("LICENSES.txt", "..%2Fide.py", "missing.js"):
        response = await client.get(f"/graphql/ide/{name}")
        assert response.status_code == 404, name
        assert response.json()["type"] == "/problems/not-found"


@pytest.mark.parametrize(
    "settings",
    [(Environment.TEST, {}), (Environment.DEVELOPMENT, {"graphql_ide": False})],
    ids=["off-outside-development", "switched-off"],
    indirect=True,
)
async def test_where_the_ide_is_off_no_page_or_asset_is_served(
    client: httpx.AsyncClient, api: httpx.AsyncClient
):
    anonymous = await client.get("/graphql", headers=HTML)
    with_key = await api.get("/graphql", headers=HTML)
    asset = await client.get("/graphql/ide/graphiql.min.js")

    assert anonymous.status_code == 401
    assert with_key.status_code == 404
    assert "graphiql" not in with_key.text.lower()
    assert asset.status_code == 404
