"""GraphQL transport of customers."""

import uuid
from datetime import date, datetime
from enum import Enum
from typing import Annotated, Any

import strawberry
from strawberry import relay
from strawberry.scalars import JSON

from crm_api.core.channels import Channel
from crm_api.core.errors import ValidationFailed
from crm_api.core.scopes import Scope
from crm_api.customers import erasure, schemas, service
from crm_api.customers.models import customers
from crm_api.graphql.context import Info
from crm_api.graphql.convert import (
    expected_versions,
    from_model,
    graphql_path,
    parse_id,
    plain,
    validated,
)
from crm_api.graphql.errors import or_none
from crm_api.graphql.idempotency import IdempotencyKey, idempotent, idempotent_delete
from crm_api.graphql.node import Node, findable
from crm_api.graphql.pagination import after_argument, connection, page_size
from crm_api.graphql.permissions import needs
from crm_api.graphql.scalars import MinorUnits
from crm_api.interactions.graphql import Interaction, timeline
from crm_api.lifecycle.graphql import CustomerLifecycle, lifecycle_from
from crm_api.lifecycle.schemas import CustomerStage
from crm_api.loyalty.graphql import LoyaltyAccount, loyalty_accounts_of
from crm_api.scoring.graphql import (
    ChurnRisk,
    CustomerScore,
    LifetimeValue,
    churn_of,
    clv_of,
    scores_of,
)

# The segments module renders customers itself, so its types are resolved lazily here.
CustomerSegment = Annotated["CustomerSegment", strawberry.lazy("crm_api.segments.graphql")]
strawberry.enum(schemas.CustomerKind, name="CustomerKind")
strawberry.enum(schemas.Gender, name="Gender")


@strawberry.type
class Address:
    line1: str | None
    line2: str | None
    city: str | None
    region: str | None
    postal_code: str | None
    country: str | None


@strawberry.type(description="Consent to be contacted on one channel.")
class Consent:
    channel: Channel
    granted: bool
    at: datetime
    source: str | None


@strawberry.type
class Acquisition:
    source: str | None
    channel: str | None
    campaign: str | None
    cost: MinorUnits | None
    currency: str | None


@strawberry.type(description="A person or organisation the company deals with.")
class Customer(Node):
    id: strawberry.ID
    external_id: str | None
    kind: schemas.CustomerKind
    first_name: str | None
    last_name: str | None
    company_name: str | None
    email: str | None
    phone: str | None
    industry: str | None
    birth_date: date | None
    gender: schemas.Gender | None
    income_band: str | None
    education: str | None
    occupation: str | None
    address: Address | None
    interests: list[str]
    values: list[str]
    lifestyle: str | None
    preferred_channel: Channel | None
    consents: list[Consent]
    tags: list[str]
    attributes: JSON
    acquisition: Acquisition | None
    lifecycle_stage: str
    created_at: datetime
    updated_at: datetime
    version: int = strawberry.field(description="Increments on every change; see ifMatchVersion.")
    erased_at: datetime | None = strawberry.field(
        description="Set once personal data has been erased."
    )
    redacted_fields: list[str] = strawberry.field(
        description="Personal fields withheld (null) because the API key lacks pii:read."
    )

    @strawberry.field(
        extensions=needs(Scope.INTERACTIONS_READ), description="The timeline, newest first."
    )
    async def interactions(
        self, info: Info, first: int = 20, after: str | None = None
    ) -> relay.Connection[Interaction] | None:
        return await timeline(info, uuid.UUID(self.id), first=first, after=after)

    @strawberry.field(
        extensions=needs(Scope.SCORING_READ),
        description="The latest score from every scorer that scored this customer.",
    )
    async def scores(self, info: Info) -> list[CustomerScore]:
        return await scores_of(info, uuid.UUID(self.id))

    @strawberry.field(
        extensions=needs(Scope.SCORING_READ),
        description="Churn probability from the latest churn run; null before one.",
    )
    async def churn(self, info: Info) -> ChurnRisk | None:
        return await churn_of(info, uuid.UUID(self.id))

    @strawberry.field(
        extensions=needs(Scope.SCORING_READ),
        description="Lifetime value from the latest CLV run; null before one.",
    )
    async def clv(self, info: Info) -> LifetimeValue | None:
        return await clv_of(info, uuid.UUID(self.id))

    @strawberry.field(
        extensions=needs(Scope.LIFECYCLE_READ),
        description="The lifecycle stage, since when, where the customer may move, and the "
        "transitions so far.",
    )
    async def lifecycle(self, info: Info) -> CustomerLifecycle | None:
        stage = CustomerStage(uuid.UUID(self.id), self.lifecycle_stage, self.created_at)
        return await lifecycle_from(info, stage)

    @strawberry.field(
        extensions=needs(Scope.SEGMENTS_READ),
        description="The segments the customer is a member of, oldest segments first.",
    )
    async def segments(
        self, info: Info, first: int = 50, after: str | None = None
    ) -> relay.Connection[CustomerSegment] | None:
        # Imported here: the segments module renders customers (members, searches) itself.
        from crm_api.segments.graphql import segments_of

        return await segments_of(info, uuid.UUID(self.id), first=first, after=after)

    @strawberry.field(
        extensions=needs(Scope.LOYALTY_READ),
        description="The customer's accounts in every loyalty programme, oldest first.",
    )
    async def loyalty_accounts(self, info: Info) -> list[LoyaltyAccount] | None:
        return await loyalty_accounts_of(info, uuid.UUID(self.id))

    @classmethod
    def of(cls, model: schemas.Customer) -> "Customer":
        return from_model(
            cls,
            model,
            address=model.address and from_model(Address, model.address),
            acquisition=model.acquisition and from_model(Acquisition, model.acquisition),
            consents=[
                from_model(Consent, consent, channel=channel)
                for channel, consent in model.consents.items()
            ],
            redacted_fields=[graphql_path(f) for f in model.redacted_fields],
        )


findable(
    Customer,
    customers.c.id,
    Scope.CUSTOMERS_READ,
    lambda conn, principal, id, parent: service.get_customer(conn, principal, id),
)


@strawberry.type(description="The customer an upsert created or replaced.")
class CustomerUpsert:
    customer: Customer
    created: bool = strawberry.field(description="True if created, false if replaced.")


@strawberry.input
class AddressInput:
    line1: str | None = strawberry.UNSET
    line2: str | None = strawberry.UNSET
    city: str | None = strawberry.UNSET
    region: str | None = strawberry.UNSET
    postal_code: str | None = strawberry.UNSET
    country: str | None = strawberry.UNSET


@strawberry.input
class ConsentInput:
    channel: Channel
    granted: bool
    at: datetime | None = strawberry.field(default=strawberry.UNSET, description="Defaults to now.")
    source: str | None = strawberry.UNSET


@strawberry.input
class AcquisitionInput:
    source: str | None = strawberry.UNSET
    channel: str | None = strawberry.UNSET
    campaign: str | None = strawberry.UNSET
    cost: MinorUnits | None = strawberry.UNSET
    currency: str | None = strawberry.UNSET


@strawberry.input
class _CustomerFields:
    """The writable fields, shared by the create input and the patch input."""

    external_id: str | None = strawberry.UNSET
    kind: schemas.CustomerKind | None = strawberry.UNSET
    first_name: str | None = strawberry.UNSET
    last_name: str | None = strawberry.UNSET
    company_name: str | None = strawberry.UNSET
    email: str | None = strawberry.UNSET
    phone: str | None = strawberry.UNSET
    industry: str | None = strawberry.UNSET
    birth_date: date | None = strawberry.UNSET
    gender: schemas.Gender | None = strawberry.UNSET
    income_band: str | None = strawberry.UNSET
    education: str | None = strawberry.UNSET
    occupation: str | None = strawberry.UNSET
    address: AddressInput | None = strawberry.UNSET
    interests: list[str] | None = strawberry.UNSET
    values: list[str] | None = strawberry.UNSET
    lifestyle: str | None = strawberry.UNSET
    preferred_channel: Channel | None = strawberry.UNSET
    consents: list[ConsentInput] | None = strawberry.field(
        default=strawberry.UNSET, description="At most one per channel."
    )
    tags: list[str] | None = strawberry.UNSET
    attributes: JSON | None = strawberry.UNSET
    acquisition: AcquisitionInput | None = strawberry.UNSET


@strawberry.input(description="A new customer; fields left out take their defaults.")
class CustomerInput(_CustomerFields):
    pass


@strawberry.input(
    description=(
        "A merge patch: fields left out are kept, null clears. address and attributes "
        "merge key by key, consents channel by channel."
    )
)
class CustomerPatchInput(_CustomerFields):
    pass


def _customer_data(fields: _CustomerFields) -> dict[str, Any]:
    """The REST body these fields stand for: consents keyed by channel, as REST has them."""
    data = plain(fields)
    if data.get("consents") is not None:
        consents = {c.pop("channel"): c for c in data["consents"]}
        if len(consents) < len(data["consents"]):
            raise ValidationFailed.for_field("consents", "must not name a channel twice")
        data["consents"] = consents
    return data


@strawberry.enum(description="The order of a customer list; a cursor belongs to one order.")
class CustomerSort(Enum):
    CREATED_AT = "created_at"
    CREATED_AT_DESC = "-created_at"
    UPDATED_AT = "updated_at"
    UPDATED_AT_DESC = "-updated_at"


@strawberry.input
class CustomerFilter:
    email: str | None = strawberry.field(
        default=strawberry.UNSET, description="Exact, case-insensitive. Needs pii:read."
    )
    external_id: str | None = strawberry.UNSET
    kind: schemas.CustomerKind | None = strawberry.UNSET
    tags: list[str] | None = strawberry.field(
        default=strawberry.UNSET, description="Customers carrying every one of these tags."
    )
    lifecycle_stage: str | None = strawberry.UNSET
    country: str | None = strawberry.UNSET
    created_after: datetime | None = strawberry.field(
        default=strawberry.UNSET, description="Inclusive."
    )
    created_before: datetime | None = strawberry.field(
        default=strawberry.UNSET, description="Exclusive."
    )
    q: str | None = strawberry.field(
        default=strawberry.UNSET,
        description="Prefix search over email and names; without pii:read, company name only.",
    )


@strawberry.type
class CustomerQueries:
    @strawberry.field(extensions=needs(Scope.CUSTOMERS_READ), description="null if unknown.")
    async def customer(self, info: Info, id: strawberry.ID) -> Customer | None:
        async with info.context.db.connection() as conn:
            found = await or_none(service.get_customer(conn, info.context.principal, parse_id(id)))
        return None if found is None else Customer.of(found)

    @strawberry.field(
        extensions=needs(Scope.CUSTOMERS_READ),
        description="Live customers in keyset pages; cursors are REST's for the same sort.",
    )
    async def customers(
        self,
        info: Info,
        first: int = 50,
        after: str | None = None,
        filter: CustomerFilter | None = None,
        sort: CustomerSort = CustomerSort.CREATED_AT_DESC,
    ) -> relay.Connection[Customer]:
        limit = page_size(first)
        filters = validated(schemas.CustomerFilters, plain(filter) if filter else {})
        with after_argument():
            async with info.context.db.connection() as conn:
                page, next_cursor = await service.list_customers(
                    conn,
                    info.context.principal,
                    filters,
                    sort=sort.value,
                    cursor=after,
                    limit=limit,
                )
        return connection(
            page,
            node=Customer.of,
            cursor_of=lambda customer: service.cursor_of(customer, sort.value),
            has_next_page=next_cursor is not None,
        )


@strawberry.type
class CustomerMutations:
    @strawberry.mutation(extensions=needs(Scope.CUSTOMERS_WRITE))
    async def create_customer(
        self, info: Info, input: CustomerInput, idempotency_key: IdempotencyKey = None
    ) -> Customer:
        data = validated(schemas.CustomerCreate, _customer_data(input))
        created = await idempotent(
            info,
            idempotency_key,
            schemas.Customer,
            lambda conn: service.create_customer(conn, info.context.principal, data),
        )
        return Customer.of(created)

    @strawberry.mutation(
        extensions=needs(Scope.CUSTOMERS_WRITE),
        description="Change some fields; with ifMatchVersion, only if still at that version.",
    )
    async def update_customer(
        self,
        info: Info,
        id: strawberry.ID,
        input: CustomerPatchInput,
        if_match_version: int | None = None,
        idempotency_key: IdempotencyKey = None,
    ) -> Customer:
        customer_id = parse_id(id)
        patch = validated(schemas.CustomerUpdate, _customer_data(input))
        expected = expected_versions(if_match_version)
        updated = await idempotent(
            info,
            idempotency_key,
            schemas.Customer,
            lambda conn: service.update_customer(
                conn, info.context.principal, customer_id, patch, expected=expected
            ),
        )
        return Customer.of(updated)

    @strawberry.mutation(
        extensions=needs(Scope.CUSTOMERS_WRITE),
        description="Create or replace the customer with this externalId (fields left out "
        "are reset); with ifMatchVersion, only if still at that version (0: not yet there).",
    )
    async def upsert_customer(
        self,
        info: Info,
        external_id: str,
        input: CustomerInput,
        if_match_version: int | None = None,
        idempotency_key: IdempotencyKey = None,
    ) -> CustomerUpsert:
        # The argument is validated as the field it stands for; a different one in the
        # input is refused by the service, as REST refuses a body disagreeing with its path.
        data = validated(
            schemas.CustomerCreate, {"external_id": external_id, **_customer_data(input)}
        )
        expected = expected_versions(if_match_version)
        customer, created = await idempotent(
            info,
            idempotency_key,
            tuple[schemas.Customer, bool],
            lambda conn: service.upsert_by_external_id(
                conn, info.context.principal, external_id, data, expected=expected
            ),
        )
        return CustomerUpsert(customer=Customer.of(customer), created=created)

    @strawberry.mutation(
        extensions=needs(Scope.CUSTOMERS_WRITE),
        description="Soft-delete a customer: gone from reads, history kept; answers its id.",
    )
    async def delete_customer(
        self,
        info: Info,
        id: strawberry.ID,
        if_match_version: int | None = None,
        idempotency_key: IdempotencyKey = None,
    ) -> strawberry.ID:
        return await idempotent_delete(
            info,
            id,
            if_match_version,
            idempotency_key,
            lambda conn, target, expected: service.delete_customer(
                conn, info.context.principal, target, expected=expected
            ),
        )

    @strawberry.mutation(
        extensions=needs(Scope.CUSTOMERS_WRITE),
        description="Irreversibly anonymise a customer's personal data (right to erasure); "
        "see the REST operation for what is removed.",
    )
    async def erase_customer(
        self, info: Info, id: strawberry.ID, idempotency_key: IdempotencyKey = None
    ) -> Customer:
        customer_id = parse_id(id)
        erased = await idempotent(
            info,
            idempotency_key,
            schemas.Customer,
            lambda conn: erasure.erase_customer(conn, info.context.principal, customer_id),
        )
        return Customer.of(erased)
