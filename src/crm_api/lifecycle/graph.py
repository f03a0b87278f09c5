"""The stage graph: reading it, locking it and replacing it as a whole.

Its one ``lifecycle_graph`` row is the lock that keeps a replacement and the transitions
apart: every transition holds it FOR KEY SHARE while it reads the edges and moves a
customer, a replacement holds it FOR UPDATE while it checks which stages customers hold
and rewrites the graph. So no customer can enter a stage that is being removed.
"""

from collections.abc import Mapping

import sqlalchemy as sa

from crm_api.core.db import Compiled, Connection, Queryable, Record
from crm_api.core.errors import Conflict, FieldError, ValidationFailed
from crm_api.core.http import check_version
from crm_api.customers import service as customers
from crm_api.lifecycle.models import lifecycle_edges as e
from crm_api.lifecycle.models import lifecycle_graph as g
from crm_api.lifecycle.models import lifecycle_stages as s
from crm_api.lifecycle.schemas import START, Stage, StageGraph, StagesReplace

_target = s.alias("target")


def targets_of(stage: sa.ColumnElement[str]) -> sa.ColumnElement[list[str]]:
    """SQL: the array of stages a customer in ``stage`` (a value or column) may move to, in
    display order."""
    return sa.func.array(
        sa.select(e.c.to_stage)
        .join(_target, _target.c.name == e.c.to_stage)
        .where(e.c.from_stage == stage)
        .order_by(_target.c.position)
        .scalar_subquery()
    )


_STAGES = Compiled.of(
    sa.select(s.c.name, s.c.description, targets_of(s.c.name).label("targets")).order_by(
        s.c.position
    )
)
_GRAPH = Compiled.of(sa.select(g))
_SHARE = Compiled.of(sa.select(g.c.version).with_for_update(read=True, key_share=True))
_EXCLUSIVE = Compiled.of(sa.select(g.c.version).with_for_update())
_TARGETS = Compiled.of(sa.select(targets_of(sa.bindparam("stage", type_=sa.Text))))
_NAMES = Compiled.of(sa.select(s.c.name))
_BUMP = Compiled.of(
    sa.update(g).values(version=g.c.version + 1, updated_at=sa.func.now()).returning(g)
)
_INSERT_STAGES = Compiled.of(
    sa.insert(s).from_select(
        ["name", "description", "position"],
        sa.select(
            sa.func.unnest(sa.bindparam("names", type_=sa.ARRAY(sa.Text))),
            sa.func.unnest(sa.bindparam("descriptions", type_=sa.ARRAY(sa.Text))),
            sa.func.unnest(sa.bindparam("positions", type_=sa.ARRAY(sa.Integer))),
        ),
    )
)
_INSERT_EDGES = Compiled.of(
    sa.insert(e).from_select(
        ["from_stage", "to_stage"],
        sa.select(
            sa.func.unnest(sa.bindparam("froms", type_=sa.ARRAY(sa.Text))),
            sa.func.unnest(sa.bindparam("tos", type_=sa.ARRAY(sa.Text))),
        ),
    )
)
_CLEAR = Compiled.of(sa.delete(s))  # edges go with their stages (ON DELETE CASCADE)


async def read(conn: Queryable, graph: Record | None = None) -> StageGraph:
    graph = graph or await _GRAPH.fetchrow(conn)
    assert graph is not None
    stages = [Stage.model_validate(dict(r)) for r in await _STAGES.fetch(conn)]
    return StageGraph(stages=stages, version=graph["version"], updated_at=graph["updated_at"])


async def hold(conn: Connection) -> None:
    """Keep the graph from being replaced until the transaction ends."""
    await _SHARE.fetchval(conn)


async def targets(conn: Queryable, stage: str) -> list[str]:
    """The stages a customer in ``stage`` may move to, in display order."""
    return list(await _TARGETS.fetchval(conn, stage=stage))


async def names(conn: Queryable) -> set[str]:
    return {r["name"] for r in await _NAMES.fetch(conn)}


def _structure_errors(data: StagesReplace) -> list[FieldError]:
    """What makes ``data`` no graph: duplicate names, unknown or repeated targets, loops,
    no `prospect`, stages unreachable from it."""
    errors: list[FieldError] = []
    first: dict[str, int] = {}
    for n, stage in enumerate(data.stages):
        if stage.name in first:
            errors.append(FieldError(field=f"stages.{n}.name", message="is named twice"))
        first.setdefault(stage.name, n)
    for n, stage in enumerate(data.stages):
        seen: set[str] = set()
        for m, target in enumerate(stage.targets):
            at = f"stages.{n}.targets.{m}"
            if target == stage.name:
                errors.append(FieldError(field=at, message="a stage cannot lead to itself"))
            elif target not in first:
                errors.append(FieldError(field=at, message=f"no stage is named {target}"))
            elif target in seen:
                errors.append(FieldError(field=at, message=f"{target} is listed twice"))
            seen.add(target)
    if START not in first:
        errors.append(
            FieldError(
                field="stages",
                message=f"must contain {START}: every customer starts there",
            )
        )
        return errors
    reached, pending = {START}, [START]
    edges = {stage.name: stage.targets for stage in data.stages}
    while pending:
        for target in edges.get(pending.pop(), []):
            if target in first and target not in reached:
                reached.add(target)
                pending.append(target)
    errors += [
        FieldError(field=f"stages.{n}.name", message=f"is not reachable from {START}")
        for name, n in first.items()
        if name not in reached
    ]
    return errors


async def replace(
    conn: Connection,
    data: StagesReplace,
    *,
    expected: frozenset[int] | None,
    needed_by_rules: Mapping[str, set[str]],
) -> StageGraph:
    """Replace the whole graph. ``needed_by_rules``: the stages each enabled rule moves
    customers between, which must stay while the rule is on."""
    current = await _EXCLUSIVE.fetchval(conn)
    check_version(current, expected)
    if errors := _structure_errors(data):
        raise ValidationFailed("The stages do not make a valid graph.", errors=errors)
    kept = [stage.name for stage in data.stages]
    if held := await customers.count_by_stage(conn, kept):
        listed = ", ".join(f"{stage} ({count} customers)" for stage, count in held.items())
        raise Conflict(
            f"Customers are in stages the new graph lacks: {listed}. Move them first.",
            errors=[
                FieldError(field="stages", message=f"lacks {stage}, held by {count} customers")
                for stage, count in held.items()
            ],
        )
    if lacking := {
        r: sorted(st - set(kept)) for r, st in needed_by_rules.items() if st - set(kept)
    }:
        listed = "; ".join(f"{rule} needs {', '.join(st)}" for rule, st in lacking.items())
        raise Conflict(
            f"Enabled rules move customers between stages the new graph lacks ({listed}); "
            "switch them off first.",
            errors=[
                FieldError(field="stages", message=f"lacks {', '.join(st)}, used by rule {rule}")
                for rule, st in lacking.items()
            ],
        )
    await _CLEAR.execute(conn)
    await _INSERT_STAGES.execute(
        conn,
        names=kept,
        descriptions=[stage.description for stage in data.stages],
        positions=list(range(len(kept))),
    )
    edges = [(stage.name, target) for stage in data.stages for target in stage.targets]
    await _INSERT_EDGES.execute(conn, froms=[a for a, _ in edges], tos=[b for _, b in edges])
    return await read(conn, await _BUMP.fetchrow(conn))
