"""The customers the built-in scorers score: those with at least one purchase.

Every built-in model describes buying behaviour after a first purchase, so customers
without one are left unscored: score nan, label None, empty details. Model code works on
the purchasers' compact arrays; these helpers spread its results back over all customers.
"""

from typing import Any

import numpy as np

from crm_api.scoring.protocol import Features


def mask(features: Features) -> np.ndarray:
    return np.asarray(features.purchases) > 0


def time_since_last_purchase(features: Features) -> np.ndarray:
    return np.asarray(features.T, dtype=float) - np.asarray(features.recency, dtype=float)


def spread(who: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``values`` (one per purchaser) aligned with all customers, nan for the others."""
    out = np.full(len(who), np.nan)
    out[who] = values
    return out


def labels(who: np.ndarray, names: list[str]) -> list[str | None]:
    found = iter(names)
    return [next(found) if bought else None for bought in who.tolist()]


def details(who: np.ndarray, **columns: np.ndarray) -> list[dict[str, Any]]:
    """One dict per customer from per-purchaser columns; nan becomes None (JSON null)."""
    values = [
        np.where(np.isnan(c), None, c).tolist()
        if c.dtype.kind == "f" and np.isnan(c).any()
        else c.tolist()
        for c in columns.values()
    ]
    rows = iter([dict(zip(columns, row, strict=True)) for row in zip(*values, strict=True)])
    return [next(rows) if bought else {} for bought in who.tolist()]
