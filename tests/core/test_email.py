"""Email validation: what clients may send, and the form it is stored in."""

import pytest

from crm_api.core.email import normalise_email


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("Ada@Example.COM", "Ada@example.com"),
        (" a.b+tag@mail.example.co.uk ", "a.b+tag@mail.example.co.uk"),
        ("o'brien@example.ie", "o'brien@example.ie"),
        ("jörg@bücher.de", "jörg@bücher.de"),
    ],
)
def test_valid_addresses_are_kept_with_a_lower_case_domain(given, stored):
    assert normalise_email(given) == stored


@pytest.mark.parametrize(
    "given",
    ["plain", "a@b", "@example.com", ".a@example.com", "a.@example.com", "a..b@example.com",
     "a@-example.com", "a@example..com", "a b@example.com", "x" * 65 + "@example.com",
     "jörg@bücher", "user@[192.0.2.1]"],
)  # fmt: skip
def test_invalid_addresses_are_refused(given):
    with pytest.raises(ValueError):
        normalise_email(given)
