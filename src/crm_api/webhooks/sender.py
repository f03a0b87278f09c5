"""One delivery attempt: sign, POST within time and size bounds, report what happened."""

import asyncio
import itertools
import math
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

from crm_api import __version__
from crm_api.webhooks.signing import signature_header
from crm_api.webhooks.targets import TargetPolicy, TargetRefused

RESPONSE_KEPT_BYTES = 1024
CONNECTIONS_PER_POOL = 4
MAX_RETRY_AFTER_SECONDS = 24 * 3600


@dataclass(frozen=True, slots=True)
class Job:
    delivery_id: uuid.UUID
    endpoint_id: uuid.UUID
    attempt: int
    url: str
    secrets: list[str]
    body: bytes


@dataclass(frozen=True, slots=True)
class Outcome:
    job: Job
    attempted_at: datetime
    duration_ms: int
    status_code: int | None = None
    response_body: str | None = None
    error: str | None = None
    retry_after: float | None = None  # seconds the receiver asked us to wait (429/503)

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300

    @property
    def gone(self) -> bool:
        return self.status_code == 410


class Sender:
    def __init__(
        self,
        policy: TargetPolicy,
        *,
        connect_timeout: float,
        total_timeout: float,
        connections: int,
    ) -> None:
        self._policy = policy
        self._total_timeout = total_timeout
        # Several small pools, used in turn: an httpx pool's bookkeeping walks all of its
        # connections on every request, so one pool of 64 cost four times what 16 of 4 do.
        self._clients = [
            httpx.AsyncClient(
                timeout=httpx.Timeout(total_timeout, connect=connect_timeout),
                follow_redirects=False,
                limits=httpx.Limits(
                    max_connections=CONNECTIONS_PER_POOL,
                    max_keepalive_connections=CONNECTIONS_PER_POOL,
                ),
                trust_env=False,  # no proxies or netrc from the environment
                headers={"User-Agent": f"crm-api-webhooks/{__version__}"},
            )
            for _ in range(max(1, math.ceil(connections / CONNECTIONS_PER_POOL)))
        ]
        self._turn = itertools.cycle(self._clients)

    async def aclose(self) -> None:
        for client in self._clients:
            await client.aclose()

    async def send(self, job: Job) -> Outcome:
        attempted_at = datetime.now(UTC)
        started = time.perf_counter()

        def outcome(**fields: object) -> Outcome:
            duration = round((time.perf_counter() - started) * 1000)
            return Outcome(job, attempted_at, duration, **fields)  # type: ignore[arg-type]

        client = next(self._turn)
        try:
            async with asyncio.timeout(self._total_timeout):
                request = await self._request(client, job)
                response = await client.send(request, stream=True)
                try:
                    kept = await _read_start(response)
                finally:
                    await response.aclose()
        except TargetRefused as exc:
            return outcome(error=f"target refused: the URL {exc}")
        except TimeoutError:
            return outcome(error=f"timed out after {self._total_timeout:g} s")
        except httpx.HTTPError as exc:
            return outcome(error=f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
        return outcome(
            status_code=response.status_code,
            response_body=kept.decode(errors="replace"),
            retry_after=_retry_after(response) if response.status_code in (429, 503) else None,
        )

    async def _request(self, client: httpx.AsyncClient, job: Job) -> httpx.Request:
        target = await self._policy.resolve(job.url)
        timestamp = int(time.time())
        message_id = str(job.delivery_id)
        headers = {
            "Content-Type": "application/json",
            "webhook-id": message_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": signature_header(message_id, timestamp, job.body, job.secrets),
        }
        url = httpx.URL(job.url)
        extensions = {}
        if target.address is not None:
            # Connect to the address that was checked, not to a fresh lookup of the name.
            headers["Host"] = url.netloc.decode()
            extensions["sni_hostname"] = target.host
            url = url.copy_with(host=str(target.address))
        return client.build_request(
            "POST", url, content=job.body, headers=headers, extensions=extensions
        )


async def _read_start(response: httpx.Response) -> bytes:
    kept = b""
    async for chunk in response.aiter_raw():
        kept += chunk
        if len(kept) >= RESPONSE_KEPT_BYTES:
            break
    return kept[:RESPONSE_KEPT_BYTES]


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", "").strip()
    if not value:
        return None
    if value.isdigit():
        seconds = float(value)
    else:
        try:
            seconds = (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds()
        except (TypeError, ValueError):
            return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_SECONDS)
