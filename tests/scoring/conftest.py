import pytest

from crm_api.scoring import registry
from crm_api.scoring.protocol import Features
from scoring.data import cdnow_features


@pytest.fixture(scope="session")
def cdnow() -> Features:
    return cdnow_features()


@pytest.fixture
def fresh_registry():
    """Discovery forgotten before and after the test, which may change what is declared."""
    registry.refresh()
    yield
    registry.refresh()
