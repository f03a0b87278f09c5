"""The schema is ready to be distributed by customer, as docs/SCALING.md plans it."""

import re
from pathlib import Path

import sqlalchemy as sa

from crm_api.models import metadata

SCALING = Path(__file__).resolve().parents[1] / "docs" / "SCALING.md"
# The two unique keys of `customers` that cannot lead with its id; the document says how
# they hold once customers are sharded.
IDENTITY_KEYS = {("customers", "external_id"), ("customers", "lower(customers.email)")}


def placements() -> dict[str, str]:
    rows = re.findall(r"^\| (\w+) \| (distributed|reference|coordinator) \|$", SCALING.read_text(),
                      re.MULTILINE)  # fmt: skip
    return dict(rows)


def keys(table: sa.Table) -> list[list[str]]:
    """The table's primary key and every unique constraint and unique index, as the
    column names (or expressions) each starts with, in order."""
    found = [[c.name for c in table.primary_key.columns]]
    found += [
        [c.name for c in constraint.columns]
        for constraint in table.constraints
        if isinstance(constraint, sa.UniqueConstraint)
    ]
    found += [[_named(e) for e in index.expressions] for index in table.indexes if index.unique]
    return found


def _named(expression: sa.ColumnElement[object]) -> str:
    return expression.name if isinstance(expression, sa.Column) else str(expression)


def test_every_table_has_a_documented_placement() -> None:
    documented = placements()
    tables = set(metadata.tables)
    assert tables - documented.keys() == set(), "add these tables to docs/SCALING.md"
    assert documented.keys() - tables == set(), "docs/SCALING.md lists tables that do not exist"


def test_distributed_tables_lead_every_key_with_the_customer() -> None:
    for name, placement in placements().items():
        if placement != "distributed":
            continue
        table = metadata.tables[name]
        column = "id" if name == "customers" else "customer_id"
        assert not table.c[column].nullable, name
        for key in keys(table):
            if (name, key[0]) in IDENTITY_KEYS:
                continue
            assert key[0] == column, f"{name}: key {key} does not lead with {column}"


def test_foreign_keys_between_distributed_tables_carry_the_customer() -> None:
    documented = placements()
    for name, placement in documented.items():
        if placement != "distributed":
            continue
        for fk in metadata.tables[name].foreign_key_constraints:
            target = fk.referred_table.name
            if documented[target] != "distributed":
                continue
            pairs = {(c.name, e.column.name) for c, e in zip(fk.columns, fk.elements, strict=True)}
            target_column = "id" if target == "customers" else "customer_id"
            assert ("customer_id", target_column) in pairs, f"{name} -> {target}: {pairs}"


def test_customer_owned_tables_are_distributed() -> None:
    """A table whose every row belongs to a customer is sharded with its customer, not
    left on the coordinator or copied to every node."""
    for name, placement in placements().items():
        table = metadata.tables[name]
        if "customer_id" in table.c and not table.c.customer_id.nullable:
            assert placement == "distributed", name


def test_the_reference_tables_include_the_shared_definitions() -> None:
    reference = {name for name, p in placements().items() if p == "reference"}
    assert {"loyalty_programs", "segments", "api_keys", "webhook_endpoints"} <= reference


def test_the_document_says_how_identity_uniqueness_survives_sharding() -> None:
    text = SCALING.read_text()
    section = text[text.index("### Unique email and external id") :]
    assert "customer_identities" in section and "409" in section
    customers = metadata.tables["customers"]
    unique = {("customers", _named(i.expressions[0])) for i in customers.indexes if i.unique}
    assert unique == IDENTITY_KEYS
