"""REST transport of customers: parse, check scope, call the service, render."""

import uuid
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Path, Query, Request
from fastapi.responses import StreamingResponse
from starlette.responses import Response

from crm_api.core import json
from crm_api.core.auth import requires
from crm_api.core.errors import responses
from crm_api.core.http import (
    IF_NONE_MATCH_PARAMETER,
    IfMatch,
    etag,
    expected_versions,
    not_modified,
)
from crm_api.core.ndjson import IMPORT_REQUEST_BODY, NDJSON_MEDIA_TYPE, ImportReport, read_ndjson
from crm_api.core.pagination import Cursor, Limit, Page
from crm_api.core.routing import domain_router
from crm_api.core.scopes import Scope
from crm_api.core.uow import reads, unit_of_work
from crm_api.customers import erasure, importer, service
from crm_api.customers.schemas import (
    Customer,
    CustomerCreate,
    CustomerFilters,
    CustomerSort,
    CustomerUpdate,
    ExternalId,
)

router = domain_router(prefix="/v1/customers", tag="customers")
Reader = requires(Scope.CUSTOMERS_READ)
Writing = unit_of_work(Scope.CUSTOMERS_WRITE)
CustomerId = Annotated[uuid.UUID, Path(description="The customer's id.")]


def _headers(customer: Customer) -> dict[str, str]:
    return {"ETag": etag(customer.version), "Location": f"/v1/customers/{customer.id}"}


Filters = Annotated[CustomerFilters, Query()]


@router.post("", status_code=201, response_model=Customer, responses=responses(409))
async def customers_create(body: CustomerCreate, uow: Writing) -> Response:
    """Create a customer. Emits `customer.created`."""
    async with uow:
        customer = await service.create_customer(uow.conn, uow.principal, body)
        return await uow.commit(customer, status_code=201, headers=_headers(customer))


@router.get("", response_model=Page[Customer])
async def customers_list(
    principal: Reader,
    request: Request,
    filters: Filters,
    sort: Annotated[CustomerSort, Query(description="`-` for descending.")] = "-created_at",
    cursor: Cursor = None,
    limit: Limit = 50,
) -> Page[Customer]:
    """List live customers, filtered, in keyset pages."""
    data, next_cursor = await service.list_customers(
        reads(request), principal, filters, sort=sort, cursor=cursor, limit=limit
    )
    return Page[Customer](data=data, next_cursor=next_cursor, has_more=next_cursor is not None)


@router.get(
    "/export",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {NDJSON_MEDIA_TYPE: {"schema": {"type": "string"}}},
            "description": "One customer per line.",
        }
    },
)
async def customers_export(
    principal: Reader, request: Request, filters: Filters
) -> StreamingResponse:
    """Stream every matching customer as NDJSON (same filters as the list)."""
    database = request.app.state.db

    async def lines() -> AsyncIterator[bytes]:
        async with database.connection() as conn:
            async for line in service.export_customers(conn, principal, filters):
                yield line

    # Start the query before the 200 goes out: a failure to run it (forbidden filter,
    # database down) still gets a problem response; only a failure mid-stream cannot.
    stream = lines()
    first = await anext(stream, b"")
    return StreamingResponse(_prepend(first, stream), media_type=NDJSON_MEDIA_TYPE)


async def _prepend(first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    yield first
    async for line in rest:
        yield line


@router.post(
    "/import",
    response_model=ImportReport,
    openapi_extra={"requestBody": IMPORT_REQUEST_BODY},
    responses=responses(409, 415),
)
async def customers_import(request: Request, uow: Writing) -> Response:
    """Upsert customers from NDJSON, one per line, matched by `external_id`, else `email`.

    Each line is a complete customer (fields left out are reset on update). Bad lines are
    reported with their line number and never block the good ones; a line is written whole
    or not at all. Emits `customer.created` / `customer.updated` per changed customer.
    """
    body = await read_ndjson(request)
    async with uow:
        report = await importer.import_customers(uow.conn, uow.principal, body)
        return await uow.commit(report)


@router.get(
    "/{customer_id}",
    response_model=Customer,
    responses={304: {"description": "Not Modified: `If-None-Match` holds the current ETag."}}
    | responses(404),
    openapi_extra={"parameters": [IF_NONE_MATCH_PARAMETER]},
)
async def customers_get(customer_id: CustomerId, principal: Reader, request: Request) -> Response:
    """Get one customer. Answers 304 when `If-None-Match` holds its current ETag."""
    customer = await service.read_customer(reads(request), principal, customer_id)
    headers = {"ETag": etag(customer["version"])}
    if not_modified(request.headers.get("if-none-match"), customer["version"]):
        return Response(status_code=304, headers=headers)
    return Response(json.dumps(customer), media_type="application/json", headers=headers)


@router.patch(
    "/{customer_id}",
    response_model=Customer,
    responses=responses(404, 409, 412),
    openapi_extra={
        "requestBody": {
            "content": {
                "application/merge-patch+json": {
                    "schema": {"$ref": "#/components/schemas/CustomerUpdate"}
                }
            }
        }
    },
)
async def customers_update(
    customer_id: CustomerId, body: CustomerUpdate, uow: Writing, if_match: IfMatch = None
) -> Response:
    """Change some fields (JSON merge patch). Honours `If-Match`. Emits `customer.updated`."""
    async with uow:
        customer = await service.update_customer(
            uow.conn, uow.principal, customer_id, body, expected=expected_versions(if_match)
        )
        return await uow.commit(customer, headers=_headers(customer))


@router.put(
    "/by-external-id/{external_id}",
    response_model=Customer,
    responses={201: {"model": Customer, "description": "Created"}, **responses(409, 412)},
)
async def customers_upsert(
    external_id: Annotated[ExternalId, Path()],
    body: CustomerCreate,
    uow: Writing,
    if_match: IfMatch = None,
) -> Response:
    """Create or replace the customer with this `external_id` (idempotent partner sync).

    Answers 201 when created, 200 when replaced or already identical (no event then).
    """
    async with uow:
        customer, created = await service.upsert_by_external_id(
            uow.conn, uow.principal, external_id, body, expected=expected_versions(if_match)
        )
        return await uow.commit(
            customer, status_code=201 if created else 200, headers=_headers(customer)
        )


@router.delete("/{customer_id}", status_code=204, responses=responses(404, 412))
async def customers_delete(
    customer_id: CustomerId, uow: Writing, if_match: IfMatch = None
) -> Response:
    """Soft-delete a customer: gone from reads, history kept. Emits `customer.deleted`."""
    async with uow:
        await service.delete_customer(
            uow.conn, uow.principal, customer_id, expected=expected_versions(if_match)
        )
        return await uow.commit(status_code=204)


@router.post("/{customer_id}/erase", response_model=Customer, responses=responses(404))
async def customers_erase(customer_id: CustomerId, uow: Writing) -> Response:
    """Irreversibly anonymise a customer's personal data (right to erasure).

    Names, contact data, birth date, street address, city, postal code, external id,
    attributes and consents are removed from the customer, its interactions' free text and
    its past events. The row, its timeline and aggregates stay. Emits `customer.erased`.
    """
    async with uow:
        customer = await erasure.erase_customer(uow.conn, uow.principal, customer_id)
        return await uow.commit(customer, headers=_headers(customer))
