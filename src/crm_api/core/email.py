"""Email addresses: a fast path for plain ASCII, email-validator for everything else.

email-validator is thorough but costs ~100 us per address, most of a bulk import's
parsing time. Plain addresses are checked with the WHATWG "valid e-mail address"
pattern (what browsers accept) plus a dotted domain; internationalised ones go to
email-validator. Either way the domain is normalised to lower case.
"""

import re
from typing import Annotated

from email_validator import EmailNotValidError, validate_email
from pydantic import AfterValidator, Field, StringConstraints, WithJsonSchema

from crm_api.core.types import STORABLE

MAX_LENGTH = 320
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_PLAIN = re.compile(rf"[A-Za-z0-9.!#$%&'*+/=?^_`{{|}}~-]{{1,64}}@{_LABEL}(?:\.{_LABEL})+")


def normalise_email(value: str) -> str:
    value = value.strip()
    if len(value) > MAX_LENGTH:
        raise ValueError(f"must be at most {MAX_LENGTH} characters")
    if value.isascii():
        if not _PLAIN.fullmatch(value) or ".." in value or value.startswith("."):
            raise ValueError("is not a valid email address")
        local, _, domain = value.rpartition("@")
        if local.endswith("."):
            raise ValueError("is not a valid email address")
        return f"{local}@{domain.lower()}"
    try:
        return validate_email(value, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise ValueError(f"is not a valid email address: {exc}") from None


Email = Annotated[
    str,
    StringConstraints(pattern=STORABLE),
    AfterValidator(normalise_email),
    WithJsonSchema({"type": "string", "format": "email", "maxLength": MAX_LENGTH}),
    Field(examples=["ada@example.com"]),
]
