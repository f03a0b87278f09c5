import base64
import hashlib
import logging
import subprocess
import sys
import uuid
import zipfile
from dataclasses import dataclass
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from crm_api.core.errors import NotFound
from crm_api.scoring import registry
from crm_api.scoring.plugins.bgnbd import BGNBD
from crm_api.scoring.plugins.gamma_gamma import GammaGammaCLV
from crm_api.scoring.plugins.kmeans import KMeansClusters
from crm_api.scoring.plugins.rfm import RFM

BUILT_INS = {"bgnbd": BGNBD, "gamma_gamma": GammaGammaCLV, "kmeans": KMeansClusters, "rfm": RFM}


@dataclass
class Declared:
    """An entry point whose target is given rather than imported."""

    name: str
    target: Any

    value = "tests:declared"

    def load(self) -> Any:
        return self.target


def declaring(monkeypatch, *extra) -> None:
    declared = [*registry.entry_points(group=registry.GROUP), *extra]
    monkeypatch.setattr(registry, "entry_points", lambda group: declared)


class Unversioned(RFM):
    name = "unversioned"
    version = ""


class Unkinded(RFM):
    name = "unkinded"
    kind = "popularity"


class PlainConfig(RFM):
    name = "plain_config"
    Config = dict


class Unscoring:
    name, version, kind = "unscoring", "1", "churn"

    class Config(BaseModel):
        pass

    def fit(self, features):
        raise NotImplementedError


def test_the_built_ins_are_discovered_sorted_by_name(fresh_registry):
    available = registry.available()

    assert available == BUILT_INS
    assert list(available) == sorted(available)


def test_get_names_the_known_scorers_when_asked_for_another(fresh_registry):
    assert registry.get("rfm") is RFM
    with pytest.raises(NotFound, match=r"'pareto'.*bgnbd, gamma_gamma, kmeans, rfm\."):
        registry.get("pareto")


@pytest.mark.parametrize(
    ("entry_point", "reason"),
    [
        (EntryPoint("ghost", "crm_no_such_module:Scorer", registry.GROUP), "No module named"),
        (EntryPoint("lost", "crm_api.scoring.plugins.rfm:Lost", registry.GROUP), "Lost"),
        (EntryPoint("loose", "json:dumps", registry.GROUP), "not a class"),
        (EntryPoint("rfm2", "crm_api.scoring.plugins.rfm:RFM", registry.GROUP), "its name"),
        (
            EntryPoint("rfm", "crm_api.scoring.plugins.kmeans:KMeansClusters", registry.GROUP),
            "taken",
        ),
        (Declared("unversioned", Unversioned), "no version"),
        (Declared("unkinded", Unkinded), "kind 'popularity'"),
        (Declared("plain_config", PlainConfig), "Config is not a pydantic model"),
        (Declared("unscoring", Unscoring), "no score()"),
    ],
    ids=lambda value: getattr(value, "name", None),
)
def test_a_broken_plugin_is_skipped_with_a_warning_naming_it(
    fresh_registry, monkeypatch, caplog, entry_point, reason
):
    declaring(monkeypatch, entry_point)

    with caplog.at_level(logging.WARNING, logger=registry.log.name):
        available = registry.available()

    assert available == BUILT_INS
    (warning,) = caplog.records
    assert f"{entry_point.name!r}" in warning.getMessage()
    assert reason in warning.getMessage()


def test_discovery_is_cached_until_refreshed(fresh_registry, monkeypatch):
    assert "ghost" not in registry.available()
    declaring(monkeypatch, Declared("ghost", type("Ghost", (RFM,), {"name": "ghost"})))

    assert "ghost" not in registry.available()
    registry.refresh()
    assert "ghost" in registry.available()


SCORER_MODULE = """
import numpy as np
from pydantic import BaseModel

from crm_api.scoring.protocol import Fitted, ScorerKind, Scores


class Constant:
    name = "{scorer}"
    version = "0.0.1"
    kind = ScorerKind.CHURN

    class Config(BaseModel):
        churn: float = 0.5

    def __init__(self, config):
        self.config = config

    def fit(self, features):
        return Fitted({{}})

    def score(self, features):
        return Scores(np.full(len(features), self.config.churn))
"""


def build_wheel(folder: Path, distribution: str, scorer: str) -> Path:
    """A third-party scorer package as a wheel (PEP 427): one scorer, and one entry point
    to a module that does not exist. Written directly, because building one needs a
    newer setuptools (or `wheel`) than a fresh virtualenv has, or network access."""
    module = distribution.replace("-", "_")
    info = f"{module}-0.0.1.dist-info"
    files = {
        f"{module}/__init__.py": SCORER_MODULE.format(scorer=scorer),
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {distribution}\nVersion: 0.0.1\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\n"
        "Tag: py3-none-any\n",
        f"{info}/entry_points.txt": f"[{registry.GROUP}]\n{scorer} = {module}:Constant\n"
        f"{scorer}_broken = {module}_missing:Scorer\n",
    }
    record = [
        f"{path},sha256={_digest(text.encode())},{len(text.encode())}"
        for path, text in files.items()
    ]
    files[f"{info}/RECORD"] = "\n".join([*record, f"{info}/RECORD,,"]) + "\n"
    wheel = folder / f"{module}-0.0.1-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, text in files.items():
            archive.writestr(path, text)
    return wheel


def _digest(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def pip(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pip", *args], capture_output=True, text=True, check=False
    )


def test_an_installed_scorer_package_is_served_and_its_broken_entry_skipped(tmp_path):
    suffix = uuid.uuid4().hex[:8]
    distribution, scorer = f"crm-test-scorer-{suffix}", f"constant_{suffix}"
    wheel = build_wheel(tmp_path, distribution, scorer)

    installed = pip("install", "--no-deps", "--no-index", "--quiet", str(wheel))
    try:
        assert installed.returncode == 0, installed.stderr
        listed = subprocess.run(
            [
                sys.executable,
                "-c",
                "from crm_api.scoring.registry import available; print(' '.join(available()))",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
    finally:
        pip("uninstall", "--yes", distribution)

    assert listed.stdout.split() == sorted([*BUILT_INS, scorer])
    assert f"{scorer}_broken" in listed.stderr
    assert "No module named" in listed.stderr
