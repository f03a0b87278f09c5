"""Run Alembic from the application (CLI, server start-up, tests)."""

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config

# Editable installs and the container image both keep alembic.ini beside migrations/.
_CANDIDATES = (Path.cwd(), Path(__file__).resolve().parents[2])


def alembic_config(database_url: str) -> Config:
    for folder in _CANDIDATES:
        ini = folder / "alembic.ini"
        if ini.is_file() and (folder / "migrations").is_dir():
            config = Config(str(ini))
            config.attributes["database_url"] = database_url
            return config
    raise FileNotFoundError("alembic.ini and migrations/ not found beside the project")


def upgrade(database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str) -> None:
    command.downgrade(alembic_config(database_url), revision)


async def upgrade_async(database_url: str) -> None:
    """Alembic's env runs its own event loop, so run it off this one."""
    await asyncio.to_thread(upgrade, database_url)
