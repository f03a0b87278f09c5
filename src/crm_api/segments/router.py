"""REST transport of segments, their members, and customer searches by condition."""

import uuid
from typing import Annotated

from fastapi import Path, Query, Request
from starlette.responses import Response

from crm_api.core.auth import requires
from crm_api.core.channels import Channel
from crm_api.core.errors import responses
from crm_api.core.http import IfMatch, etag, expected_versions
from crm_api.core.pagination import Cursor, Limit, Page
from crm_api.core.routing import domain_router
from crm_api.core.scopes import Scope
from crm_api.core.uow import reads, unit_of_work
from crm_api.customers.schemas import Customer, CustomerSort
from crm_api.segments import service
from crm_api.segments.schemas import (
    ConditionSearch,
    CustomerSegment,
    MembersAdd,
    MembersAdded,
    MembershipStay,
    Preview,
    PreviewRequest,
    RefreshReport,
    Segment,
    SegmentCount,
    SegmentCreate,
    SegmentKind,
    SegmentUpdate,
)

SEGMENTS = "/v1/segments"
router = domain_router(prefix=SEGMENTS, tag="segments")
members_router = domain_router(prefix=SEGMENTS, tag="segment-members")
customers_router = domain_router(prefix="/v1/customers", tag="customers")
Reader = requires(Scope.SEGMENTS_READ)
Writing = unit_of_work(Scope.SEGMENTS_WRITE)
# Reads sent as POST (their bodies hold condition trees); like every POST they take an
# Idempotency-Key.
Previewing = unit_of_work(Scope.SEGMENTS_READ)
Searching = unit_of_work(Scope.CUSTOMERS_READ)
SegmentId = Annotated[uuid.UUID, Path(description="The segment's id.")]
CustomerId = Annotated[uuid.UUID, Path(description="The customer's id.")]
Sort = Annotated[CustomerSort, Query(description="`-` for descending.")]


def _headers(segment: Segment) -> dict[str, str]:
    return {"ETag": etag(segment.version), "Location": f"{SEGMENTS}/{segment.id}"}


@router.post("", status_code=201, response_model=Segment, responses=responses(409))
async def segments_create(body: SegmentCreate, uow: Writing) -> Response:
    """Create a segment. Conditions on personal fields need `pii:read`.

    A condition is a JSON object named by its one key: `all` / `any` (lists of
    conditions), `not`, `field` (`{"field": "country", "op": "in", "value": ["DE"]}`;
    customer fields, `tags`, `interests`, `values`, `attributes.<key>[.<key>...]`),
    `interactions` (counts and totals of a customer's interactions, e.g. `{"type":
    "purchase", "category": "vegetarian", "days": 90, "count": {"gte": 2}}`), `score`
    (the latest succeeded run of a scorer, e.g. `{"scorer": "rfm", "field": "label",
    "op": "eq", "value": "At Risk"}`) and `segment` (another segment's id: its members as
    last refreshed; cycles are refused).

    Members are computed by a refresh: on request, or by the schedule, which takes new
    rule and model segments at once.
    """
    async with uow:
        segment = await service.create_segment(uow.conn, uow.principal, body)
        return await uow.commit(segment, status_code=201, headers=_headers(segment))


@router.get("", response_model=Page[Segment])
async def segments_list(
    principal: Reader,
    request: Request,
    kind: SegmentKind | None = None,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> Page[Segment]:
    """List segments, oldest first."""
    data, next_cursor = await service.list_segments(
        reads(request), principal, kind=kind, cursor=cursor, limit=limit
    )
    return Page[Segment](data=data, next_cursor=next_cursor, has_more=next_cursor is not None)


@router.post("/preview", response_model=Preview)
async def segments_preview(body: PreviewRequest, uow: Previewing) -> Response:
    """Count the live customers an unsaved condition matches now, with a sample of them."""
    async with uow:
        result = await service.preview(uow.conn, uow.principal, body)
        return await uow.commit(result)


@router.get("/{segment_id}", response_model=Segment, responses=responses(404))
async def segments_get(segment_id: SegmentId, principal: Reader, request: Request) -> Response:
    """Get one segment. Without `pii:read`, values compared with personal fields are null."""
    segment = await service.get_segment(reads(request), principal, segment_id)
    return Response(
        segment.model_dump_json(), media_type="application/json", headers=_headers(segment)
    )


@router.patch("/{segment_id}", response_model=Segment, responses=responses(404, 409, 412))
async def segments_update(
    segment_id: SegmentId, body: SegmentUpdate, uow: Writing, if_match: IfMatch = None
) -> Response:
    """Change some fields; those left out stay. Honours `If-Match`. The kind is fixed."""
    async with uow:
        segment = await service.update_segment(
            uow.conn, uow.principal, segment_id, body, expected=expected_versions(if_match)
        )
        return await uow.commit(segment, headers=_headers(segment))


@router.delete("/{segment_id}", status_code=204, responses=responses(404, 409, 412))
async def segments_delete(
    segment_id: SegmentId, uow: Writing, if_match: IfMatch = None
) -> Response:
    """Delete a segment that no other segment's condition refers to.

    Its members exit first: one `segment.exited` each.
    """
    async with uow:
        await service.delete_segment(uow.conn, segment_id, expected=expected_versions(if_match))
        return await uow.commit(status_code=204)


@router.post("/{segment_id}/refresh", response_model=RefreshReport, responses=responses(404, 409))
async def segments_refresh(segment_id: SegmentId, uow: Writing) -> Response:
    """Compute a rule or model segment's members now (static segments: 409).

    Emits `segment.entered` / `segment.exited` once per customer who entered or left.
    """
    async with uow:
        report = await service.refresh_segment(uow.conn, segment_id)
        return await uow.commit(report)


@router.get("/{segment_id}/count", response_model=SegmentCount, responses=responses(404))
async def segments_count(
    segment_id: SegmentId, principal: Reader, request: Request
) -> SegmentCount:
    """How many live customers are members, as last refreshed."""
    return await service.count_members(reads(request), segment_id)


@members_router.get(
    "/{segment_id}/members", response_model=Page[Customer], responses=responses(404)
)
async def segment_members_list(
    segment_id: SegmentId,
    principal: Reader,
    request: Request,
    sort: Sort = "-created_at",
    cursor: Cursor = None,
    limit: Limit = 50,
) -> Page[Customer]:
    """The segment's live members, rendered (and redacted) as the customers list renders
    them; cursors are the customers list's for the same sort."""
    data, next_cursor = await service.list_members(
        reads(request), principal, segment_id, sort=sort, cursor=cursor, limit=limit
    )
    return Page[Customer](data=data, next_cursor=next_cursor, has_more=next_cursor is not None)


@members_router.get(
    "/{segment_id}/audience", response_model=Page[Customer], responses=responses(404)
)
async def segment_members_audience(
    segment_id: SegmentId,
    principal: Reader,
    request: Request,
    channel: Annotated[Channel, Query(description="The channel to be contacted on.")],
    sort: Sort = "-created_at",
    cursor: Cursor = None,
    limit: Limit = 50,
) -> Page[Customer]:
    """The segment's live members who consented to `channel` (their `consents.<channel>` is
    `granted: true`): the list a campaign tool may contact. A member without that consent,
    or who withdrew it, never appears. Rendered and paged as the members list."""
    data, next_cursor = await service.list_members(
        reads(request),
        principal,
        segment_id,
        sort=sort,
        cursor=cursor,
        limit=limit,
        consented_to=channel,
    )
    return Page[Customer](data=data, next_cursor=next_cursor, has_more=next_cursor is not None)


@members_router.post(
    "/{segment_id}/members", response_model=MembersAdded, responses=responses(404, 409)
)
async def segment_members_add(segment_id: SegmentId, body: MembersAdd, uow: Writing) -> Response:
    """Add customers to a static segment (others: 409); those already members stay.

    Emits `segment.entered` for each new member.
    """
    async with uow:
        added = await service.add_members(uow.conn, segment_id, body)
        return await uow.commit(added)


@members_router.delete(
    "/{segment_id}/members/{customer_id}", status_code=204, responses=responses(404, 409)
)
async def segment_members_remove(
    segment_id: SegmentId, customer_id: CustomerId, uow: Writing
) -> Response:
    """Remove a customer from a static segment (others: 409). Emits `segment.exited`."""
    async with uow:
        await service.remove_member(uow.conn, segment_id, customer_id)
        return await uow.commit(status_code=204)


@members_router.get(
    "/{segment_id}/history", response_model=Page[MembershipStay], responses=responses(404)
)
async def segment_members_history(
    segment_id: SegmentId,
    principal: Reader,
    request: Request,
    customer_id: uuid.UUID | None = None,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> Page[MembershipStay]:
    """Every stay in the segment (when a customer entered and left), latest first."""
    data, next_cursor = await service.list_history(
        reads(request), segment_id, customer_id=customer_id, cursor=cursor, limit=limit
    )
    return Page[MembershipStay](
        data=data, next_cursor=next_cursor, has_more=next_cursor is not None
    )


@customers_router.post("/search", response_model=Page[Customer])
async def customers_search(
    body: ConditionSearch,
    uow: Searching,
    sort: Sort = "-created_at",
    cursor: Cursor = None,
    limit: Limit = 50,
) -> Response:
    """List live customers matching a condition tree (the segments' language; conditions
    on personal fields need `pii:read`), in the customers list's pages and rendering."""
    async with uow:
        data, next_cursor = await service.search_customers(
            uow.conn, uow.principal, body, sort=sort, cursor=cursor, limit=limit
        )
        page = Page[Customer](data=data, next_cursor=next_cursor, has_more=next_cursor is not None)
        return await uow.commit(page)


@customers_router.get(
    "/{customer_id}/segments", response_model=Page[CustomerSegment], responses=responses(404)
)
async def customers_segments(
    customer_id: CustomerId,
    principal: Reader,
    request: Request,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> Page[CustomerSegment]:
    """The segments a customer is a member of, with when they entered; oldest segments
    first."""
    data, next_cursor = await service.customer_segments(
        reads(request), principal, customer_id, cursor=cursor, limit=limit
    )
    return Page[CustomerSegment](
        data=data, next_cursor=next_cursor, has_more=next_cursor is not None
    )
