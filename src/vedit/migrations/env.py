"""Alembic environment: runs vedit's migrations against the URL set by ``vedit.db.migrate``."""

from __future__ import annotations

from alembic import context
from sqlalchemy import text

from vedit import keys  # noqa: F401  (registers api_keys)
from vedit.db import MIGRATION_LOCK, Base, make_engine
from vedit.tasks import models  # noqa: F401  (registers tasks)
from vedit.uploads import models as upload_models  # noqa: F401  (registers uploads)

config = context.config
target_metadata = Base.metadata


def run_migrations() -> None:
    url = config.get_main_option("sqlalchemy.url")
    engine = make_engine(url)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=url.startswith("sqlite"),
        )
        with context.begin_transaction():
            if connection.dialect.name == "postgresql":
                # Servers migrating at once (VEDIT_AUTO_MIGRATE=true) take turns; the next
                # one reads the revision the previous one committed.
                connection.execute(text(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})"))
            context.run_migrations()
    engine.dispose()


run_migrations()
