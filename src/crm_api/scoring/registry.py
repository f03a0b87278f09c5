"""The scorers this service offers: the classes declared in the ``crm_api.scorers``
entry-point group (the built-ins register the same way) that satisfy the Scorer protocol.

A plugin that fails to load or breaks the protocol is skipped with a warning naming it, so
one broken package cannot take the service down. Discovery runs once per process;
``refresh()`` forgets it, for a package installed since.
"""

import functools
import logging
from importlib.metadata import entry_points
from typing import Any

from pydantic import BaseModel

from crm_api.core.errors import NotFound
from crm_api.scoring.protocol import Scorer, ScorerKind

GROUP = "crm_api.scorers"
log = logging.getLogger("crm_api.scoring.registry")


class InvalidScorer(TypeError):
    pass


def available() -> dict[str, type[Scorer]]:
    """Every usable scorer by name, sorted by name."""
    return dict(_discover())


def get(name: str) -> type[Scorer]:
    scorers = available()
    if name not in scorers:
        known = ", ".join(scorers) or "none"
        raise NotFound(f"There is no scorer named {name!r}; the scorers are: {known}.")
    return scorers[name]


def refresh() -> None:
    _discover.cache_clear()


@functools.cache
def _discover() -> tuple[tuple[str, type[Scorer]], ...]:
    found: dict[str, type[Scorer]] = {}
    for entry_point in entry_points(group=GROUP):
        if entry_point.name in found:
            log.warning(
                "Scorer plugin %r (%s) skipped: the name is taken by %s.",
                entry_point.name,
                entry_point.value,
                found[entry_point.name].__module__,
            )
            continue
        try:
            found[entry_point.name] = _checked(entry_point.name, entry_point.load())
        except Exception as error:  # whatever a third-party import raises
            log.warning(
                "Scorer plugin %r (%s) skipped: %s",
                entry_point.name,
                entry_point.value,
                error,
                exc_info=not isinstance(error, InvalidScorer),
            )
    return tuple(sorted(found.items()))


def _checked(declared_name: str, loaded: Any) -> type[Scorer]:
    if not isinstance(loaded, type):
        raise InvalidScorer(f"{loaded!r} is not a class.")
    name = getattr(loaded, "name", None)
    if name != declared_name:
        raise InvalidScorer(f"its name {name!r} differs from the entry point's.")
    version = getattr(loaded, "version", None)
    if not isinstance(version, str) or not version:
        raise InvalidScorer("it has no version string.")
    kind = getattr(loaded, "kind", None)
    if kind not in set(ScorerKind):
        raise InvalidScorer(f"its kind {kind!r} is none of {', '.join(ScorerKind)}.")
    config = getattr(loaded, "Config", None)
    if not (isinstance(config, type) and issubclass(config, BaseModel)):
        raise InvalidScorer("its Config is not a pydantic model.")
    for method in ("fit", "score"):
        if not callable(getattr(loaded, method, None)):
            raise InvalidScorer(f"it has no {method}() method.")
    return loaded
