"""Money is integer minor units plus an ISO 4217 currency; models want major units."""

# ISO 4217 minor-unit exponents other than the usual 2.
_EXPONENTS = {
    **dict.fromkeys(
        ["BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "UYI",
         "VND", "VUV", "XAF", "XOF", "XPF"],
        0,
    ),
    **dict.fromkeys(["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"], 3),
    "CLF": 4,
    "UYW": 4,
}  # fmt: skip


def minor_per_major(currency: str) -> int:
    """How many minor units make one major unit (100 cents in a dollar, 1 yen in a yen)."""
    return 10 ** _EXPONENTS.get(currency.upper(), 2)
