"""The rules every analytics figure follows (see analytics/schemas.py): money in one
currency at a time, ratios null on a zero denominator, averages of money rounded to whole
minor units. A leaf module, so every analytics module and the segment conditions can share
it without import cycles."""

from decimal import ROUND_HALF_UP, Decimal

from pydantic import TypeAdapter, ValidationError

from crm_api.core.errors import ValidationFailed
from crm_api.core.types import CurrencyCode

_CURRENCY: TypeAdapter[str] = TypeAdapter(CurrencyCode)


def ratio(numerator: int | float | Decimal, denominator: int | Decimal) -> float | None:
    """``numerator / denominator``; None (not 0) when there is nothing to divide by."""
    return float(numerator / denominator) if denominator else None


def minor_units(numerator: int | float | Decimal, denominator: int = 1) -> int | None:
    """An average of money in whole minor units, rounded half away from zero."""
    if not denominator:
        return None
    exact = Decimal(numerator) / denominator
    return int(exact.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def pick_currency(found: list[str], currency: str | None) -> str | None:
    """The currency of the money figures: the one asked for (checked here, since GraphQL
    hands it over as plain text), or the only one in the data."""
    if currency is not None:
        try:
            return _CURRENCY.validate_python(currency)
        except ValidationError:
            raise ValidationFailed.for_field(
                "currency", "must be an ISO 4217 currency code, e.g. EUR", location="query"
            ) from None
    if len(found) > 1:
        raise ValidationFailed.for_field(
            "currency",
            f"The data holds amounts in {', '.join(found)}: choose one with `currency`.",
            location="query",
        )
    return found[0] if found else None
