"""Customer histories for KPI and cohort tests: interactions over REST, and the past that no
API can write (a customer created, or a lifecycle move made, days ago) straight to SQL."""

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg
import httpx

from crm_api.analytics import daily_totals


@dataclass
class History:
    api: httpx.AsyncClient
    sql: asyncpg.Connection
    now: datetime

    def ago(self, days: float) -> datetime:
        return self.now - timedelta(days=days)

    async def customer(self, created_days_ago: float = 0, **fields: object) -> str:
        fields.setdefault("email", f"{uuid.uuid4().hex[:12]}@example.com")
        response = await self.api.post("/v1/customers", json=fields)
        assert response.status_code == 201, response.text
        customer_id = response.json()["id"]
        if created_days_ago:
            await self.sql.execute(
                "UPDATE customers SET created_at = $2 WHERE id = $1",
                uuid.UUID(customer_id),
                self.ago(created_days_ago),
            )
        return customer_id

    async def created_at(self, customer_id: str, when: datetime) -> None:
        await self.sql.execute(
            "UPDATE customers SET created_at = $2 WHERE id = $1", uuid.UUID(customer_id), when
        )

    async def record(self, customer_id: str, type: str, when: datetime, **fields: object) -> None:
        response = await self.api.post(
            "/v1/interactions",
            json={
                "customer_id": customer_id,
                "type": type,
                "channel": "web",
                "occurred_at": when.isoformat(),
                **fields,
            },
        )
        assert response.status_code == 201, response.text

    async def buy(self, customer_id: str, days_ago: float, amount: int, currency="EUR") -> None:
        await self.record(
            customer_id, "purchase", self.ago(days_ago), amount=amount, currency=currency
        )

    async def refund(self, customer_id: str, days_ago: float, amount: int, currency="EUR") -> None:
        await self.record(
            customer_id, "refund", self.ago(days_ago), amount=amount, currency=currency
        )

    async def feedback(self, customer_id: str, days_ago: float, nps: int, csat: int) -> None:
        await self.record(customer_id, "feedback", self.ago(days_ago), nps=nps, csat=csat)

    async def roll(self) -> None:
        """What the worker does on its schedule: the daily totals take in what was written."""
        await daily_totals.roll(self.sql)

    async def delete(self, customer_id: str) -> None:
        response = await self.api.delete(f"/v1/customers/{customer_id}")
        assert response.status_code == 204, response.text

    async def moved(self, customer_id: str, to_stage: str, days_ago: float) -> None:
        await self.sql.execute(
            """INSERT INTO lifecycle_transitions
                   (customer_id, id, from_stage, to_stage, automatic, occurred_at)
               VALUES ($1, $2, 'at_risk', $3, false, $4)""",
            uuid.UUID(customer_id),
            uuid.uuid4(),
            to_stage,
            self.ago(days_ago),
        )

    async def clv_run(self, scores: dict[str, float | None], currency: str = "EUR") -> str:
        """A finished CLV run scoring customers in major units, as the CLV scorers do."""
        run_id = uuid.uuid4()
        await self.sql.execute(
            """INSERT INTO scoring_runs (id, scorer, scorer_version, kind, config,
                   observation_end, time_unit, currency, status, finished_at)
               VALUES ($1, 'gamma_gamma', '1', 'clv', '{}', now(), 'weeks', $2,
                       'succeeded', now())""",
            run_id,
            currency,
        )
        await self.sql.executemany(
            """INSERT INTO customer_scores (customer_id, run_id, scorer, kind, score)
               VALUES ($1, $2, 'gamma_gamma', 'clv', $3)""",
            [(uuid.UUID(c), run_id, score) for c, score in scores.items()],
        )
        return str(run_id)
