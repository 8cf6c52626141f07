"""The ``vedit`` command as a newcomer meets it: version, help, read-only commands, serve flags."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from conftest import TEST_KEY, body, free_port
from vedit import __version__


def vedit(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("VEDIT_")}
    return subprocess.run(
        [sys.executable, "-m", "vedit.cli", *args],
        cwd=cwd, env={**clean, **(env or {})}, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_version(tmp_path) -> None:
    out = vedit("--version", cwd=tmp_path)
    assert (
        out.returncode == 0
        and out.stdout.strip() == f"vedit {__version__} (happyhorse-1.0-video-edit)"
    )


def test_help_has_no_type_placeholders(tmp_path) -> None:
    for args in (
        [],
        ["serve"],
        ["worker"],
        ["keys"],
        ["keys", "create"],
        ["keys", "list"],
        ["keys", "revoke"],
    ):
        out = vedit(*args, "--help", cwd=tmp_path)
        assert out.returncode == 0, out.stderr
        assert not re.search(r"<(bool|str|int|float|path)[^>]*>|\{[A-Z]+\}", out.stdout), out.stdout
    assert "--data-dir DIR" in vedit("serve", "--help", cwd=tmp_path).stdout
    assert "--media-allow HOST:PORT" in vedit("serve", "--help", cwd=tmp_path).stdout


def test_commands_that_only_read_never_create_a_data_folder(tmp_path) -> None:
    out = vedit("keys", "list", cwd=tmp_path)
    assert out.returncode == 0 and "no keys" in out.stdout
    out = vedit("keys", "revoke", "nobody", cwd=tmp_path)
    assert out.returncode == 1 and "no active key matches" in out.stderr
    assert list(tmp_path.iterdir()) == []
    # --data-dir names the folder for the keys commands as for serve.
    made = vedit("keys", "create", "--name", "app", "--data-dir", "elsewhere", cwd=tmp_path)
    assert made.returncode == 0 and made.stdout.startswith("vk-")
    listed = vedit("keys", "list", "--data-dir", "elsewhere", cwd=tmp_path)
    assert "app" in listed.stdout and (tmp_path / "elsewhere" / "vedit.db").is_file()
    assert not (tmp_path / "data").exists()


def test_serve_takes_its_data_dir_and_media_allow_list_as_flags(tmp_path, media) -> None:
    port = free_port()
    data = tmp_path / "elsewhere"
    env = {k: v for k, v in os.environ.items() if not k.startswith("VEDIT_")}
    env["VEDIT_API_KEY"] = TEST_KEY
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "vedit.cli", "serve", "--port", str(port), "--workers", "1",
         "--data-dir", str(data), "--media-allow", media.hostport],
        cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()
            try:
                if client.get("/healthz").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        headers = {"Authorization": f"Bearer {TEST_KEY}"}
        payload = body(media.url("silent.mp4"), media.url("coffee.jpg"), resolution="720P")
        tid = client.post("/v1/video/generations", json=payload, headers=headers).json()["task_id"]
        while time.monotonic() < deadline:
            d = client.get(f"/v1/video/generations/{tid}", headers=headers).json()["data"]
            if d["status"] in ("SUCCESS", "FAILURE"):
                break
            time.sleep(0.3)
        assert d["status"] == "SUCCESS", d["fail_reason"]
        assert (data / "vedit.db").is_file() and (data / "results" / f"{tid}.mp4").is_file()
        assert not (tmp_path / "data").exists()
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)


# --- keys: one active key per name, revoked by name or id, limits in words ----------------


def test_key_names_are_unique_and_revoke_takes_one_key_by_name_or_id(tmp_path) -> None:
    def keys(*args: str) -> subprocess.CompletedProcess:
        return vedit("keys", *args, cwd=tmp_path)

    first = keys("create", "--name", "app")
    assert first.returncode == 0 and first.stdout.startswith("vk-")
    prefix = first.stdout.strip()[:11]
    again = keys("create", "--name", "app")
    assert again.returncode == 1 and again.stdout == ""
    assert again.stderr.strip() == (
        f"vedit: an active key is already named 'app' (key 1 'app' ({prefix}…)); choose "
        "another name, or revoke that one first (vedit keys revoke 1)"
    )
    number = keys("create", "--name", "42")
    assert number.returncode == 2 and "must not be a number ('42')" in number.stderr
    negative = keys("create", "--name", "neg", "--rate-limit", "-1")
    assert negative.returncode == 2 and "-1 is not a rate: 0 (no limit) or more" in negative.stderr
    assert keys("create", "--name", "bench", "--rate-limit", "0").returncode == 0
    assert keys("create", "--name", "slow", "--rate-limit", "2.5").returncode == 0

    # Limits in words: 0 is no limit, and the default says what it is.
    rows = {line.split()[3]: line for line in keys("list").stdout.splitlines() if "vk-" in line}
    assert "│ default: 10/s │" in rows["app"]
    assert "│ unlimited     │" in rows["bench"] and "0/s" not in rows["bench"]
    assert "│ 2.5/s         │" in rows["slow"]

    # By name: that one key; the name is free again once it is revoked.
    gone = keys("revoke", "app")
    assert gone.returncode == 0 and gone.stdout.strip() == f"revoked key 1 'app' ({prefix}…)"
    missing = keys("revoke", "app")
    assert missing.returncode == 1 and "no active key matches 'app'" in missing.stderr
    assert keys("create", "--name", "app").returncode == 0  # key 4
    # By id: the one of that id, whatever its name; a revoked one says when it was.
    twice = keys("revoke", "1")
    assert twice.returncode == 1 and "key 1 'app' " in twice.stderr
    assert "was revoked already, on " in twice.stderr
    by_id = keys("revoke", "2")
    assert by_id.returncode == 0 and by_id.stdout.startswith("revoked key 2 'bench' (")
    states = [line.split()[1] + ":" + line.split()[-2] for line in keys("list").stdout.splitlines()
              if "vk-" in line]  # fmt: skip
    assert states == ["1:revoked", "2:revoked", "3:active", "4:active"], states


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_an_old_database_with_two_active_keys_of_one_name_migrates_keeping_both(
    tmp_path, request, backend
) -> None:
    """Revision 0003 let names repeat. The upgrade keeps the oldest key's name, renames the
    others NAME#ID (the keys themselves still work), says so, and then makes names unique."""
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import text

    from vedit import db

    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'old.db'}"
    else:
        url = request.getfixturevalue("pg_url")
    cfg = Config()
    cfg.set_main_option("script_location", str(db.MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url)
    command.upgrade(cfg, "0003")  # as an older vedit left it
    engine = db.make_engine(url)
    with engine.begin() as c:
        for key_id, name, revoked in [
            (1, "app", None), (2, "app", None), (3, "app", 1.0), (4, "app#2", None),
            (5, "ci", None), (6, "app", None),
        ]:  # fmt: skip
            c.execute(
                text(
                    "INSERT INTO api_keys (id, name, prefix, key_hash, created_at, revoked_at) "
                    "VALUES (:id, :name, :prefix, :hash, 0, :revoked)"
                ),
                {"id": key_id, "name": name, "prefix": f"vk-old{key_id}", "hash": f"{key_id:064}",
                 "revoked": revoked},
            )  # fmt: skip
    env = {"VEDIT_DATABASE_URL": url}
    up = vedit("db", "upgrade", cwd=tmp_path, env=env)
    assert up.returncode == 0, up.stderr
    assert "migrated from revision 0003 to " in up.stdout
    assert "key 2 was renamed from 'app' to 'app#2.2'" in up.stderr  # 'app#2' is key 4's
    assert "key 6 was renamed from 'app' to 'app#6'" in up.stderr
    with engine.connect() as c:
        names = dict(c.execute(text("SELECT id, name FROM api_keys ORDER BY id")).all())
    engine.dispose()
    assert names == {1: "app", 2: "app#2.2", 3: "app", 4: "app#2", 5: "ci", 6: "app#6"}
    # One key per name now: `revoke app` is key 1 alone, and the name cannot be taken twice.
    gone = vedit("keys", "revoke", "app", cwd=tmp_path, env=env)
    assert gone.returncode == 0 and gone.stdout.startswith("revoked key 1 'app' ("), gone.stderr
    assert vedit("keys", "create", "--name", "ci", cwd=tmp_path, env=env).returncode == 1
    listed = vedit("keys", "list", cwd=tmp_path, env=env).stdout
    assert [line.split()[-2] for line in listed.splitlines() if "vk-" in line] == [
        "revoked", "active", "revoked", "active", "active", "active",
    ]  # fmt: skip
