"""Alembic environment for OrderHub's schema."""

from __future__ import annotations

from alembic import context
from sqlalchemy import text

from hub.store.db import make_engine
from hub.store.schema import metadata

#: Any fixed number identifies the migration lock on PostgreSQL (see the relay's too).
MIGRATION_LOCK = 0x0DE7_0B0D

config = context.config
url = config.get_main_option("sqlalchemy.url")
assert url is not None

if context.is_offline_mode():
    context.configure(url=url, target_metadata=metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    engine = make_engine(url)
    with engine.connect() as connection:
        # Hub processes of one deployment may start at once: on PostgreSQL one migrates
        # while the others wait, then find the schema current. (The lock is the session's,
        # so it outlives the commit that ends this statement's transaction.)
        postgres = connection.dialect.name == "postgresql"
        if postgres:
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK})
            connection.commit()
        try:
            context.configure(
                connection=connection,
                target_metadata=metadata,
                render_as_batch=connection.dialect.name == "sqlite",
            )
            with context.begin_transaction():
                context.run_migrations()
        finally:
            if postgres:
                connection.rollback()
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK})
                connection.commit()
    engine.dispose()
