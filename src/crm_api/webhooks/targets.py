"""Where deliveries may go: http(s) URLs, and in production no private addresses.

Addresses are checked when an endpoint is saved and again at every delivery, against the
address the connection will actually use, so a name that later resolves somewhere
private (DNS rebinding) is refused too.
"""

import asyncio
import ipaddress
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from crm_api.config import Settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class TargetRefused(Exception):
    """The URL or the address it resolves to may not receive deliveries."""


@dataclass(frozen=True, slots=True)
class Target:
    url: str
    host: str
    port: int
    # Set when the address was checked: the connection must go there and nowhere else.
    address: IPAddress | None


def parse_url(url: str) -> tuple[str, int]:
    """The host and port of a webhook URL, or ``TargetRefused`` saying what is wrong."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise TargetRefused(f"is not a valid URL ({exc})") from None
    if parts.scheme not in ("http", "https"):
        raise TargetRefused("must be an http or https URL")
    if not parts.hostname:
        raise TargetRefused("has no host")
    if parts.fragment:
        raise TargetRefused("must not carry a #fragment")
    return parts.hostname, port or (443 if parts.scheme == "https" else 80)


class TargetPolicy:
    def __init__(self, *, block_private: bool, allowed: Sequence[IPNetwork] = ()) -> None:
        self.block_private = block_private
        self._allowed = tuple(allowed)

    def permits(self, address: IPAddress) -> bool:
        if any(address in network for network in self._allowed):
            return True
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        # Not global covers private, loopback, link-local (cloud metadata at
        # 169.254.169.254), shared, reserved and documentation ranges.
        return address.is_global and not address.is_multicast

    async def resolve(self, url: str) -> Target:
        """Check ``url`` and, when private networks are blocked, pick the address to use."""
        host, port = parse_url(url)
        if not self.block_private:
            return Target(url, host, port, None)
        addresses = await _addresses(host, port)
        permitted = [a for a in addresses if self.permits(a)]
        if not permitted:
            raise TargetRefused(
                f"resolves to a private, loopback or link-local address ({addresses[0]})"
            )
        return Target(url, host, port, permitted[0])


def policy_for(settings: "Settings") -> TargetPolicy:
    return TargetPolicy(
        block_private=settings.blocks_private_networks, allowed=settings.webhook_allowed_networks
    )


async def _addresses(host: str, port: int) -> list[IPAddress]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise TargetRefused(f"host {host!r} does not resolve ({exc.strerror or exc})") from None
    # Strip an IPv6 zone ("fe80::1%eth0") before parsing.
    return list(dict.fromkeys(ipaddress.ip_address(str(i[4][0]).split("%")[0]) for i in infos))
