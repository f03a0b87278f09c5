"""GraphQL transport of segments, their members, and customer searches by condition.

Condition trees travel as JSON, exactly as REST has them (snake_case keys included).
"""

import uuid
from datetime import datetime

import strawberry
from strawberry import relay
from strawberry.scalars import JSON

from crm_api.core.channels import Channel
from crm_api.core.scopes import Scope
from crm_api.customers import service as customers
from crm_api.customers.graphql import Customer, CustomerSort
from crm_api.graphql.context import Info
from crm_api.graphql.convert import expected_versions, from_model, parse_id, plain, validated
from crm_api.graphql.errors import or_none
from crm_api.graphql.idempotency import IdempotencyKey, idempotent, idempotent_delete
from crm_api.graphql.node import Node, findable
from crm_api.graphql.pagination import after_argument, connection, nested_page, page_size
from crm_api.graphql.permissions import needs
from crm_api.segments import schemas, service
from crm_api.segments.models import segments

strawberry.enum(schemas.SegmentKind, name="SegmentKind")


@strawberry.type(description="One stay of a customer in a segment.")
class MembershipStay:
    customer_id: strawberry.ID
    entered_at: datetime
    exited_at: datetime | None = strawberry.field(description="null while still a member.")


@strawberry.type(description="Customers grouped by a condition, a scorer's verdict or by hand.")
class Segment(Node):
    id: strawberry.ID
    name: str
    description: str | None
    kind: schemas.SegmentKind
    condition: JSON | None = strawberry.field(
        description="The condition tree as REST has it; null for static segments."
    )
    refresh_interval: int | None = strawberry.field(
        description="Seconds between scheduled refreshes; null: refreshed on request only."
    )
    refreshed_at: datetime | None
    next_refresh_at: datetime | None
    created_at: datetime
    updated_at: datetime
    version: int = strawberry.field(description="Increments on every change; see ifMatchVersion.")
    redacted_fields: list[str] = strawberry.field(
        description="Paths in condition of values withheld because the API key lacks pii:read."
    )

    @strawberry.field(description="Live members, rendered as the customers query renders them.")
    async def members(
        self,
        info: Info,
        first: int = 50,
        after: str | None = None,
        sort: CustomerSort = CustomerSort.CREATED_AT_DESC,
    ) -> relay.Connection[Customer]:
        return await self._members(info, first, after, sort, consented_to=None)

    @strawberry.field(
        description="Live members whose consent to `channel` is granted (a campaign's "
        "audience); without it, or withdrawn, a member never appears."
    )
    async def audience(
        self,
        info: Info,
        channel: Channel,
        first: int = 50,
        after: str | None = None,
        sort: CustomerSort = CustomerSort.CREATED_AT_DESC,
    ) -> relay.Connection[Customer]:
        return await self._members(info, first, after, sort, consented_to=channel)

    async def _members(
        self,
        info: Info,
        first: int,
        after: str | None,
        sort: CustomerSort,
        *,
        consented_to: Channel | None,
    ) -> relay.Connection[Customer]:
        limit = page_size(first)
        with after_argument():
            async with info.context.db.connection() as conn:
                page, next_cursor = await service.list_members(
                    conn,
                    info.context.principal,
                    uuid.UUID(self.id),
                    sort=sort.value,
                    cursor=after,
                    limit=limit,
                    consented_to=consented_to,
                )
        return connection(
            page,
            node=Customer.of,
            cursor_of=lambda customer: customers.cursor_of(customer, sort.value),
            has_next_page=next_cursor is not None,
        )

    @strawberry.field(description="How many live customers are members, as last refreshed.")
    async def member_count(self, info: Info) -> int:
        return await info.context.batched(
            "member_counts", service.member_counts, uuid.UUID(self.id), 0
        )

    @strawberry.field(description="Every stay in the segment, latest first.")
    async def history(
        self,
        info: Info,
        first: int = 50,
        after: str | None = None,
        customer_id: strawberry.ID | None = None,
    ) -> relay.Connection[MembershipStay]:
        limit = page_size(first)
        customer = None if customer_id is None else parse_id(customer_id, "customerId")
        with after_argument():
            async with info.context.db.connection() as conn:
                page, next_cursor = await service.list_history(
                    conn, uuid.UUID(self.id), customer_id=customer, cursor=after, limit=limit
                )
        return connection(
            page,
            node=lambda stay: from_model(MembershipStay, stay),
            cursor_of=lambda stay: service.HISTORY.encode((stay.entered_at, stay.customer_id)),
            has_next_page=next_cursor is not None,
        )

    @classmethod
    def of(cls, model: schemas.Segment) -> "Segment":
        condition = model.condition and model.condition.model_dump(mode="json")
        return from_model(cls, model, condition=condition)


findable(
    Segment,
    segments.c.id,
    Scope.SEGMENTS_READ,
    lambda conn, principal, id, parent: service.get_segment(conn, principal, id),
)


@strawberry.type(description="A segment a customer is a member of.")
class CustomerSegment:
    segment: Segment
    entered_at: datetime


def _customer_segments(
    page: list[schemas.CustomerSegment], next_cursor: str | None
) -> relay.Connection[CustomerSegment]:
    return connection(
        page,
        node=lambda item: CustomerSegment(
            segment=Segment.of(item.segment), entered_at=item.entered_at
        ),
        cursor_of=lambda item: service.CUSTOMER_SEGMENTS.encode((item.segment.id,)),
        has_next_page=next_cursor is not None,
    )


async def segments_of(
    info: Info, customer_id: uuid.UUID, *, first: int, after: str | None
) -> relay.Connection[CustomerSegment]:
    """The segments a customer is a member of, oldest segments first."""
    principal, limit = info.context.principal, page_size(first)
    page, next_cursor = await nested_page(
        info,
        ("customer_segments", limit),
        customer_id,
        first_pages=lambda conn, ids: service.segments_by_customer(
            conn, principal, ids, limit=limit
        ),
        after=after,
        page_after=lambda conn, cursor: service.customer_segments(
            conn, principal, customer_id, cursor=cursor, limit=limit
        ),
    )
    return _customer_segments(page, next_cursor)


@strawberry.type
class SegmentRefresh:
    entered: int
    exited: int
    members: int
    refreshed_at: datetime


@strawberry.type
class SegmentPreview:
    count: int = strawberry.field(description="Live customers matching now.")
    sample: list[Customer] = strawberry.field(description="The newest of them.")


@strawberry.type
class SegmentMembersAdded:
    added: int = strawberry.field(description="Customers who were not members before.")
    members: int


@strawberry.input(description="A new segment; see the REST API for the condition language.")
class SegmentInput:
    name: str
    description: str | None = strawberry.UNSET
    kind: schemas.SegmentKind | None = strawberry.field(
        default=strawberry.UNSET, description="Default RULE."
    )
    condition: JSON | None = strawberry.field(
        default=strawberry.UNSET,
        description="Rule: any condition; model: one score condition; static: none.",
    )
    refresh_interval: int | None = strawberry.field(
        default=strawberry.UNSET,
        description="Seconds between scheduled refreshes; daily when left out (rule and model).",
    )


@strawberry.input(description="Fields left out stay as they are; null clears.")
class SegmentPatchInput:
    name: str | None = strawberry.UNSET
    description: str | None = strawberry.UNSET
    condition: JSON | None = strawberry.UNSET
    refresh_interval: int | None = strawberry.UNSET


@strawberry.type
class SegmentQueries:
    @strawberry.field(extensions=needs(Scope.SEGMENTS_READ), description="null if unknown.")
    async def segment(self, info: Info, id: strawberry.ID) -> Segment | None:
        async with info.context.db.connection() as conn:
            found = await or_none(service.get_segment(conn, info.context.principal, parse_id(id)))
        return None if found is None else Segment.of(found)

    @strawberry.field(
        extensions=needs(Scope.SEGMENTS_READ),
        description="Segments, oldest first; cursors are REST's.",
    )
    async def segments(
        self,
        info: Info,
        first: int = 50,
        after: str | None = None,
        kind: schemas.SegmentKind | None = None,
    ) -> relay.Connection[Segment]:
        limit = page_size(first)
        with after_argument():
            async with info.context.db.connection() as conn:
                page, next_cursor = await service.list_segments(
                    conn, info.context.principal, kind=kind, cursor=after, limit=limit
                )
        return connection(
            page,
            node=Segment.of,
            cursor_of=lambda segment: service.SEGMENTS.encode((segment.created_at, segment.id)),
            has_next_page=next_cursor is not None,
        )

    @strawberry.field(
        extensions=needs(Scope.SEGMENTS_READ),
        description="How many live customers an unsaved condition matches now, with a sample.",
    )
    async def segment_preview(
        self, info: Info, condition: JSON, sample: int = 10
    ) -> SegmentPreview:
        request = validated(schemas.PreviewRequest, {"condition": condition, "sample": sample})
        async with info.context.db.connection() as conn:
            found = await service.preview(conn, info.context.principal, request)
        return SegmentPreview(count=found.count, sample=[Customer.of(c) for c in found.sample])

    @strawberry.field(
        extensions=needs(Scope.SEGMENTS_READ),
        description="The segments a customer is a member of, oldest segments first.",
    )
    async def customer_segments(
        self, info: Info, customer_id: strawberry.ID, first: int = 50, after: str | None = None
    ) -> relay.Connection[CustomerSegment]:
        customer = parse_id(customer_id, "customerId")
        limit = page_size(first)
        with after_argument():
            async with info.context.db.connection() as conn:
                page, next_cursor = await service.customer_segments(
                    conn, info.context.principal, customer, cursor=after, limit=limit
                )
        return _customer_segments(page, next_cursor)

    @strawberry.field(
        extensions=needs(Scope.CUSTOMERS_READ),
        description="Live customers matching a condition tree (as segments take it); "
        "cursors are the customers query's for the same sort.",
    )
    async def search_customers(
        self,
        info: Info,
        condition: JSON,
        first: int = 50,
        after: str | None = None,
        sort: CustomerSort = CustomerSort.CREATED_AT_DESC,
    ) -> relay.Connection[Customer]:
        limit = page_size(first)
        search = validated(schemas.ConditionSearch, {"condition": condition})
        with after_argument():
            async with info.context.db.connection() as conn:
                page, next_cursor = await service.search_customers(
                    conn, info.context.principal, search, sort=sort.value, cursor=after, limit=limit
                )
        return connection(
            page,
            node=Customer.of,
            cursor_of=lambda customer: customers.cursor_of(customer, sort.value),
            has_next_page=next_cursor is not None,
        )


@strawberry.type
class SegmentMutations:
    @strawberry.mutation(
        extensions=needs(Scope.SEGMENTS_WRITE),
        description="Create a segment; conditions on personal fields need pii:read.",
    )
    async def create_segment(
        self, info: Info, input: SegmentInput, idempotency_key: IdempotencyKey = None
    ) -> Segment:
        data = validated(schemas.SegmentCreate, plain(input))
        created = await idempotent(
            info,
            idempotency_key,
            schemas.Segment,
            lambda conn: service.create_segment(conn, info.context.principal, data),
        )
        return Segment.of(created)

    @strawberry.mutation(
        extensions=needs(Scope.SEGMENTS_WRITE),
        description="Change some fields; with ifMatchVersion, only if still at that version.",
    )
    async def update_segment(
        self,
        info: Info,
        id: strawberry.ID,
        input: SegmentPatchInput,
        if_match_version: int | None = None,
        idempotency_key: IdempotencyKey = None,
    ) -> Segment:
        segment_id = parse_id(id)
        patch = validated(schemas.SegmentUpdate, plain(input))
        expected = expected_versions(if_match_version)
        updated = await idempotent(
            info,
            idempotency_key,
            schemas.Segment,
            lambda conn: service.update_segment(
                conn, info.context.principal, segment_id, patch, expected=expected
            ),
        )
        return Segment.of(updated)

    @strawberry.mutation(
        extensions=needs(Scope.SEGMENTS_WRITE),
        description="Delete a segment no other refers to (its members exit); answers its id.",
    )
    async def delete_segment(
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
            lambda conn, target, expected: service.delete_segment(conn, target, expected=expected),
        )

    @strawberry.mutation(
        extensions=needs(Scope.SEGMENTS_WRITE),
        description="Compute a rule or model segment's members now.",
    )
    async def refresh_segment(
        self, info: Info, id: strawberry.ID, idempotency_key: IdempotencyKey = None
    ) -> SegmentRefresh:
        segment_id = parse_id(id)
        report = await idempotent(
            info,
            idempotency_key,
            schemas.RefreshReport,
            lambda conn: service.refresh_segment(conn, segment_id),
        )
        return from_model(SegmentRefresh, report)

    @strawberry.mutation(
        extensions=needs(Scope.SEGMENTS_WRITE),
        description="Add customers to a static segment; those already members stay.",
    )
    async def add_segment_members(
        self,
        info: Info,
        id: strawberry.ID,
        customer_ids: list[strawberry.ID],
        idempotency_key: IdempotencyKey = None,
    ) -> SegmentMembersAdded:
        segment_id = parse_id(id)
        data = validated(schemas.MembersAdd, {"customer_ids": customer_ids})
        added = await idempotent(
            info,
            idempotency_key,
            schemas.MembersAdded,
            lambda conn: service.add_members(conn, segment_id, data),
        )
        return from_model(SegmentMembersAdded, added)

    @strawberry.mutation(
        extensions=needs(Scope.SEGMENTS_WRITE),
        description="Remove a customer from a static segment; answers the customer's id.",
    )
    async def remove_segment_member(
        self,
        info: Info,
        id: strawberry.ID,
        customer_id: strawberry.ID,
        idempotency_key: IdempotencyKey = None,
    ) -> strawberry.ID:
        segment_id, customer = parse_id(id), parse_id(customer_id, "customerId")
        await idempotent(
            info,
            idempotency_key,
            None,
            lambda conn: service.remove_member(conn, segment_id, customer),
        )
        return strawberry.ID(str(customer))
