"""vedit on a real PostgreSQL server: migrations through `vedit db upgrade`, the start-up
refusal of a schema behind head, the missing-driver message, and one edit end to end.

The server comes from ``tests/servers.py``; each test gets a fresh, empty database.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import inspect, text

from conftest import free_port
from vedit.db import head_revision, make_engine

SRC = str(Path(__file__).resolve().parents[2] / "src")


def vedit(*args: str, env: dict[str, str], prelude: str = "") -> subprocess.CompletedProcess[str]:
    """Run the real ``vedit`` command (``prelude``: Python run first, in the same process)."""
    code = f"{prelude}\nfrom vedit.cli import app\napp(prog_name='vedit')"
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        env={**os.environ, "PYTHONPATH": SRC, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def revision_of(url: str) -> str | None:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            if not inspect(conn).has_table("alembic_version"):
                return None
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    finally:
        engine.dispose()


def migrate_to(url: str, revision: str) -> None:
    """Bring the database to an older revision, as an older vedit left it."""
    from alembic import command
    from alembic.config import Config

    import vedit.db

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(vedit.db.__file__).parent / "migrations"))
    cfg.set_main_option("sqlalchemy.url", url)
    command.upgrade(cfg, revision)


def test_db_upgrade_migrates_an_empty_database_to_head_then_has_nothing_to_do(
    pg_url: str, tmp_path: Path
) -> None:
    env = {"VEDIT_DATABASE_URL": pg_url, "VEDIT_DATA_DIR": str(tmp_path)}
    first = vedit("db", "upgrade", env=env)
    assert first.returncode == 0, first.stderr
    head = head_revision()
    assert f"migrated from revision none to {head}" in first.stdout
    assert revision_of(pg_url) == head
    engine = make_engine(pg_url)
    try:
        tables = set(inspect(engine).get_table_names())
        columns = {c["name"] for c in inspect(engine).get_columns("tasks")}
    finally:
        engine.dispose()
    assert {"api_keys", "tasks", "uploads", "alembic_version"} <= tables
    assert {"edit_plan", "heartbeat_at", "worker_id"} <= columns
    again = vedit("db", "upgrade", env=env)
    assert again.returncode == 0 and f"already at the head revision {head}" in again.stdout


def test_serve_and_worker_refuse_a_schema_behind_head_naming_both_revisions(
    pg_url: str, tmp_path: Path
) -> None:
    env = {"VEDIT_DATABASE_URL": pg_url, "VEDIT_DATA_DIR": str(tmp_path)}
    head = head_revision()
    serve = ("serve", "--port", str(free_port()), "--workers", "0")
    empty = vedit(*serve, env=env)
    assert empty.returncode == 1
    assert f"has no vedit schema (current revision: none; head: {head})" in empty.stderr
    assert "run `vedit db upgrade`" in empty.stderr

    migrate_to(pg_url, "0002")
    for command in (serve, ("worker", "--workers", "0"), ("keys", "create", "--name", "k")):
        refused = vedit(*command, env=env)
        assert refused.returncode == 1, (command, refused.stdout, refused.stderr)
        assert f"is at revision 0002, behind the head revision {head}" in refused.stderr
        assert "run `vedit db upgrade`" in refused.stderr and "VEDIT_DATABASE_URL" in refused.stderr
        assert "Traceback" not in refused.stderr
    assert revision_of(pg_url) == "0002"  # nothing migrated behind the operator's back

    upgraded = vedit("db", "upgrade", env=env)
    assert upgraded.returncode == 0 and f"from revision 0002 to {head}" in upgraded.stdout
    made = vedit("keys", "create", "--name", "k", env=env)
    assert made.returncode == 0 and made.stdout.startswith("vk-"), made.stderr


def test_auto_migrate_true_migrates_postgresql_at_start(pg_url: str, tmp_path: Path) -> None:
    env = {
        "VEDIT_DATABASE_URL": pg_url,
        "VEDIT_DATA_DIR": str(tmp_path),
        "VEDIT_AUTO_MIGRATE": "true",
    }
    made = vedit("keys", "create", "--name", "k", env=env)
    assert made.returncode == 0, made.stderr
    assert revision_of(pg_url) == head_revision()


def test_sqlite_refuses_too_when_auto_migrate_is_false(tmp_path: Path) -> None:
    env = {"VEDIT_DATA_DIR": str(tmp_path), "VEDIT_AUTO_MIGRATE": "false"}
    refused = vedit("keys", "create", "--name", "k", env=env)
    assert refused.returncode == 1 and "current revision: none" in refused.stderr
    assert vedit("db", "upgrade", env=env).returncode == 0
    assert vedit("keys", "create", "--name", "k", env=env).returncode == 0


def test_a_missing_postgresql_driver_names_the_scale_extra(tmp_path: Path) -> None:
    env = {
        "VEDIT_DATABASE_URL": "postgresql://vedit:secret@127.0.0.1:1/vedit",
        "VEDIT_DATA_DIR": str(tmp_path),
    }
    for command in (("db", "upgrade"), ("worker", "--workers", "0")):
        out = vedit(*command, env=env, prelude="import sys; sys.modules['psycopg'] = None")
        assert out.returncode == 1, out.stderr
        assert "pip install 'vedit[scale]'" in out.stderr
        assert "VEDIT_DATABASE_URL is 'postgresql+psycopg://vedit:***@127.0.0.1:1/vedit'" in (
            out.stderr
        )
        assert "secret" not in out.stderr and "Traceback" not in out.stderr


def test_an_unreachable_database_is_one_line_naming_the_setting(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    env = {
        "VEDIT_DATABASE_URL": f"postgresql://vedit:secret@127.0.0.1:{port}/vedit",
        "VEDIT_DATA_DIR": str(tmp_path),
    }
    out = vedit("db", "upgrade", env=env)
    assert out.returncode == 1
    assert (
        f"the database at VEDIT_DATABASE_URL='postgresql+psycopg://vedit:***@127.0.0.1:{port}"
        in (out.stderr)
    )
    assert "does not answer" in out.stderr and "secret" not in out.stderr


def test_the_plain_install_needs_neither_psycopg_nor_redis(tmp_path: Path) -> None:
    blocked = "import sys; sys.modules['psycopg'] = None; sys.modules['redis'] = None"
    modules = "vedit.api.app, vedit.cli, vedit.runtime.run, vedit.dispatch.local, vedit.client"
    out = subprocess.run(
        [sys.executable, "-c", f"{blocked}\nimport {modules}"],
        env={**os.environ, "PYTHONPATH": SRC},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    env = {"VEDIT_DATA_DIR": str(tmp_path)}
    made = vedit("keys", "create", "--name", "k", env=env, prelude=blocked)  # SQLite, migrated
    assert made.returncode == 0 and made.stdout.startswith("vk-"), made.stderr


def test_a_task_created_through_serve_on_postgresql_succeeds(
    make_server, media, pg_url: str, tmp_path: Path
) -> None:
    env = {"VEDIT_DATABASE_URL": pg_url, "VEDIT_DATA_DIR": str(tmp_path / "data")}
    assert vedit("db", "upgrade", env=env).returncode == 0
    srv = make_server({"VEDIT_DATABASE_URL": pg_url}, workers=1)
    task_id = srv.submit(media.url("silent.mp4"), media.url("coffee.jpg"), resolution="720P")
    data = srv.wait(task_id)
    assert data["status"] == "SUCCESS", data["fail_reason"]
    video = srv.download(data["result_url"], tmp_path / "out.mp4")
    assert video.stat().st_size > 10_000
    engine = make_engine(pg_url)
    try:
        with engine.connect() as conn:
            row = conn.execute(
                text("SELECT status, attempts, worker_id FROM tasks WHERE id = :id"),
                {"id": task_id},
            ).one()
    finally:
        engine.dispose()
    assert row.status == "succeeded" and row.attempts == 1 and row.worker_id
    assert not (srv.data_dir / "vedit.db").exists()  # the tasks were never in SQLite


def test_a_schema_ahead_of_this_vedit_is_refused(pg_url: str, tmp_path: Path) -> None:
    env = {"VEDIT_DATABASE_URL": pg_url, "VEDIT_DATA_DIR": str(tmp_path)}
    assert vedit("db", "upgrade", env=env).returncode == 0
    engine = make_engine(pg_url)
    try:
        with engine.begin() as conn:  # as a newer vedit would have left it
            conn.execute(text("UPDATE alembic_version SET version_num = '0099'"))
    finally:
        engine.dispose()
    refused = vedit("worker", "--workers", "0", env=env)
    assert refused.returncode == 1
    assert (
        f"is at revision 0099, which this vedit does not know (its head is {head_revision()})"
        in (refused.stderr)
    )
