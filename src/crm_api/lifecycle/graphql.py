"""GraphQL transport of the lifecycle: the stage graph, its rules and customers' transitions."""

import uuid
from datetime import datetime

import strawberry
from strawberry import relay
from strawberry.scalars import JSON

from crm_api.core.scopes import Scope
from crm_api.graphql.context import Info
from crm_api.graphql.convert import expected_versions, from_model, parse_id, plain, validated
from crm_api.graphql.errors import or_none
from crm_api.graphql.idempotency import IdempotencyKey, idempotent
from crm_api.graphql.node import Node, findable
from crm_api.graphql.pagination import connection, nested_page, page_size
from crm_api.graphql.permissions import needs
from crm_api.lifecycle import schemas, service
from crm_api.lifecycle.models import lifecycle_transitions

strawberry.enum(schemas.RuleName, name="LifecycleRuleName")


@strawberry.type(description="A stage and the stages a customer may move to from it.")
class LifecycleStage:
    name: str
    description: str | None
    targets: list[str]


@strawberry.type(description="The stage graph; `prospect` is where every customer starts.")
class LifecycleGraph:
    stages: list[LifecycleStage]
    version: int = strawberry.field(description="Increments on every replacement.")
    updated_at: datetime

    @classmethod
    def of(cls, model: schemas.StageGraph) -> "LifecycleGraph":
        stages = [from_model(LifecycleStage, stage) for stage in model.stages]
        return from_model(cls, model, stages=stages)


@strawberry.type(description="An automatic transition an admin switches on.")
class LifecycleRule:
    name: schemas.RuleName
    description: str
    enabled: bool
    settings: JSON = strawberry.field(description="The rule's settings, defaults filled in.")
    from_stages: list[str]
    to_stage: str
    updated_at: datetime
    version: int


@strawberry.type(description="One move of a customer from a stage to another.")
class LifecycleTransition(Node):
    id: strawberry.ID
    customer_id: strawberry.ID
    from_stage: str
    to_stage: str
    reason: str | None
    automatic: bool = strawberry.field(description="Made by a rule rather than by an API call.")
    rule: str | None
    actor_key_id: strawberry.ID | None = strawberry.field(
        description="The API key of a manual move; null for automatic ones."
    )
    occurred_at: datetime

    @classmethod
    def of(cls, model: schemas.Transition) -> "LifecycleTransition":
        actor = None if model.actor_key_id is None else strawberry.ID(str(model.actor_key_id))
        return from_model(cls, model, actor_key_id=actor)


findable(
    LifecycleTransition,
    lifecycle_transitions.c.id,
    Scope.LIFECYCLE_READ,
    lambda conn, principal, id, customer_id: service.get_transition(conn, customer_id, id),
    parent=lifecycle_transitions.c.customer_id,
)


@strawberry.type(description="A customer's stage, since when, and where they may move now.")
class CustomerLifecycle:
    customer_id: strawberry.ID
    stage: str
    since: datetime
    allowed: list[str]

    @strawberry.field(description="The customer's transitions, newest first.")
    async def transitions(
        self, info: Info, first: int = 20, after: str | None = None
    ) -> relay.Connection[LifecycleTransition]:
        return await transitions_of(info, uuid.UUID(self.customer_id), first=first, after=after)


async def transitions_of(
    info: Info, customer_id: uuid.UUID, *, first: int, after: str | None
) -> relay.Connection[LifecycleTransition]:
    limit = page_size(first)
    page, next_cursor = await nested_page(
        info,
        ("transitions", limit),
        customer_id,
        first_pages=lambda conn, ids: service.transitions_by_customer(conn, ids, limit=limit),
        after=after,
        page_after=lambda conn, cursor: service.list_transitions(
            conn, customer_id, cursor=cursor, limit=limit
        ),
    )
    return connection(
        page,
        node=LifecycleTransition.of,
        cursor_of=lambda made: service.HISTORY.encode((made.occurred_at, made.id)),
        has_next_page=next_cursor is not None,
    )


async def lifecycle_of(info: Info, customer_id: uuid.UUID) -> CustomerLifecycle | None:
    async with info.context.db.connection() as conn:
        found = await or_none(service.customer_lifecycle(conn, customer_id))
    return None if found is None else from_model(CustomerLifecycle, found)


async def lifecycle_from(info: Info, customer: schemas.CustomerStage) -> CustomerLifecycle:
    """The lifecycle of a customer read with its stage, batched with the other customers'
    of the request."""
    found = await info.context.batched("lifecycles", service.lifecycles, customer, None)
    return from_model(CustomerLifecycle, found)


@strawberry.input(description="A stage of a replacement graph.")
class LifecycleStageInput:
    name: str
    description: str | None = strawberry.UNSET
    targets: list[str] | None = strawberry.field(
        default=strawberry.UNSET, description="The stages a customer may move to from it."
    )


@strawberry.type
class LifecycleQueries:
    @strawberry.field(extensions=needs(Scope.LIFECYCLE_READ))
    async def lifecycle_stages(self, info: Info) -> LifecycleGraph:
        async with info.context.db.connection() as conn:
            return LifecycleGraph.of(await service.get_stages(conn))

    @strawberry.field(extensions=needs(Scope.LIFECYCLE_READ))
    async def lifecycle_rules(self, info: Info) -> list[LifecycleRule]:
        async with info.context.db.connection() as conn:
            found = await service.list_rules(conn)
        return [from_model(LifecycleRule, rule) for rule in found]

    @strawberry.field(extensions=needs(Scope.LIFECYCLE_READ), description="null if unknown.")
    async def customer_lifecycle(
        self, info: Info, customer_id: strawberry.ID
    ) -> CustomerLifecycle | None:
        return await lifecycle_of(info, parse_id(customer_id, "customerId"))

    @strawberry.field(extensions=needs(Scope.LIFECYCLE_READ), description="null if unknown.")
    async def lifecycle_transition(
        self, info: Info, customer_id: strawberry.ID, id: strawberry.ID
    ) -> LifecycleTransition | None:
        customer, transition_id = parse_id(customer_id, "customerId"), parse_id(id)
        async with info.context.db.connection() as conn:
            found = await or_none(service.get_transition(conn, customer, transition_id))
        return None if found is None else LifecycleTransition.of(found)


@strawberry.type
class LifecycleMutations:
    @strawberry.mutation(
        extensions=needs(Scope.LIFECYCLE_WRITE),
        description="Move a customer along an edge of the graph; with ifMatchVersion, only if "
        "the customer is still at that version.",
    )
    async def transition_customer(
        self,
        info: Info,
        customer_id: strawberry.ID,
        to: str,
        reason: str | None = None,
        if_match_version: int | None = None,
        idempotency_key: IdempotencyKey = None,
    ) -> LifecycleTransition:
        customer = parse_id(customer_id, "customerId")
        data = validated(schemas.TransitionCreate, {"to": to, "reason": reason})
        expected = expected_versions(if_match_version)
        made, _ = await idempotent(
            info,
            idempotency_key,
            tuple[schemas.Transition, int],
            lambda conn: service.transition(
                conn, info.context.principal, customer, data, expected=expected
            ),
        )
        return LifecycleTransition.of(made)

    @strawberry.mutation(
        extensions=needs(Scope.ADMIN),
        description="Replace the whole stage graph (see the REST operation for what is refused).",
    )
    async def replace_lifecycle_stages(
        self,
        info: Info,
        stages: list[LifecycleStageInput],
        if_match_version: int | None = None,
        idempotency_key: IdempotencyKey = None,
    ) -> LifecycleGraph:
        data = validated(schemas.StagesReplace, {"stages": plain(stages)})
        expected = expected_versions(if_match_version)
        graph = await idempotent(
            info,
            idempotency_key,
            schemas.StageGraph,
            lambda conn: service.replace_stages(conn, data, expected=expected),
        )
        return LifecycleGraph.of(graph)

    @strawberry.mutation(
        extensions=needs(Scope.ADMIN),
        description="Switch a rule on or off or change its settings (merged key by key).",
    )
    async def update_lifecycle_rule(
        self,
        info: Info,
        name: schemas.RuleName,
        enabled: bool | None = strawberry.UNSET,
        settings: JSON | None = strawberry.UNSET,
        if_match_version: int | None = None,
        idempotency_key: IdempotencyKey = None,
    ) -> LifecycleRule:
        given = {"enabled": enabled, "settings": settings}
        patch = validated(
            schemas.RuleUpdate, {k: v for k, v in given.items() if v is not strawberry.UNSET}
        )
        expected = expected_versions(if_match_version)
        rule = await idempotent(
            info,
            idempotency_key,
            schemas.LifecycleRule,
            lambda conn: service.update_rule(conn, name, patch, expected=expected),
        )
        return from_model(LifecycleRule, rule)
