"""Swagger UI, ReDoc and GraphiQL in a real browser (Debian's headless Chromium) that can
reach nothing but the server: each page renders from the server's own assets, and an API
key entered in the page makes requests that the server answers with its data."""

import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.async_api import Browser, ConsoleMessage, Page, Route, async_playwright, expect

from crm_api.core.scopes import Scope
from live import create_database, drop_database, free_port, issue_key, ready, server_process

# Debian's build, which `make test` installs; Playwright drives it as it is (no download).
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Every name resolves to nothing: a second wall behind the routing that aborts and records
# each request for anywhere but the server.
NO_DNS = "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"
# What Chromium logs for a 401 response; the steps provoke those on purpose (no key yet).
UNAUTHORIZED_NOTE = "the server responded with a status of 401"
# A page of the whole API takes seconds to render on two cores (ReDoc: 7 s idle, 15 s busy).
expect.set_options(timeout=60_000)


@dataclass
class Server:
    base_url: str
    key: str  # customers:read only
    customer_id: str  # created over HTTP before any browsing


@dataclass
class Browsing:
    page: Page
    server: Server
    outside: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def on_console(self, message: ConsoleMessage) -> None:
        if message.type == "error" and UNAUTHORIZED_NOTE not in message.text:
            self.errors.append(f"console: {message.text} ({message.location.get('url')})")

    async def route(self, route: Route) -> None:
        if urlsplit(route.request.url).netloc == urlsplit(self.server.base_url).netloc:
            await route.continue_()
        else:
            self.outside.append(route.request.url)
            await route.abort("internetdisconnected")

    def assert_self_contained(self) -> None:
        assert self.outside == [], "the page asked for more than the server"
        assert self.errors == []


@pytest.fixture(scope="module")
async def server(server_url: str, template_db: str) -> AsyncIterator[Server]:
    """The server as `make run` serves it (development: docs, GraphiQL and introspection
    on), with one customer; shared by the tests here, which only read."""
    database_url = await create_database(server_url, template=template_db)
    try:
        admin = await issue_key(database_url, Scope.ADMIN, name="admin")
        reader = await issue_key(database_url, Scope.CUSTOMERS_READ, name="reader")
        port = free_port()
        base_url = f"http://127.0.0.1:{port}"
        with server_process(database_url, port, CRM_ENVIRONMENT="development"):
            await ready(base_url)
            async with httpx.AsyncClient(
                base_url=base_url, headers={"Authorization": f"Bearer {admin}"}
            ) as http:
                created = await http.post(
                    "/v1/customers", json={"kind": "consumer", "external_id": "seen-in-a-browser"}
                )
            assert created.status_code == 201, created.text
            yield Server(base_url, reader, created.json()["id"])
    finally:
        await drop_database(database_url)


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    if not shutil.which(CHROMIUM):
        pytest.fail("no Chromium: install Debian's `chromium` package (`make test` does)")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=[NO_DNS])
        yield browser
        await browser.close()


@pytest.fixture
async def browsing(browser: Browser, server: Server) -> AsyncIterator[Browsing]:
    """A fresh page (nothing stored from other tests) that can reach only ``server``."""
    context = await browser.new_context(service_workers="block")
    browsing = Browsing(await context.new_page(), server)
    await context.route("**/*", browsing.route)
    browsing.page.on("console", browsing.on_console)
    browsing.page.on("pageerror", lambda error: browsing.errors.append(f"uncaught: {error}"))
    yield browsing
    await context.close()


async def test_swagger_ui_runs_a_request_with_the_key_entered_in_authorize(browsing: Browsing):
    page = browsing.page
    await page.goto(f"{browsing.server.base_url}/docs")
    operation = page.locator("#operations-customers-customers_list")
    await expect(operation).to_contain_text("/v1/customers")
    await operation.locator(".opblock-summary").click()
    await operation.get_by_role("button", name="Try it out").click()
    execute = operation.get_by_role("button", name="Execute")
    status = operation.locator(".live-responses-table tbody .response-col_status")

    await execute.click()
    await expect(status).to_have_text("401")

    await page.locator(".auth-wrapper").get_by_role("button", name="Authorize").click()
    bearer = page.locator(".modal-ux .auth-container").filter(has_text="(http, Bearer)")
    await bearer.get_by_role("textbox").fill(browsing.server.key)
    await bearer.get_by_role("button", name="Apply credentials").click()
    await bearer.get_by_role("button", name="Close").click()
    await execute.click()

    await expect(status).to_have_text("200")
    body = operation.locator(".live-responses-table tbody .response-col_description")
    await expect(body).to_contain_text(browsing.server.customer_id)
    await expect(body).to_contain_text("seen-in-a-browser")
    browsing.assert_self_contained()


async def test_redoc_renders_the_api_and_its_operations(browsing: Browsing):
    page = browsing.page
    await page.goto(f"{browsing.server.base_url}/redoc")

    await expect(page.get_by_role("heading", name="crm-api (0.1.0)")).to_be_visible()
    menu = page.get_by_role("menu").first
    await expect(menu).to_contain_text("Customers List")
    await expect(menu).to_contain_text("Customers Create")
    browsing.assert_self_contained()


async def test_graphiql_runs_a_query_with_the_key_put_in_its_headers(browsing: Browsing):
    page = browsing.page
    await page.goto(f"{browsing.server.base_url}/graphql")
    headers = page.locator(".graphiql-editor-tool .graphiql-editor:not(.hidden) .CodeMirror")
    await expect(headers).to_contain_text("Bearer <your API key>")
    query = page.locator(".graphiql-query-editor .CodeMirror")
    result = page.locator(".graphiql-response")
    await query.click()
    await page.keyboard.press("ControlOrMeta+A")
    await page.keyboard.insert_text("{ customers(first: 5) { edges { node { id externalId } } } }")
    await page.get_by_role("button", name="Execute query").click()
    # Without a key the page says what to do, and sends nothing bound to fail.
    await expect(result).to_contain_text("Put your API key in the Headers pane")

    await headers.click()
    await page.keyboard.press("ControlOrMeta+A")
    await page.keyboard.insert_text(f'{{"Authorization": "Bearer {browsing.server.key}"}}')
    await page.get_by_role("button", name="Execute query").click()

    await expect(result).to_contain_text(browsing.server.customer_id)
    await expect(result).to_contain_text('"externalId": "seen-in-a-browser"')
    browsing.assert_self_contained()
