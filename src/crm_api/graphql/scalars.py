"""Scalars and enums shared by the domains' GraphQL types."""

from typing import Any, NewType

import strawberry
from strawberry.types.scalar import ScalarDefinition

from crm_api.core.channels import Channel

MinorUnits = NewType("MinorUnits", int)


def _whole_number(value: Any) -> int:
    # GraphQL's Int is 32-bit, too small for money; refuse floats rather than truncate them.
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise ValueError(f"MinorUnits must be a whole number, not {value!r}")


SCALARS: dict[object, ScalarDefinition] = {
    MinorUnits: strawberry.scalar(
        name="MinorUnits",
        description=(
            "An amount of money in its currency's minor units (cents for EUR), "
            "0 to 10^15: a JSON number, beyond GraphQL's 32-bit Int."
        ),
        serialize=int,
        parse_value=_whole_number,
    )
}

# Registers the domain enum as a GraphQL enum (values by name: EMAIL, IN_PERSON, ...).
strawberry.enum(Channel, name="Channel")
