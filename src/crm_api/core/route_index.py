"""Find a request's route by its path's leading literal segments, not by trying them all.

Starlette tries a router's routes in order until one matches, a regex match each: a
loyalty earn, the eightieth route, paid ~100 us of matching before it was served.

Here the routes sit in a trie of the literal segments their paths begin with
(``/v1/loyalty/accounts/{account_id}/earn`` under ``v1 > loyalty > accounts``). A path
walks the trie as far as its segments lead; only the routes of the node it reaches and of
the nodes above it can match it. They are tried in the router's order, so the first full
match is the route the router would have picked. Everything else goes on to the router
unchanged: slash redirects, 404s, websockets, the lifespan, and the routes that are not
plain ``Route`` objects (mounts, included routers: they sit at the root, tried for any path).
"""

from dataclasses import dataclass, field

from starlette._utils import get_route_path
from starlette.exceptions import HTTPException
from starlette.routing import BaseRoute, Match, Route, Router
from starlette.types import ASGIApp, Receive, Scope, Send


@dataclass
class _Node:
    children: dict[str, "_Node"] = field(default_factory=dict)
    own: list[tuple[int, BaseRoute]] = field(default_factory=list)  # (router position, route)
    # (segments of every path it matches, or None when not fixed; route), in router order
    candidates: list[tuple[int | None, BaseRoute]] = field(default_factory=list)


def _segment_count(route: BaseRoute) -> int | None:
    """How many segments every path ``route`` matches has; None when that varies (a
    ``:path`` parameter, a mount)."""
    if not isinstance(route, Route) or ":path}" in route.path:
        return None
    return route.path.count("/")


def _literal_prefix(route: BaseRoute) -> list[str]:
    """The path segments every path ``route`` matches begins with; none when unknown."""
    if not isinstance(route, Route):
        return []
    segments = route.path.split("/")[1:]
    for n, segment in enumerate(segments):
        if "{" in segment:
            return segments[:n]
    return segments


class RouteIndex:
    """The ASGI app in front of ``router``'s own dispatch (see the module's docstring)."""

    def __init__(self, router: Router) -> None:
        self.router = router
        self.dispatch: ASGIApp = router.middleware_stack
        self.root = _Node()
        for position, route in enumerate(router.routes):
            node = self.root
            for segment in _literal_prefix(route):
                node = node.children.setdefault(segment, _Node())
            node.own.append((position, route))
        _settle(self.root, [])

    def find(self, scope: Scope) -> tuple[Route, Scope] | None:
        """The route the router would serve ``scope`` by and what it adds to the scope,
        when a plain ``Route`` matches fully before any other kind of route matches.

        When routes match the path but none the method, a 405 names every method they
        take (the router names only the first such route's)."""
        node = self.root
        segments = get_route_path(scope).split("/")[1:]
        for segment in segments:
            child = node.children.get(segment)
            if child is None:
                break
            node = child
        allowed: set[str] = set()
        for count, route in node.candidates:
            if count is not None and count != len(segments):
                continue  # its regex could not match: no parameter spans a "/"
            match, child_scope = route.matches(scope)
            if match is Match.NONE:
                continue
            if not isinstance(route, Route):
                return None  # a mount or an included router: the router serves its own way
            if match is Match.FULL:
                return route, child_scope
            allowed |= route.methods or set()
        if allowed:
            raise HTTPException(405, headers={"Allow": ", ".join(sorted(allowed))})
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        found = self.find(scope) if scope["type"] == "http" else None
        if found is None:
            await self.dispatch(scope, receive, send)
            return
        route, child_scope = found
        scope.setdefault("router", self.router)
        scope.update(child_scope)
        await route.handle(scope, receive, send)


def _settle(node: _Node, above: list[tuple[int, BaseRoute]]) -> None:
    """Give every node its candidates: its own routes and its ancestors', in router order."""
    reachable = sorted(above + node.own, key=lambda entry: entry[0])
    node.candidates = [(_segment_count(route), route) for _, route in reachable]
    for child in node.children.values():
        _settle(child, reachable)


def index_routes(router: Router) -> None:
    """Dispatch ``router``'s requests through a RouteIndex; call once its routes are added
    (a route added later is still served, by the router, after the indexed ones)."""
    router.middleware_stack = RouteIndex(router)
