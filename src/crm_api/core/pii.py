"""Personal fields of a customer resource, and their redaction for keys without ``pii:read``."""

from typing import Any

PERSONAL_FIELDS = ("first_name", "last_name", "email", "phone", "birth_date")
PERSONAL_ADDRESS_FIELDS = ("line1", "line2")
REDACTED_FIELDS = (*PERSONAL_FIELDS, *(f"address.{f}" for f in PERSONAL_ADDRESS_FIELDS))


def redact_customer(resource: dict[str, Any]) -> dict[str, Any]:
    """A copy of a customer resource with personal fields nulled and listed as redacted."""
    out = dict(resource)
    for field in PERSONAL_FIELDS:
        out[field] = None
    address = out.get("address")
    if isinstance(address, dict):
        out["address"] = {**address, **dict.fromkeys(PERSONAL_ADDRESS_FIELDS)}
    out["redacted_fields"] = list(REDACTED_FIELDS)
    return out


# Events whose data is a customer resource; other customer.* events carry no personal fields.
_CUSTOMER_RESOURCE_EVENTS = frozenset(
    {"customer.created", "customer.updated", "customer.deleted", "customer.erased"}
)


def is_customer_event(event_type: str) -> bool:
    return event_type in _CUSTOMER_RESOURCE_EVENTS


def event_data(event_type: str, data: dict[str, Any], *, sees_pii: bool) -> dict[str, Any]:
    """An event's payload as a reader with or without ``pii:read`` may see it."""
    return redact_customer(data) if is_customer_event(event_type) and not sees_pii else data
