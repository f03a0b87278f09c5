"""Safety limits of GraphQL operations, enforced before anything runs.

A document may hold at most ``graphql_max_tokens`` tokens (the parser stops there); the
operation to run may nest at most ``graphql_max_depth`` fields deep, use at most
``graphql_max_aliases`` aliases and cost at most ``graphql_max_cost``; introspection may be
switched off. The measures are taken before the schema validation (which would cost more
on an oversized operation), so they must bear documents that validation would refuse.

Cost is a static estimate of the work: every field costs 1, and a field returning many
objects multiplies what it selects by how many it may return. A connection's ``first``
(or a ``limit``) sizes its ``edges``; a list without such an argument counts as
``LIST_SIZE`` items. Each refusal is a problem of its own, with the figure and the limit.
"""

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    NamedTypeNode,
    SelectionSetNode,
    VariableNode,
    get_named_type,
    get_nullable_type,
    get_operation_ast,
    is_composite_type,
    is_list_type,
)
from graphql.error import GraphQLSyntaxError
from strawberry.extensions import SchemaExtension

from crm_api.config import Settings
from crm_api.core.errors import Forbidden, ProblemError
from crm_api.core.pagination import MAX_LIMIT

PAGE_ARGUMENTS = ("first", "limit")
# The lists without a page argument are small by nature (a customer's consents and
# scores, a programme's tiers, an order's items, a delivery's attempts).
LIST_SIZE = 10
INTROSPECTION_FIELDS = frozenset({"__schema", "__type"})


class QueryTooLarge(ProblemError):
    status, slug = 400, "query-too-large"


class QueryTooDeep(ProblemError):
    status, slug = 400, "query-too-deep"


class TooManyAliases(ProblemError):
    status, slug = 400, "too-many-aliases"


class QueryTooComplex(ProblemError):
    status, slug = 400, "query-too-complex"


class IntrospectionDisabled(Forbidden):
    slug = "introspection-disabled"


@dataclass(frozen=True, slots=True)
class Measure:
    """What running (part of) an operation takes."""

    depth: int = 0
    aliases: int = 0
    cost: int = 0
    introspects: bool = False

    def beside(self, other: "Measure") -> "Measure":
        """This selection and ``other`` selected side by side."""
        return Measure(
            depth=max(self.depth, other.depth),
            aliases=self.aliases + other.aliases,
            cost=self.cost + other.cost,
            introspects=self.introspects or other.introspects,
        )


class _Measurer:
    def __init__(
        self, schema: GraphQLSchema, document: DocumentNode, variables: Mapping[str, Any]
    ) -> None:
        self._schema = schema
        self._variables = variables
        self._fragments = {
            d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
        }
        # A fragment is measured once per page size, however often it is spread: documents
        # spreading fragments into fragments would otherwise take exponential time.
        self._measured: dict[tuple[str, int | None], Measure] = {}
        self._entered: set[str] = set()

    def selections(self, selection_set: SelectionSetNode, parent: Any, page: int | None) -> Measure:
        """``page``: the size of the page the enclosing field returns, if it returns one."""
        total = Measure()
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                measure = self._field(selection, parent, page)
            elif isinstance(selection, InlineFragmentNode):
                on = self._type(selection.type_condition) or parent
                measure = self.selections(selection.selection_set, on, page)
            else:
                assert isinstance(selection, FragmentSpreadNode)
                measure = self._spread(selection.name.value, page)
            total = total.beside(measure)
        return total

    def _field(self, node: FieldNode, parent: Any, page: int | None) -> Measure:
        name = node.name.value
        aliases = 1 if node.alias else 0
        introspects = name in INTROSPECTION_FIELDS
        definition = self._schema.get_field(parent, name) if is_composite_type(parent) else None
        if definition is None or node.selection_set is None:
            return Measure(depth=1, aliases=aliases, cost=1, introspects=introspects)
        size = self._page_size(node, definition)
        if is_list_type(get_nullable_type(definition.type)):
            multiplier, page_below = size or page or LIST_SIZE, None
        else:  # a connection: its page sizes the list it holds
            multiplier, page_below = 1, size
        below = self.selections(node.selection_set, get_named_type(definition.type), page_below)
        return Measure(
            depth=below.depth + 1,
            aliases=below.aliases + aliases,
            cost=1 + multiplier * below.cost,
            introspects=below.introspects or introspects,
        )

    def _spread(self, name: str, page: int | None) -> Measure:
        fragment = self._fragments.get(name)
        if fragment is None or name in self._entered:  # unknown or cyclic: validation says so
            return Measure()
        key = (name, page)
        if key not in self._measured:
            self._entered.add(name)
            on = self._type(fragment.type_condition)
            self._measured[key] = self.selections(fragment.selection_set, on, page)
            self._entered.discard(name)
        return self._measured[key]

    def _type(self, condition: NamedTypeNode | None) -> Any:
        return self._schema.get_type(condition.name.value) if condition else None

    def _page_size(self, node: FieldNode, definition: Any) -> int | None:
        given = {a.name.value: a.value for a in node.arguments or ()}
        for name in PAGE_ARGUMENTS:
            if name not in definition.args:
                continue
            value: Any = definition.args[name].default_value
            literal = given.get(name)
            if isinstance(literal, IntValueNode):
                value = int(literal.value)
            elif isinstance(literal, VariableNode):
                value = self._variables.get(literal.name.value, value)
            if isinstance(value, int) and not isinstance(value, bool):
                # Other sizes are refused when the field runs: they cost no more than these.
                return min(max(value, 1), MAX_LIMIT)
        return None


def measure(
    schema: GraphQLSchema,
    document: DocumentNode,
    operation_name: str | None = None,
    variables: Mapping[str, Any] | None = None,
) -> Measure:
    """What running the document's operation ``operation_name`` would take."""
    operation = get_operation_ast(document, operation_name)
    if operation is None:  # none to run: validation explains why
        return Measure()
    root = schema.get_root_type(operation.operation)
    # Variables of the wrong shape are refused later, by the variable coercion.
    measurer = _Measurer(schema, document, variables if isinstance(variables, Mapping) else {})
    return measurer.selections(operation.selection_set, root, None)


def refusals(measured: Measure, settings: Settings) -> Iterator[ProblemError]:
    if measured.introspects and not settings.graphql_introspection_enabled:
        yield IntrospectionDisabled("Introspection is disabled on this server.")
    if measured.depth > settings.graphql_max_depth:
        yield QueryTooDeep(
            f"The operation nests fields {measured.depth} deep; "
            f"the limit is {settings.graphql_max_depth}."
        )
    if measured.aliases > settings.graphql_max_aliases:
        yield TooManyAliases(
            f"The operation uses {measured.aliases} aliases; "
            f"the limit is {settings.graphql_max_aliases}."
        )
    if measured.cost > settings.graphql_max_cost:
        yield QueryTooComplex(
            f"The operation costs {measured.cost}; the limit is {settings.graphql_max_cost}. "
            "Ask for smaller pages (`first`) or fewer nested lists."
        )


def _too_many_tokens(error: GraphQLError, limit: int) -> bool:
    # graphql-core reports its token limit as a syntax error; only the message tells.
    return isinstance(error, GraphQLSyntaxError) and error.message == (
        f"Syntax Error: Document contains more than {limit} tokens. Parsing aborted."
    )


class SafetyLimits(SchemaExtension):
    """Applies the limits of the settings in the request's context.

    Operations run in-process without a request (none carries settings) are trusted.
    """

    def _settings(self) -> Settings | None:
        return getattr(self.execution_context.context, "settings", None)

    def on_parse(self) -> Iterator[None]:
        settings = self._settings()
        if settings is None:
            yield
            return
        limit = settings.graphql_max_tokens
        self.execution_context.parse_options["max_tokens"] = limit
        yield
        for error in self.execution_context.pre_execution_errors or ():
            if _too_many_tokens(error, limit):
                # The same error object is the one answered: give it its problem.
                error.original_error = QueryTooLarge(
                    f"The document has more tokens than the limit of {limit}."
                )

    def on_validate(self) -> Iterator[None]:
        settings = self._settings()
        context = self.execution_context
        if settings is not None and context.graphql_document is not None:
            measured = measure(
                context.schema._schema,
                context.graphql_document,
                context.operation_name,
                context.variables,
            )
            refused = [
                GraphQLError(problem.detail, original_error=problem)
                for problem in refusals(measured, settings)
            ]
            if refused:  # the schema validation is skipped: the operation will not run
                context.pre_execution_errors = refused
        yield
