"""Sentiment: scores stored with feedback and support texts, their trend, feedback.negative."""

import json
import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import pytest
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from support import events_of, eventually_events

SENTIMENT = "/v1/analytics/sentiment"
# VADER's compound scores of the texts used below (the library's own, read off once).
GREAT = ("Great service, thank you!", 0.784)
WORST = ("Terrible, the worst experience ever.", -0.802)
PLAIN = ("The parcel arrived on Tuesday.", 0.0)
LOVE = ("I love the new app", 0.6369)
AWFUL = ("Awful", -0.4588)
# Subject and body are scored as one text: "Broken again\nThe order ... useless." -> -0.743.
BROKEN = ("Broken again", "The order arrived broken and support was useless.", -0.743)


async def _record(api, customer_id: str, type_: str, **fields: object) -> dict:
    response = await api.post(
        "/v1/interactions", json={"customer_id": customer_id, "type": type_, **fields}
    )
    assert response.status_code == 201, response.text
    return response.json()


async def _hand_built(api, customer_id: str) -> dict[str, dict]:
    """Six scored interactions over two ISO weeks of November 2026, and unscored ones."""

    async def say(type_: str, channel: str, at: str, body: str, **fields: object) -> dict:
        return await _record(api, customer_id, type_, channel=channel, occurred_at=at, body=body,
                             **fields)  # fmt: skip

    made = {
        # Week starting Monday 2026-11-02.
        "great": await say("feedback", "email", "2026-11-03T10:00:00Z", GREAT[0]),
        "worst": await say("feedback", "email", "2026-11-04T10:00:00Z", WORST[0], nps=2),
        "plain": await say("support", "email", "2026-11-08T23:30:00Z", PLAIN[0]),
        "love": await say("feedback", "chat", "2026-11-05T12:00:00Z", LOVE[0]),
        # Week starting Monday 2026-11-09.
        "broken": await say(
            "support", "email", "2026-11-09T00:30:00Z", BROKEN[1], subject=BROKEN[0]
        ),
        "awful": await say("feedback", "email", "2026-11-10T08:00:00Z", AWFUL[0]),
        # Not scored: other types, even with a negative text, and feedback without text.
        "note": await say("note", "email", "2026-11-04T11:00:00Z", WORST[0]),
    }
    made["rating"] = await _record(
        api, customer_id, "feedback", channel="email", occurred_at="2026-11-04T12:00:00Z", csat=1
    )
    made["purchase"] = await _record(
        api, customer_id, "purchase", channel="web", occurred_at="2026-11-04T13:00:00Z",
        amount=1000, currency="EUR",
    )  # fmt: skip
    return made


async def test_feedback_and_support_texts_are_scored_on_write(api, new_customer):
    made = await _hand_built(api, (await new_customer())["id"])

    expected = {
        "great": GREAT[1], "worst": WORST[1], "plain": PLAIN[1], "love": LOVE[1],
        "broken": BROKEN[2], "awful": AWFUL[1],
        "note": None, "rating": None, "purchase": None,
    }  # fmt: skip
    for name, score in expected.items():
        assert made[name]["sentiment"] == pytest.approx(score), name
        stored = await api.get(f"/v1/interactions/{made[name]['id']}")
        assert stored.json()["sentiment"] == made[name]["sentiment"], name


async def test_a_long_text_is_judged_by_its_opening(api, new_customer):
    vader = SentimentIntensityAnalyzer()
    opening = (WORST[0] + " ") * 27  # 37 characters each: 999
    body = opening + "Great service, thank you! " * 700  # 19,199 characters
    assert vader.polarity_scores(body)["compound"] > 0.9  # the whole text reads positive

    made = await _record(api, (await new_customer())["id"], "feedback", body=body)

    assert made["sentiment"] == pytest.approx(vader.polarity_scores(body[:1000])["compound"])
    assert made["sentiment"] < -0.9


async def test_trend_per_week_and_channel_on_hand_built_data(api, new_customer):
    await _hand_built(api, (await new_customer())["id"])

    response = await api.get(SENTIMENT, params={"period": "week"})

    assert response.status_code == 200, response.text
    assert response.json() == {
        "period": "week",
        "points": [
            {   # love alone: 0.6369, positive.
                "period_start": "2026-11-02T00:00:00Z", "channel": "chat", "count": 1,
                "mean": pytest.approx(0.6369),
                "negative_share": 0.0, "neutral_share": 0.0, "positive_share": 1.0,
            },
            {   # great, worst, plain (Sunday 23:30 UTC is still that week):
                # (0.784 - 0.802 + 0.0) / 3 = -0.018 / 3 = -0.006; one of each kind.
                "period_start": "2026-11-02T00:00:00Z", "channel": "email", "count": 3,
                "mean": pytest.approx(-0.006),
                "negative_share": pytest.approx(1 / 3),
                "neutral_share": pytest.approx(1 / 3),
                "positive_share": pytest.approx(1 / 3),
            },
            {   # broken, awful: (-0.743 - 0.4588) / 2 = -1.2018 / 2 = -0.6009; both negative.
                "period_start": "2026-11-09T00:00:00Z", "channel": "email", "count": 2,
                "mean": pytest.approx(-0.6009),
                "negative_share": 1.0, "neutral_share": 0.0, "positive_share": 0.0,
            },
        ],
    }  # fmt: skip


async def test_trend_per_month_and_filtered(api, new_customer):
    await _hand_built(api, (await new_customer())["id"])

    month = (await api.get(SENTIMENT, params={"period": "month"})).json()["points"]
    # email: (0.784 - 0.802 + 0.0 - 0.743 - 0.4588) / 5 = -1.2198 / 5 = -0.24396;
    # negative: worst, broken, awful = 3/5; neutral: plain = 1/5; positive: great = 1/5.
    assert [(p["period_start"], p["channel"], p["count"]) for p in month] == [
        ("2026-11-01T00:00:00Z", "chat", 1),
        ("2026-11-01T00:00:00Z", "email", 5),
    ]
    assert month[1]["mean"] == pytest.approx(-0.24396)
    assert (month[1]["negative_share"], month[1]["neutral_share"]) == pytest.approx((0.6, 0.2))
    assert month[1]["positive_share"] == pytest.approx(0.2)

    # Support only: plain (0.0) in the first week, broken (-0.743) in the second.
    support = (await api.get(SENTIMENT, params={"period": "week", "type": "support"})).json()
    assert [(p["period_start"], p["count"], p["mean"]) for p in support["points"]] == [
        ("2026-11-02T00:00:00Z", 1, 0.0),
        ("2026-11-09T00:00:00Z", 1, pytest.approx(-0.743)),
    ]
    # [from, to) keeps the second week's email only; the chat channel keeps love only.
    second = await api.get(
        SENTIMENT, params={"from": "2026-11-09T00:00:00Z", "to": "2026-11-16T00:00:00Z"}
    )
    assert [(p["channel"], p["count"]) for p in second.json()["points"]] == [("email", 2)]
    chat = (await api.get(SENTIMENT, params={"period": "day", "channel": "chat"})).json()
    assert [(p["period_start"], p["count"]) for p in chat["points"]] == [
        ("2026-11-05T00:00:00Z", 1)
    ]


async def test_trend_over_graphql_matches_rest(api, new_customer):
    await _hand_built(api, (await new_customer())["id"])
    query = """query($period: SentimentPeriod!) { sentimentTrend(period: $period, channel: EMAIL) {
        periodStart channel count mean negativeShare neutralShare positiveShare } }"""

    body = await api.post("/graphql", json={"query": query, "variables": {"period": "WEEK"}})
    rest = (await api.get(SENTIMENT, params={"period": "week", "channel": "email"})).json()

    assert "errors" not in body.json(), body.text
    points = body.json()["data"]["sentimentTrend"]
    assert [(p["count"], p["mean"], p["negativeShare"]) for p in points] == [
        (p["count"], p["mean"], p["negative_share"]) for p in rest["points"]
    ]
    assert [p["channel"] for p in points] == ["EMAIL", "EMAIL"]


async def test_trend_on_generated_data_matches_an_independent_computation(api, new_customer):
    rng = random.Random(7)
    vader = SentimentIntensityAnalyzer()
    texts = [GREAT[0], WORST[0], PLAIN[0], LOVE[0], AWFUL[0], "Not bad", "The reply was fine"]
    customers = [(await new_customer())["id"] for _ in range(3)]
    start = datetime(2026, 9, 1, tzinfo=UTC)
    lines = [
        {
            "customer_id": rng.choice(customers),
            "type": rng.choice(["feedback", "support", "chat"]),
            "channel": rng.choice(["email", "chat", "phone"]),
            "occurred_at": (start + timedelta(hours=rng.randrange(24 * 70))).isoformat(),
            "body": rng.choice(texts),
        }
        for _ in range(120)
    ]
    imported = await api.post(
        "/v1/interactions/import",
        content="\n".join(json.dumps(line) for line in lines),
        headers={"Content-Type": "application/x-ndjson"},
    )
    assert imported.status_code == 200, imported.text
    assert imported.json()["created"] == 120

    groups: dict[tuple[str, str], list[float]] = defaultdict(list)
    for line in lines:
        if line["type"] == "chat":  # chats are not scored
            continue
        at = datetime.fromisoformat(line["occurred_at"])
        month = at.strftime("%Y-%m-01T00:00:00Z")
        groups[(month, line["channel"])].append(vader.polarity_scores(line["body"])["compound"])
    expected = [
        {
            "period_start": month,
            "channel": channel,
            "count": len(scores),
            "mean": pytest.approx(sum(scores) / len(scores)),
            "negative_share": pytest.approx(sum(s <= -0.05 for s in scores) / len(scores)),
            "neutral_share": pytest.approx(sum(-0.05 < s < 0.05 for s in scores) / len(scores)),
            "positive_share": pytest.approx(sum(s >= 0.05 for s in scores) / len(scores)),
        }
        for (month, channel), scores in sorted(groups.items())
    ]

    trend = await api.get(SENTIMENT, params={"period": "month"})

    assert trend.json()["points"] == expected


async def test_negative_feedback_emits_an_event_below_the_threshold_only(api, new_customer):
    customer = (await new_customer())["id"]
    made = await _hand_built(api, customer)
    # Imported feedback is judged the same way.
    imported = await api.post(
        "/v1/interactions/import",
        content="\n".join(
            json.dumps({"customer_id": customer, "type": "feedback", "body": body})
            for body in (WORST[0], AWFUL[0], GREAT[0])
        ),
        headers={"Content-Type": "application/x-ndjson"},
    )
    assert imported.json()["created"] == 3

    # Below -0.5 (the default threshold): worst (-0.802), recorded and imported. Not the
    # support text broken (-0.743), not awful (-0.4588), not the note with worst's text.
    await eventually_events(api, 12, type="interaction.created")
    negative = await events_of(api, type="feedback.negative")

    assert len(negative) == 2
    assert negative[0]["data"] == made["worst"]
    assert negative[1]["data"]["body"] == WORST[0]
    assert negative[1]["data"]["sentiment"] == pytest.approx(WORST[1])
    assert {e["customer_id"] for e in negative} == {customer}
