"""Sentiment of feedback and support texts: the score given on write, and its trend."""

from datetime import datetime
from enum import StrEnum
from functools import cache

import sqlalchemy as sa
from pydantic import BaseModel, Field
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from crm_api.core import db
from crm_api.core.auth import Principal
from crm_api.core.channels import Channel
from crm_api.core.db import Queryable
from crm_api.core.types import Timestamp
from crm_api.interactions.models import interactions as t
from crm_api.interactions.schemas import InteractionType

SCORED_TYPES = frozenset({InteractionType.FEEDBACK, InteractionType.SUPPORT})
# VADER's cost grows faster than the text (about 1.6 ms for 1,000 characters, 60 ms for
# 5,000 here), and scoring runs on the write path: a longer text is judged by its opening.
SCORED_CHARACTERS = 1000
# VADER's own cut-offs on the compound score.
POSITIVE_FROM = 0.05
NEGATIVE_TO = -0.05


@cache
def _analyzer() -> SentimentIntensityAnalyzer:
    """One per process, built on first use: it reads its lexicon file. Read-only after."""
    return SentimentIntensityAnalyzer()


def score(type_: InteractionType, subject: str | None, body: str | None) -> float | None:
    """VADER's compound score (-1 most negative .. 1 most positive) of a feedback or support
    text (subject and body, their first 1,000 characters); None for other types and for
    interactions without text."""
    if type_ not in SCORED_TYPES:
        return None
    text = "\n".join(part for part in (subject, body) if part)[:SCORED_CHARACTERS]
    return _analyzer().polarity_scores(text)["compound"] if text else None


class Period(StrEnum):
    DAY = "day"
    WEEK = "week"
    MONTH = "month"


class SentimentPoint(BaseModel):
    period_start: datetime = Field(
        description="Start of the period in UTC (weeks start on Monday, months on the 1st)."
    )
    channel: Channel | None = Field(description="The interactions' channel; null: none given.")
    count: int = Field(description="Scored interactions in the period and channel.")
    mean: float = Field(description="Mean compound score: sum(score) / count.")
    negative_share: float = Field(
        description=f"Share with score <= {NEGATIVE_TO}: their number / count."
    )
    neutral_share: float = Field(
        description=f"Share with {NEGATIVE_TO} < score < {POSITIVE_FROM}: their number / count."
    )
    positive_share: float = Field(
        description=f"Share with score >= {POSITIVE_FROM}: their number / count."
    )


class SentimentTrend(BaseModel):
    period: Period
    points: list[SentimentPoint] = Field(
        description="One per period and channel with scored interactions, oldest period first."
    )


class SentimentFilters(BaseModel):
    period: Period = Period.WEEK
    since: Timestamp | None = None
    until: Timestamp | None = None
    channel: Channel | None = None
    type: InteractionType | None = None


def _share(condition: sa.ColumnElement[bool]) -> sa.ColumnElement[float]:
    return sa.func.avg(sa.case((condition, 1.0), else_=0.0))


async def trend(conn: Queryable, principal: Principal, filters: SentimentFilters) -> SentimentTrend:
    """Scored interactions per period and channel, oldest period first, in one statement."""
    period_start = sa.func.date_trunc(filters.period.value, t.c.occurred_at, "UTC")
    query = (
        sa.select(
            period_start.label("period_start"),
            t.c.channel,
            sa.func.count().label("count"),
            sa.func.avg(t.c.sentiment).label("mean"),
            _share(t.c.sentiment <= NEGATIVE_TO).label("negative_share"),
            _share((t.c.sentiment > NEGATIVE_TO) & (t.c.sentiment < POSITIVE_FROM)).label(
                "neutral_share"
            ),
            _share(t.c.sentiment >= POSITIVE_FROM).label("positive_share"),
        )
        .where(t.c.sentiment.isnot(None))
        # By label: the period's bound parameters would make a repeated expression differ.
        .group_by(sa.literal_column("period_start"), t.c.channel)
        .order_by(sa.literal_column("period_start"), t.c.channel.nulls_first())
    )
    if filters.since is not None:
        query = query.where(t.c.occurred_at >= filters.since)
    if filters.until is not None:
        query = query.where(t.c.occurred_at < filters.until)
    if filters.channel is not None:
        query = query.where(t.c.channel == filters.channel.value)
    if filters.type is not None:
        query = query.where(t.c.type == filters.type.value)
    rows = await db.fetch(conn, query)
    return SentimentTrend(
        period=filters.period, points=[SentimentPoint.model_validate(dict(r)) for r in rows]
    )
