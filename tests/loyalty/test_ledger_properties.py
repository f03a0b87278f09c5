"""Any sequence of earns, redeems, adjustments and reversals, over HTTP: each succeeds
exactly when a plain model of the account says it can, and the books always balance."""

from dataclasses import dataclass, field

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

OPERATIONS = st.lists(
    st.one_of(
        st.tuples(st.just("earn"), st.integers(1, 50)),
        st.tuples(st.just("redeem"), st.integers(1, 60)),
        # A redeem of the balance give or take two points: the edge where it tips over.
        st.tuples(st.just("redeem_near"), st.integers(-2, 2)),
        st.tuples(st.just("adjust"), st.integers(-60, 60).filter(bool)),
        st.tuples(st.just("reverse"), st.integers(0, 1000)),  # which earlier entry
    ),
    min_size=1,
    max_size=12,
)


@dataclass
class Model:
    """The account as arithmetic: a balance, and each entry's points and reversals."""

    balance: int = 0
    entries: list[dict] = field(default_factory=list)  # id, kind, points, reversed

    def expect(self, action: str, amount: int) -> tuple[int, int | None]:
        """(status, signed points of the entry) the API should answer."""
        if action == "earn":
            return 201, amount
        if action in ("redeem", "adjust"):
            points = -amount if action == "redeem" else amount
            return (201, points) if self.balance + points >= 0 else (409, None)
        target = self.entries[amount % len(self.entries)]
        left = abs(target["points"]) - target["reversed"]
        if target["kind"] == "reverse" or left == 0:
            return 409, None
        if target["points"] > 0:  # taking back a credit needs the points to be there
            return (201, -left) if self.balance >= left else (409, None)
        return 201, left  # giving back a debit always can

    def apply(self, action: str, amount: int, entry: dict) -> None:
        if action == "reverse":
            target = self.entries[amount % len(self.entries)]
            target["reversed"] += abs(entry["points"])
        self.balance += entry["points"]
        self.entries.append(
            {"id": entry["id"], "kind": entry["kind"], "points": entry["points"], "reversed": 0}
        )


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(operations=OPERATIONS)
async def test_the_ledger_agrees_with_arithmetic_whatever_the_sequence(
    operations, api, create_program, enrol, write, account_of, books
) -> None:
    account = await enrol(await create_program())
    model = Model()
    for action, amount in operations:
        if action == "reverse" and not model.entries:
            continue
        if action == "redeem_near":
            action, amount = "redeem", max(1, model.balance + amount)
        status, points = model.expect(action, amount)
        if action == "reverse":
            target = model.entries[amount % len(model.entries)]
            response = await api.post(
                f"/v1/loyalty/entries/{target['id']}/reverse", json={"reason": "property"}
            )
        elif action == "adjust":
            response = await write(account, "adjust", points=amount, reason="property")
        else:
            response = await write(account, action, points=amount)
        assert response.status_code == status, (action, amount, response.text)
        if status == 201:
            entry = response.json()
            assert entry["points"] == points
            assert entry["balance_after"] == model.balance + points
            model.apply(action, amount, entry)
    assert await books(account) == model.balance
    shown = await account_of(account)
    assert shown["available"] == shown["balance"] == model.balance
