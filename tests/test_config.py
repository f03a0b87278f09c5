"""Configuration: environment variables, and refusal of unsafe production settings."""

import pytest
from pydantic import ValidationError

from crm_api.config import Settings


def test_settings_come_from_crm_prefixed_environment(monkeypatch):
    monkeypatch.setenv("CRM_POOL_SIZE", "7")
    monkeypatch.setenv("CRM_CORS_ORIGINS", '["https://app.example.com"]')
    settings = Settings(_env_file=None)
    assert settings.pool_size == 7
    assert settings.cors_origins == ["https://app.example.com"]


def test_production_refuses_unsafe_defaults():
    with pytest.raises(ValidationError) as refused:
        Settings(environment="production", cors_origins=["*"], _env_file=None)
    message = str(refused.value)
    assert "CRM_DATABASE_URL" in message
    assert "CRM_CORS_ORIGINS" in message
    assert "CRM_BOOTSTRAP_ADMIN_KEY" in message


def test_production_starts_with_explicit_settings():
    settings = Settings(
        environment="production",
        database_url="postgresql://crm@db/crm",
        bootstrap_admin_key=False,
        cors_origins=["https://app.example.com"],
        _env_file=None,
    )
    assert settings.environment == "production"
