"""Migrations: the models match the newest migration, and replicas may migrate at once."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from hub.store.db import alembic_config, upgrade
from tests.conftest import PG_ADMIN_URL, need_service

ORDERHUB = str(Path(sys.executable).parent / "orderhub")


@pytest.fixture
def empty_postgres() -> Iterator[str]:
    """A PostgreSQL database with no schema at all."""
    need_service("PostgreSQL", PG_ADMIN_URL, 5432)
    name = f"orderhub_mig_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def test_the_tables_match_the_newest_migration(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'check.db'}"
    upgrade(url)
    command.check(alembic_config(url))  # raises when a model change has no migration


def test_hub_processes_starting_at_once_migrate_once(empty_postgres: str) -> None:
    """Three replicas run the migrations at the same moment: one migrates, all succeed."""
    env = {"ORDERHUB_DATABASE_URL": empty_postgres, "PATH": str(Path(sys.executable).parent)}
    runs = [
        subprocess.Popen(
            [ORDERHUB, "db", "upgrade"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(3)
    ]
    outputs = [run.communicate(timeout=120)[0] for run in runs]
    assert [run.returncode for run in runs] == [0, 0, 0], outputs
    with create_engine(empty_postgres).connect() as conn:
        versions = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    head = ScriptDirectory.from_config(alembic_config(empty_postgres)).get_current_head()
    assert versions == [head]
