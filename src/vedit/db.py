"""The database: engine creation (SQLite in WAL mode by default, PostgreSQL for scale), the ORM
base, migrations, and the schema check the servers make at start-up.

Tables are defined next to the code that owns them (``tasks/models.py``,
``uploads/models.py``, ``keys.py``); the schema is created and upgraded only by Alembic.
The PostgreSQL driver (psycopg 3, the ``scale`` extra) is imported by SQLAlchemy only
when a PostgreSQL engine is made, so the plain install runs without it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import DeclarativeBase, sessionmaker

from vedit.errors import DatabaseNotReady

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"
MIGRATION_LOCK = 0x7665646974  # pg_advisory_xact_lock key ("vedit"): one migration at a time


class Base(DeclarativeBase):
    """Base of every table."""


def shown_url(url: str) -> str:
    """``url`` with its password hidden, for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL at all: SQLAlchemy's own error says so later
        return url


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite gets WAL, NORMAL sync and a busy timeout.

    Raises :class:`DatabaseNotReady` when the URL's driver is not installed.
    """
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record) -> None:  # noqa: ANN001
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    try:
        return create_engine(url, pool_pre_ping=True)
    except ImportError as exc:  # the URL's DBAPI module, imported by create_engine
        raise DatabaseNotReady(
            f"VEDIT_DATABASE_URL is {shown_url(url)!r}, but its driver cannot be imported "
            f"({exc}); for PostgreSQL install psycopg 3 with "
            "pip install 'vedit[scale]' and use a postgresql:// URL"
        ) from None


def make_sessionmaker(engine: Engine) -> sessionmaker:
    return sessionmaker(engine, expire_on_commit=False)


def _quiet_alembic() -> None:
    """Alembic logs at INFO when imported and at each step; only its warnings are kept."""
    import logging

    logging.getLogger("alembic").setLevel(logging.WARNING)


def _alembic_config(url: str) -> Config:
    _quiet_alembic()  # before import: it logs then
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def migrate(url: str) -> None:
    """Bring the schema at ``url`` to the newest Alembic revision (on PostgreSQL under an
    advisory lock, so that processes migrating at once take turns)."""
    _quiet_alembic()
    from alembic import command

    make_engine(url).dispose()  # a missing driver: DatabaseNotReady, before Alembic's traceback
    command.upgrade(_alembic_config(url), "head")


def head_revision() -> str:
    """The newest revision of vedit's migrations."""
    _quiet_alembic()
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_alembic_config("sqlite://")).get_current_head()
    assert head is not None
    return head


def current_revision(url: str) -> str | None:
    """The revision the database at ``url`` is at; None for an empty database."""
    _quiet_alembic()
    from alembic.runtime.migration import MigrationContext

    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


def check_schema(url: str) -> None:
    """Raise :class:`DatabaseNotReady` unless the database at ``url`` is at the head revision."""
    _quiet_alembic()
    from alembic.script import ScriptDirectory

    current, head = current_revision(url), head_revision()
    if current == head:
        return
    where = f"the database at VEDIT_DATABASE_URL={shown_url(url)!r}"
    if current is None:
        state = f"{where} has no vedit schema (current revision: none; head: {head})"
    else:
        known = ScriptDirectory.from_config(_alembic_config(url))
        try:
            known.get_revision(current)
        except Exception:
            raise DatabaseNotReady(
                f"{where} is at revision {current}, which this vedit does not know (its head "
                f"is {head}): a newer vedit migrated it; run that version"
            ) from None
        state = f"{where} is at revision {current}, behind the head revision {head}"
    raise DatabaseNotReady(
        f"{state}; run `vedit db upgrade` once (with the same VEDIT_DATABASE_URL), or set "
        "VEDIT_AUTO_MIGRATE=true to migrate at every start"
    )


def prepare_database(url: str, auto_migrate: bool) -> None:
    """Migrate (``auto_migrate``) or check that the schema is at head (otherwise)."""
    if auto_migrate:
        migrate(url)
    else:
        check_schema(url)
