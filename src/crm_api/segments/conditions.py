"""The segment condition language: a JSON tree, validated by pydantic, compiled to SQL.

A condition is a JSON object named by its one key:

- ``{"all": [...]}``, ``{"any": [...]}``, ``{"not": {...}}`` combine conditions;
- ``{"field": "country", "op": "in", "value": ["DE", "AT"]}`` compares a customer field, a
  label list (``tags``, ``interests``, ``values``) or a path into ``attributes``
  (``attributes.loyalty.tier``);
- ``{"interactions": {"type": "purchase", "category": "vegetarian", "days": 90,
  "count": {"gte": 2}}}`` counts (or sums up) a customer's interactions;
- ``{"profitability": {"currency": "EUR", "days": 365, "profit": {"gte": 100000}}}``
  compares a customer's profit, gross margin or service cost (analytics/profitability.py);
- ``{"score": {"scorer": "rfm", "field": "label", "op": "eq", "value": "At Risk"}}``
  compares the customer's score in the scorer's latest succeeded run;
- ``{"segment": "<id>"}`` is membership of another segment, as last refreshed.

A tree compiles to one predicate over the customers table. Client values only ever become
bound parameters, and field names are looked up in a fixed registry. A condition about a
missing value is false, never NULL, so ``not`` is an exact complement. The compiler reads
the interactions, scores and segment members tables itself: membership must be one
set-based statement (DESIGN.md), which calls into other domains' services cannot give.
"""

import math
import operator
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Self

import sqlalchemy as sa
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    WrapValidator,
    field_validator,
    model_serializer,
    model_validator,
)
from pydantic_core import PydanticCustomError
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

from crm_api.analytics import profitability
from crm_api.core.channels import Channel
from crm_api.core.pii import PERSONAL_FIELDS
from crm_api.core.types import CurrencyCode, Label, Timestamp, bounded_text, fits_bigint, storable
from crm_api.customers.models import customers
from crm_api.customers.schemas import CustomerKind, Gender
from crm_api.interactions.models import interaction_items, interactions
from crm_api.interactions.schemas import InteractionType
from crm_api.scoring.models import customer_scores, scoring_runs
from crm_api.segments.models import segment_members

MAX_BRANCHES = 50  # conditions in one all / any
MAX_CONDITIONS = 200  # in one tree
MAX_DEPTH = 12
MAX_VALUES = 1000  # in one in / not_in list
MAX_TEXT = 1000


class Op(StrEnum):
    EQ = "eq"
    NEQ = "neq"
    IN = "in"
    NOT_IN = "not_in"
    GT = "gt"
    GTE = "gte"
    LT = "lt"
    LTE = "lte"
    BETWEEN = "between"
    CONTAINS = "contains"
    STARTS_WITH = "starts_with"
    EXISTS = "exists"


class ValueKind(StrEnum):
    TEXT = "text"
    NUMBER = "a number"
    DATE = "a date"
    TIMESTAMP = "a timestamp"
    LABELS = "a list of labels"
    JSON = "a JSON value"


_ORDERED = {Op.GT: operator.gt, Op.GTE: operator.ge, Op.LT: operator.lt, Op.LTE: operator.le}
_COMPARABLE = frozenset({Op.EQ, Op.NEQ, Op.IN, Op.NOT_IN, *_ORDERED, Op.BETWEEN, Op.EXISTS})
OPERATORS: dict[ValueKind, frozenset[Op]] = {
    ValueKind.TEXT: _COMPARABLE | {Op.CONTAINS, Op.STARTS_WITH},
    ValueKind.NUMBER: _COMPARABLE,
    ValueKind.DATE: _COMPARABLE,
    ValueKind.TIMESTAMP: _COMPARABLE,
    ValueKind.LABELS: frozenset({Op.CONTAINS, Op.IN, Op.NOT_IN, Op.EXISTS}),
    ValueKind.JSON: frozenset(Op),
}
# Negative operators compile as the negation of their positive twin.
_NEGATIONS = {Op.NEQ: Op.EQ, Op.NOT_IN: Op.IN}
_MEMBERSHIP = frozenset({Op.EQ, Op.NEQ, Op.IN, Op.NOT_IN})
_OPERATOR_NAMES = frozenset(Op)
_SQL_TYPES: dict[ValueKind, sa.types.TypeEngine[Any]] = {
    ValueKind.TEXT: sa.Text(),
    ValueKind.NUMBER: sa.Float(),
    ValueKind.DATE: sa.Date(),
    ValueKind.TIMESTAMP: sa.DateTime(timezone=True),
}


@dataclass(frozen=True, slots=True)
class Subject:
    """What a comparison reads: a column (for JSON, the document and a path into it)."""

    kind: ValueKind
    column: sa.ColumnElement[Any]
    personal: bool = False
    choices: frozenset[str] = frozenset()
    path: tuple[str, ...] = ()


_c = customers.c
_PERSONAL = {*PERSONAL_FIELDS, "address_line1", "address_line2", "email_domain"}
_TEXT_COLUMNS = (
    "kind", "external_id", "company_name", "first_name", "last_name", "email", "phone",
    "industry", "gender", "income_band", "education", "occupation", "lifestyle",
    "preferred_channel", "lifecycle_stage", "address_line1", "address_line2", "city",
    "region", "postal_code", "country", "acquisition_source", "acquisition_channel",
    "acquisition_campaign",
)  # fmt: skip
_COLUMNS: dict[str, tuple[ValueKind, sa.ColumnElement[Any]]] = {
    **{name: (ValueKind.TEXT, _c[name]) for name in _TEXT_COLUMNS},
    # What follows the last @; stored addresses have lower-case domains (core/email.py).
    "email_domain": (ValueKind.TEXT, sa.func.split_part(_c.email, "@", -1)),
    "birth_date": (ValueKind.DATE, _c.birth_date),
    "created_at": (ValueKind.TIMESTAMP, _c.created_at),
    "updated_at": (ValueKind.TIMESTAMP, _c.updated_at),
    "tags": (ValueKind.LABELS, _c.tags),
    "interests": (ValueKind.LABELS, _c.interests),
    "values": (ValueKind.LABELS, _c.psych_values),
}
_CHOICES = {"kind": CustomerKind, "gender": Gender, "preferred_channel": Channel}
CUSTOMER_FIELDS: dict[str, Subject] = {
    name: Subject(
        kind,
        column,
        personal=name in _PERSONAL,
        choices=frozenset(_CHOICES[name]) if name in _CHOICES else frozenset(),
    )
    for name, (kind, column) in _COLUMNS.items()
}
ATTRIBUTES = "attributes."
SCORE_FIELDS = {
    "score": Subject(ValueKind.NUMBER, customer_scores.c.score),
    "label": Subject(ValueKind.TEXT, customer_scores.c.label),
}


def customer_subject(field: str) -> Subject | None:
    if field in CUSTOMER_FIELDS:
        return CUSTOMER_FIELDS[field]
    if not field.startswith(ATTRIBUTES):
        return None
    path = tuple(field.removeprefix(ATTRIBUTES).split("."))
    if len(path) > 16 or not all(0 < len(key) <= 128 for key in path):
        return None
    return Subject(ValueKind.JSON, _c.attributes, path=path)


# -- values --------------------------------------------------------------------------


def _text(value: Any, max_length: int = MAX_TEXT) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= max_length:
        raise ValueError(f"must be text of 1 to {max_length} characters")
    return storable(value)


def _number(value: Any) -> int | float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("must be a number")
    if (isinstance(value, int) and not fits_bigint(value)) or not math.isfinite(value):
        raise ValueError("must be a finite number within 64-bit range")
    return value


def _date(value: Any) -> date:
    try:
        return date.fromisoformat(value)
    except (TypeError, ValueError):
        raise ValueError("must be a date, YYYY-MM-DD") from None


_TIMESTAMP = TypeAdapter(Timestamp)


def _timestamp(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return _TIMESTAMP.validate_python(value)
        except ValidationError:
            pass
    raise ValueError("must be an RFC 3339 timestamp with an offset")


def _json(value: Any) -> str | int | float | bool:
    if isinstance(value, str):
        return _text(value)
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return _number(value)
    raise ValueError("must be text, a number, true or false")


def _scalar(subject: Subject, op: Op, value: Any) -> Any:
    match subject.kind:
        case ValueKind.TEXT:
            text = _text(value)
            if subject.choices and op in _MEMBERSHIP and text not in subject.choices:
                raise ValueError(f"must be one of {', '.join(sorted(subject.choices))}")
            return text
        case ValueKind.NUMBER:
            return _number(value)
        case ValueKind.DATE:
            return _date(value)
        case ValueKind.TIMESTAMP:
            return _timestamp(value)
        case ValueKind.LABELS:
            return _text(value, max_length=64)
    scalar = _json(value)
    if op in _ORDERED or op is Op.BETWEEN:
        if isinstance(scalar, bool):
            raise ValueError(f"must be a number or text to compare with {op}")
    elif op is Op.STARTS_WITH and not isinstance(scalar, str):
        raise ValueError("must be text")
    return scalar


def operand(subject: Subject, op: Op, value: Any) -> Any:
    """What ``op`` compares ``subject`` with, parsed from ``value``; ValueError if unfit."""
    if op is Op.EXISTS:
        if value is not None and not isinstance(value, bool):
            raise ValueError("must be true, false or left out (true)")
        return value is not False
    if op in (Op.IN, Op.NOT_IN):
        if not isinstance(value, list) or not 0 < len(value) <= MAX_VALUES:
            raise ValueError(f"must be a list of 1 to {MAX_VALUES} values")
        return [_scalar(subject, op, v) for v in value]
    if op is Op.BETWEEN:
        if not isinstance(value, list) or len(value) != 2:
            raise ValueError("must be a list of two values: [low, high], both included")
        low, high = (_scalar(subject, op, v) for v in value)
        if isinstance(low, str) != isinstance(high, str):
            raise ValueError("low and high must both be numbers or both be text")
        if low > high:
            raise ValueError("low must not be above high")
        return low, high
    return _scalar(subject, op, value)


# -- SQL -----------------------------------------------------------------------------


def _pattern(text: str, *, anywhere: bool) -> str:
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return ("%" if anywhere else "") + escaped + "%"


def _column_test(subject: Subject, op: Op, parsed: Any) -> sa.ColumnElement[Any]:
    column, sql_type = subject.column, _SQL_TYPES[subject.kind]
    if op in _ORDERED:
        return _ORDERED[op](column, sa.literal(parsed, sql_type))
    match op:
        case Op.EQ:
            return column == sa.literal(parsed, sql_type)
        case Op.IN:
            return column == sa.any_(sa.literal(parsed, ARRAY(sql_type)))
        case Op.BETWEEN:
            return column.between(*(sa.literal(v, sql_type) for v in parsed))
        case Op.CONTAINS | Op.STARTS_WITH:
            pattern = _pattern(parsed, anywhere=op is Op.CONTAINS)
            return sa.func.lower(column).like(pattern, escape="\\")
    return column.isnot(None)


def _labels_test(subject: Subject, op: Op, parsed: Any) -> sa.ColumnElement[Any]:
    column = subject.column
    match op:
        case Op.CONTAINS:
            return column.contains(sa.literal([parsed], ARRAY(sa.Text)))
        case Op.IN:
            return column.overlap(sa.literal(parsed, ARRAY(sa.Text)))
    return sa.func.cardinality(column) > 0


def _json_test(subject: Subject, op: Op, parsed: Any) -> sa.ColumnElement[Any]:
    path = sa.literal(list(subject.path), ARRAY(sa.Text))
    value = subject.column.op("#>", return_type=JSONB)(path)
    text = subject.column.op("#>>", return_type=sa.Text)(path)
    json_type = sa.func.jsonb_typeof(value)

    def comparable(bound: Any) -> tuple[sa.ColumnElement[Any], sa.ColumnElement[Any]]:
        # Numbers compare with numbers and text with text; other values never match.
        if isinstance(bound, str):
            return sa.case((json_type == "string", text)), sa.literal(bound, sa.Text)
        numeric = sa.case((json_type == "number", value.cast(sa.Numeric)))
        return numeric, sa.literal(bound, sa.Numeric)

    if op in _ORDERED:
        return _ORDERED[op](*comparable(parsed))
    match op:
        case Op.EQ:
            return value == sa.literal(parsed, JSONB)
        case Op.IN:
            scalar = json_type.not_in(["array", "object"])
            return sa.and_(scalar, sa.literal(parsed, JSONB).op("@>")(value))
        case Op.BETWEEN:
            low, high = (comparable(bound) for bound in parsed)
            return low[0].between(low[1], high[1])
        case Op.CONTAINS:
            element = sa.and_(json_type == "array", value.op("@>")(sa.literal([parsed], JSONB)))
            if not isinstance(parsed, str):
                return element
            pattern = _pattern(parsed, anywhere=True)
            within = sa.and_(json_type == "string", sa.func.lower(text).like(pattern, escape="\\"))
            return sa.or_(element, within)
        case Op.STARTS_WITH:
            pattern = _pattern(parsed, anywhere=False)
            return sa.and_(json_type == "string", sa.func.lower(text).like(pattern, escape="\\"))
    return json_type != "null"


_TESTS: dict[ValueKind, Callable[[Subject, Op, Any], sa.ColumnElement[Any]]] = {
    ValueKind.LABELS: _labels_test,
    ValueKind.JSON: _json_test,
}


def compare(subject: Subject, op: Op, value: Any) -> sa.ColumnElement[bool]:
    """SQL: ``subject op value``, true or false (a missing value satisfies nothing but
    the negative operators)."""
    parsed = operand(subject, op, value)
    positive = _NEGATIONS.get(op, op)
    negated = op in _NEGATIONS or (op is Op.EXISTS and parsed is False)
    test = _TESTS.get(subject.kind, _column_test)(subject, positive, parsed)
    holds = sa.func.coalesce(test, sa.false())
    return sa.not_(holds) if negated else holds


# -- the tree ------------------------------------------------------------------------


class _Node(BaseModel):
    model_config = ConfigDict(extra="forbid", serialize_by_alias=True)
    key: ClassVar[str]  # the JSON key naming this kind of condition

    def sql(self) -> sa.ColumnElement[bool]:
        raise NotImplementedError

    def branches(self) -> list[tuple[str, "Condition"]]:
        """The conditions inside this one, each with its step in the JSON path."""
        return []


class Comparison(_Node):
    """``field`` compared by ``op`` with ``value``: customer fields and scores alike."""

    field: str = Field(max_length=MAX_TEXT)
    op: Op
    value: Any = Field(
        default=None,
        validate_default=True,
        description="One value; a list for `in`, `not_in` and `between` ([low, high], both "
        "included); true (the default) or false for `exists`. Dates are `YYYY-MM-DD`, "
        "timestamps RFC 3339 with an offset.",
    )

    @classmethod
    def subject(cls, field: str) -> Subject | None:
        raise NotImplementedError

    @classmethod
    def unknown(cls, field: str) -> str:
        raise NotImplementedError

    @field_validator("field")
    @classmethod
    def _known(cls, field: str) -> str:
        if cls.subject(storable(field)) is None:
            raise ValueError(cls.unknown(field))
        return field

    @field_validator("op", mode="before")
    @classmethod
    def _operator(cls, op: Any) -> Any:
        if not isinstance(op, str) or op not in _OPERATOR_NAMES:
            shown = op[:100] if isinstance(op, str) else op
            raise ValueError(f"`{shown}` is not an operator; use one of {', '.join(Op)}")
        return op

    @field_validator("op")
    @classmethod
    def _applies(cls, op: Op, info: ValidationInfo) -> Op:
        subject = cls.subject(info.data["field"]) if "field" in info.data else None
        if subject is not None and op not in OPERATORS[subject.kind]:
            usable = ", ".join(o for o in Op if o in OPERATORS[subject.kind])
            raise ValueError(f"`{op}` does not apply to {subject.kind}; use one of {usable}")
        return op

    @field_validator("value")
    @classmethod
    def _fits(cls, value: Any, info: ValidationInfo) -> Any:
        if "field" in info.data and "op" in info.data:
            subject = cls.subject(info.data["field"])
            assert subject is not None
            operand(subject, info.data["op"], value)
        return value

    def sql(self) -> sa.ColumnElement[bool]:
        subject = self.subject(self.field)
        assert subject is not None
        return compare(subject, self.op, self.value)


class FieldCondition(Comparison):
    """A customer field, a label list or `attributes.<key>[.<key>...]` compared."""

    key = "field"

    @classmethod
    def subject(cls, field: str) -> Subject | None:
        return customer_subject(field)

    @classmethod
    def unknown(cls, field: str) -> str:
        return (
            f"`{field[:100]}` is not a condition field; use one of "
            f"{', '.join(CUSTOMER_FIELDS)} or attributes.<key>[.<key>...]"
        )

    @property
    def personal(self) -> bool:
        subject = self.subject(self.field)
        return subject is not None and subject.personal


class ScoreComparison(Comparison):
    """A scorer's score (a number) or label for the customer, compared."""

    scorer: bounded_text(64, 1) = Field(description="The scorer whose latest succeeded run counts.")

    @classmethod
    def subject(cls, field: str) -> Subject | None:
        return SCORE_FIELDS.get(field)

    @classmethod
    def unknown(cls, field: str) -> str:
        return f"`{field[:100]}` is not a score field; use score or label"


class ScoreCondition(_Node):
    """The customer's score or label in the latest succeeded run of a scorer."""

    key = "score"
    score: ScoreComparison

    def sql(self) -> sa.ColumnElement[bool]:
        runs = scoring_runs.c
        latest_run = (
            sa.select(runs.id)
            .where(runs.scorer == self.score.scorer, runs.status == "succeeded")
            .order_by(runs.finished_at.desc(), runs.id.desc())
            .limit(1)
            .scalar_subquery()
        )
        scored = sa.select(customer_scores.c.customer_id).where(
            customer_scores.c.run_id == latest_run, self.score.sql()
        )
        return _c.id.in_(scored)


Amount = Annotated[int, Field(ge=0, le=10**15)]


class _Options(BaseModel):
    """Optional settings, written back as given: those left out stay out."""

    model_config = ConfigDict(extra="forbid")

    @model_serializer(mode="wrap")
    def _given(self, serialize: Callable[[Self], dict[str, Any]]):
        return {key: value for key, value in serialize(self).items() if value is not None}


class Bounds(_Options):
    """Limits on a number: any of `gt`, `gte`, `lt`, `lte`, all of them holding."""

    gt: Amount | None = None
    gte: Amount | None = None
    lt: Amount | None = None
    lte: Amount | None = None

    @model_validator(mode="after")
    def _some(self) -> Self:
        if not self.limits():
            raise ValueError("give at least one of gt, gte, lt, lte")
        return self

    def limits(self) -> list[tuple[Callable[[Any, Any], Any], int]]:
        given = ((Op.GT, self.gt), (Op.GTE, self.gte), (Op.LT, self.lt), (Op.LTE, self.lte))
        return [(_ORDERED[op], bound) for op, bound in given if bound is not None]

    def admits(self, number: int) -> bool:
        return all(holds(number, bound) for holds, bound in self.limits())

    def sql(self, measure: sa.ColumnElement[Any]) -> sa.ColumnElement[bool]:
        return sa.and_(*(holds(measure, sa.literal(b, sa.Numeric)) for holds, b in self.limits()))


AT_LEAST_ONE = Bounds(gte=1)
SignedAmount = Annotated[int, Field(ge=-(10**15), le=10**15)]


class SignedBounds(Bounds):
    """Limits on an amount that may be negative (a loss): any of `gt`, `gte`, `lt`, `lte`."""

    gt: SignedAmount | None = None
    gte: SignedAmount | None = None
    lt: SignedAmount | None = None
    lte: SignedAmount | None = None


def _meeting(
    needs: list[tuple[Bounds, sa.ColumnElement[Any]]],
    matching: Callable[[sa.ColumnElement[bool]], sa.Select[Any]],
) -> sa.ColumnElement[bool]:
    """SQL: the customer's measures meet every bound. ``matching(test)`` selects the ids of
    customers with rows whose measures pass ``test``; a customer without rows measures 0."""
    enough = sa.and_(*(bounds.sql(measure) for bounds, measure in needs))
    if all(bounds.admits(0) for bounds, _ in needs):
        # Customers without a matching row qualify too: exclude those who fail.
        return sa.not_(_c.id.in_(matching(sa.not_(enough))))
    return _c.id.in_(matching(enough))


# One schema for requests and responses (CurrencyCode's differ), so the condition models
# are not documented twice.
Currency = Annotated[CurrencyCode, WithJsonSchema({"type": "string", "examples": ["EUR"]})]


class _Window(_Options):
    """Which interactions count by when they happened: the last `days`, or since/until."""

    days: int | None = Field(
        default=None, ge=1, le=36_500, description="Only those of the last `days` days."
    )
    since: Timestamp | None = Field(default=None, description="Only those from then on.")
    until: Timestamp | None = Field(default=None, description="Only those before then.")

    @field_validator("since", "until")
    @classmethod
    def _not_with_days(cls, value: Any, info: ValidationInfo) -> Any:
        if value is not None and info.data.get("days") is not None:
            raise ValueError("cannot be combined with days")
        return value

    @field_validator("until")
    @classmethod
    def _after_since(cls, value: Any, info: ValidationInfo) -> Any:
        since = info.data.get("since")
        if value is not None and since is not None and value <= since:
            raise ValueError("must be after since")
        return value

    def window(self) -> list[sa.ColumnElement[bool]]:
        """SQL: the interaction's occurred_at is within the window."""
        occurred_at, where = interactions.c.occurred_at, []
        if self.days is not None:
            where.append(occurred_at >= sa.func.now() - sa.literal(timedelta(days=self.days)))
        if self.since is not None:
            where.append(occurred_at >= self.since)
        if self.until is not None:
            where.append(occurred_at < self.until)
        return where


class InteractionFilter(_Window):
    """Which interactions count, and how many of them (or how much) a customer needs."""

    type: InteractionType | None = None
    channel: Channel | None = None
    category: Label | None = Field(
        default=None, description="Only interactions with a line item of this category."
    )
    sku: Label | None = Field(default=None, description="Only interactions with this SKU.")
    currency: Currency | None = Field(
        default=None, description="Only interactions in this currency."
    )
    count: Bounds | None = Field(
        default=None, description="How many interactions; at least one when neither this "
        "nor `amount` is given.",
    )  # fmt: skip
    amount: Bounds | None = Field(
        default=None,
        description="Their total in minor units: of the matching line items when `category` "
        "or `sku` is given, else of the interactions' amounts. Mixes currencies unless "
        "`currency` is given.",
    )

    def sql(self) -> sa.ColumnElement[bool]:
        i, item = interactions.c, interaction_items.c
        by_items = self.category is not None or self.sku is not None
        source = (
            interactions.join(
                interaction_items,
                sa.and_(item.customer_id == i.customer_id, item.interaction_id == i.id),
            )
            if by_items
            else interactions
        )
        wanted = (
            (i.type, self.type),
            (i.channel, self.channel),
            (i.currency, self.currency),
            (item.category, self.category),
            (item.sku, self.sku),
        )
        where = [column == value for column, value in wanted if value is not None]
        where += self.window()
        how_many = sa.func.count(sa.distinct(i.id)) if by_items else sa.func.count()
        # Numeric: quantity times unit price can exceed bigint.
        money = item.quantity.cast(sa.Numeric) * item.unit_price if by_items else i.amount
        how_much = sa.func.coalesce(sa.func.sum(money), 0)
        needs = [(b, m) for b, m in ((self.count, how_many), (self.amount, how_much)) if b]
        needs = needs or [(AT_LEAST_ONE, how_many)]
        groups = sa.select(i.customer_id).select_from(source).where(*where).group_by(i.customer_id)
        return _meeting(needs, groups.having)


class ProfitabilityFilter(_Window):
    """Which interactions count, and the profit, gross margin or service cost a customer
    needs over them (formulas as for the KPIs)."""

    currency: Currency | None = Field(
        default=None,
        description="Only interactions in this currency. Mixes currencies unless given.",
    )
    profit: SignedBounds | None = Field(
        default=None, description="gross_margin - service_cost, in minor units."
    )
    gross_margin: SignedBounds | None = Field(
        default=None,
        description="Purchases minus refunds minus the cost of goods of items with a "
        "unit_cost, in minor units.",
    )
    service_cost: Bounds | None = Field(
        default=None, description="Sum of the interactions' service_cost, in minor units."
    )

    @model_validator(mode="after")
    def _some(self) -> Self:
        if not self.bounds():
            raise ValueError("give at least one of profit, gross_margin, service_cost")
        return self

    def bounds(self) -> list[tuple[str, Bounds]]:
        """The bounds given, each with the figure it limits."""
        given = (
            ("profit", self.profit),
            ("gross_margin", self.gross_margin),
            ("service_cost", self.service_cost),
        )
        return [(figure, bounds) for figure, bounds in given if bounds is not None]

    def sql(self) -> sa.ColumnElement[bool]:
        where = self.window()
        if self.currency is not None:
            where.append(interactions.c.currency == self.currency)
        figures = profitability.by_customer(*where)
        return _meeting(
            [(bounds, figures.c[figure]) for figure, bounds in self.bounds()],
            lambda test: sa.select(figures.c.customer_id).where(test),
        )


class ProfitabilityCondition(_Node):
    """How profitable a customer was, or how much serving them cost."""

    key = "profitability"
    profitability: ProfitabilityFilter

    def sql(self) -> sa.ColumnElement[bool]:
        return self.profitability.sql()


class InteractionsCondition(_Node):
    """How often, or for how much, a customer interacted in a way."""

    key = "interactions"
    interactions: InteractionFilter

    def sql(self) -> sa.ColumnElement[bool]:
        return self.interactions.sql()


class SegmentCondition(_Node):
    """Membership of another segment, as of its last refresh."""

    key = "segment"
    segment: uuid.UUID = Field(description="The other segment's id.")

    def sql(self) -> sa.ColumnElement[bool]:
        m = segment_members.c
        return _c.id.in_(sa.select(m.customer_id).where(m.segment_id == self.segment))


class AllCondition(_Node):
    """Every condition holds."""

    key = "all"
    all: list["Condition"] = Field(min_length=1, max_length=MAX_BRANCHES)

    def sql(self) -> sa.ColumnElement[bool]:
        return sa.and_(*(condition.sql() for condition in self.all))

    def branches(self) -> list[tuple[str, "Condition"]]:
        return [(f"all.{n}", condition) for n, condition in enumerate(self.all)]


class AnyCondition(_Node):
    """At least one condition holds."""

    key = "any"
    any: list["Condition"] = Field(min_length=1, max_length=MAX_BRANCHES)

    def sql(self) -> sa.ColumnElement[bool]:
        return sa.or_(*(condition.sql() for condition in self.any))

    def branches(self) -> list[tuple[str, "Condition"]]:
        return [(f"any.{n}", condition) for n, condition in enumerate(self.any)]


class NotCondition(_Node):
    """The condition does not hold."""

    key = "not"
    not_: "Condition" = Field(alias="not")

    def sql(self) -> sa.ColumnElement[bool]:
        return sa.not_(self.not_.sql())

    def branches(self) -> list[tuple[str, "Condition"]]:
        return [("not", self.not_)]


_KINDS: tuple[type[_Node], ...] = (
    AllCondition,
    AnyCondition,
    NotCondition,
    FieldCondition,
    InteractionsCondition,
    ProfitabilityCondition,
    ScoreCondition,
    SegmentCondition,
)


def _kind(value: Any) -> str | None:
    if isinstance(value, dict):
        return next((kind.key for kind in _KINDS if kind.key in value), None)
    return value.key if isinstance(value, _Node) else None


def _without_tags(value: Any, handler: Callable[[Any], Any]) -> Any:
    """Error paths as JSON paths: pydantic puts the union's tag before a member's errors."""
    try:
        return handler(value)
    except ValidationError as exc:
        raise ValidationError.from_exception_data(
            exc.title,
            [
                {
                    "type": PydanticCustomError(error["type"], error["msg"]),
                    "loc": error["loc"][1:],
                    "input": error["input"],
                }
                for error in exc.errors(include_url=False)
            ],
        ) from None


_KEYS = ", ".join(f"`{kind.key}`" for kind in _KINDS)
Condition = Annotated[
    Annotated[AllCondition, Tag("all")]
    | Annotated[AnyCondition, Tag("any")]
    | Annotated[NotCondition, Tag("not")]
    | Annotated[FieldCondition, Tag("field")]
    | Annotated[InteractionsCondition, Tag("interactions")]
    | Annotated[ProfitabilityCondition, Tag("profitability")]
    | Annotated[ScoreCondition, Tag("score")]
    | Annotated[SegmentCondition, Tag("segment")],
    Discriminator(
        _kind,
        custom_error_type="condition",
        custom_error_message=f"must be a condition: an object with one of the keys {_KEYS}",
    ),
    WrapValidator(_without_tags),
]
for _model in (AllCondition, AnyCondition, NotCondition):
    _model.model_rebuild()


def nodes(condition: Condition, path: str = "condition") -> Iterator[tuple[str, Condition]]:
    """Every condition in the tree, each with its JSON path."""
    yield path, condition
    for step, branch in condition.branches():
        yield from nodes(branch, f"{path}.{step}")


def _depth(condition: Condition) -> int:
    return 1 + max((_depth(branch) for _, branch in condition.branches()), default=0)


def _within_limits(condition: Condition) -> Condition:
    if sum(1 for _ in nodes(condition)) > MAX_CONDITIONS:
        raise ValueError(f"must hold at most {MAX_CONDITIONS} conditions")
    if _depth(condition) > MAX_DEPTH:
        raise ValueError(f"must nest at most {MAX_DEPTH} levels deep")
    return condition


RootCondition = Annotated[Condition, AfterValidator(_within_limits)]


def personal_fields(condition: Condition, path: str = "condition") -> list[tuple[str, str]]:
    """``(path of field, field)`` for every comparison of a personal field."""
    return [
        (f"{at}.field", node.field)
        for at, node in nodes(condition, path)
        if isinstance(node, FieldCondition) and node.personal
    ]


def references(condition: Condition, path: str = "condition") -> list[tuple[str, uuid.UUID]]:
    """``(path, segment id)`` for every segment the condition refers to."""
    return [
        (f"{at}.segment", node.segment)
        for at, node in nodes(condition, path)
        if isinstance(node, SegmentCondition)
    ]


def without_personal_values(condition: Condition) -> tuple[Condition, list[str]]:
    """A copy with the values compared to personal fields withheld, and their paths."""
    copy = condition.model_copy(deep=True)
    withheld = []
    for at, node in nodes(copy):
        if isinstance(node, FieldCondition) and node.personal:
            node.value = None
            withheld.append(f"{at}.value")
    return copy, withheld
