"""Loyalty over GraphQL: the same services, the same rules and errors as REST."""

import httpx
import pytest

PROGRAM = """
mutation ($input: LoyaltyProgramInput!) {
  createLoyaltyProgram(input: $input) { id name pointsPerUnit rounding tiers { name threshold } }
}"""
ENROL = """
mutation ($customerId: ID!, $programId: ID!) {
  enrolLoyaltyAccount(customerId: $customerId, programId: $programId) { id balance }
}"""
EARN = """
mutation ($accountId: ID!, $input: LoyaltyEarnInput!, $key: String) {
  earnLoyaltyPoints(accountId: $accountId, input: $input, idempotencyKey: $key) {
    id kind points balanceAfter multiplier
  }
}"""
REDEEM = """
mutation ($accountId: ID!, $input: LoyaltyRedeemInput!) {
  redeemLoyaltyPoints(accountId: $accountId, input: $input) { id points balanceAfter }
}"""
REVERSE = """
mutation ($id: ID!, $input: LoyaltyReverseInput!) {
  reverseLoyaltyEntry(id: $id, input: $input) { points reversesId }
}"""
ACCOUNT = """
query ($id: ID!) {
  loyaltyAccount(id: $id) {
    balance available locked tier nextTier { name pointsNeeded }
    entries(first: 10) { edges { node { kind points seq } } }
  }
}"""


async def _gql(api: httpx.AsyncClient, query: str, headers: dict | None = None, **variables):
    response = await api.post(
        "/graphql", json={"query": query, "variables": variables}, headers=headers or {}
    )
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture
async def account(api, new_customer) -> dict:  # type: ignore[no-untyped-def]
    program = await _gql(
        api,
        PROGRAM,
        input={"name": "GraphQL club", "currency": "EUR", "pointsPerUnit": "2",
               "rounding": "NEAREST", "tiers": [{"name": "Silver", "threshold": 100}]},
    )  # fmt: skip
    assert "errors" not in program, program
    customer = await new_customer()
    enrolled = await _gql(
        api,
        ENROL,
        customerId=customer["id"],
        programId=program["data"]["createLoyaltyProgram"]["id"],
    )
    assert "errors" not in enrolled, enrolled
    return enrolled["data"]["enrolLoyaltyAccount"]


async def test_earn_redeem_reverse_through_graphql(api, account, books) -> None:
    earned = await _gql(
        api, EARN, accountId=account["id"], input={"amount": 2525, "currency": "EUR"}
    )
    assert earned["data"]["earnLoyaltyPoints"]["points"] == 51
    assert earned["data"]["earnLoyaltyPoints"]["multiplier"] == "1"
    redeemed = await _gql(api, REDEEM, accountId=account["id"], input={"points": 20})
    assert redeemed["data"]["redeemLoyaltyPoints"]["balanceAfter"] == 31
    entry_id = earned["data"]["earnLoyaltyPoints"]["id"]
    reversed_ = await _gql(api, REVERSE, id=entry_id, input={"reason": "cancelled", "points": 1})
    assert reversed_["data"]["reverseLoyaltyEntry"] == {"points": -1, "reversesId": entry_id}
    shown = (await _gql(api, ACCOUNT, id=account["id"]))["data"]["loyaltyAccount"]
    assert shown["balance"] == shown["available"] == 30
    assert shown["nextTier"] == {"name": "Silver", "pointsNeeded": 50}
    kinds = [e["node"]["kind"] for e in shown["entries"]["edges"]]
    assert kinds == ["REVERSE", "REDEEM", "EARN"]
    assert await books(account) == 30


async def test_an_idempotency_key_makes_one_entry_through_graphql(api, account, books) -> None:
    first = await _gql(api, EARN, accountId=account["id"], input={"points": 5}, key="gql-1")
    again = await _gql(api, EARN, accountId=account["id"], input={"points": 5}, key="gql-1")
    assert again["data"] == first["data"]
    bad = await _gql(api, EARN, accountId=account["id"], input={"points": 5}, key="")
    assert bad["errors"][0]["extensions"]["errors"][0]["field"] == "idempotencyKey"
    assert await books(account) == 5


async def test_errors_and_scopes_speak_the_rest_vocabulary(api, account, key_for) -> None:
    overdraw = await _gql(api, REDEEM, accountId=account["id"], input={"points": 1})
    assert overdraw["errors"][0]["extensions"]["code"] == "insufficient-points"
    invalid = await _gql(api, EARN, accountId=account["id"], input={})
    assert invalid["errors"][0]["extensions"]["code"] == "validation-error"
    reader = await key_for("loyalty:read")
    denied = await _gql(api, EARN, reader, accountId=account["id"], input={"points": 1})
    assert denied["errors"][0]["extensions"]["code"] == "forbidden"
    allowed = await _gql(api, ACCOUNT, reader, id=account["id"])
    assert allowed["data"]["loyaltyAccount"]["balance"] == 0


async def test_programmes_and_rewards_through_graphql(api) -> None:
    created = await _gql(
        api,
        PROGRAM,
        input={"name": "Catalogue", "currency": "EUR", "pointsPerUnit": "0.5"},
    )
    program_id = created["data"]["createLoyaltyProgram"]["id"]
    updated = await _gql(
        api,
        """mutation ($id: ID!) {
          updateLoyaltyProgram(id: $id, input: {lockDays: 7}, ifMatchVersion: 1) {
            lockDays version
          }
        }""",
        id=program_id,
    )
    assert updated["data"]["updateLoyaltyProgram"] == {"lockDays": 7, "version": 2}
    stale = await _gql(
        api,
        """mutation ($id: ID!) {
          updateLoyaltyProgram(id: $id, input: {lockDays: 1}, ifMatchVersion: 1) { version }
        }""",
        id=program_id,
    )
    assert stale["errors"][0]["extensions"]["code"] == "precondition-failed"
    reward = await _gql(
        api,
        """mutation ($programId: ID!) {
          createLoyaltyReward(programId: $programId, input: {name: "Mug", cost: 50, stock: 2}) {
            id cost stock
          }
        }""",
        programId=program_id,
    )
    assert reward["data"]["createLoyaltyReward"]["stock"] == 2
    listed = await _gql(
        api,
        """query ($id: ID!) {
          loyaltyProgram(id: $id) { lockDays rewards { edges { node { name cost } } } }
        }""",
        id=program_id,
    )
    assert listed["data"]["loyaltyProgram"] == {
        "lockDays": 7, "rewards": {"edges": [{"node": {"name": "Mug", "cost": 50}}]},
    }  # fmt: skip
    deleted = await _gql(
        api, "mutation ($id: ID!) { deleteLoyaltyProgram(id: $id) }", id=program_id
    )
    assert deleted["data"]["deleteLoyaltyProgram"] == program_id
