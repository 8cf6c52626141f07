"""VEDIT_STORAGE: local storage never imports boto3, and S3 storage without it says what to install."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import s3server
from conftest import free_port

SRC = str(Path(__file__).resolve().parents[2] / "src")


def run_python(code: str, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        env={**os.environ, "PYTHONPATH": SRC, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_local_storage_never_imports_boto3(tmp_path: Path) -> None:
    code = """
import sys
from vedit.api.app import create_app
from vedit.config import Settings
from vedit.dispatch.local import LocalDispatcher
import vedit.cli, vedit.runtime.run
settings = Settings()
app = create_app(settings, LocalDispatcher(settings, workers=0))
print(settings.storage, sorted(m for m in sys.modules if m.split(".")[0] in ("boto3", "botocore")))
"""
    done = run_python(code, {"VEDIT_DATA_DIR": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["local", "[]"]


# boto3 made unimportable, as in an install without the `scale` extra.
_NO_BOTO3 = "import sys; sys.modules['boto3'] = None; sys.modules['botocore'] = None\n"


_OPEN_S3 = """
from vedit.config import Settings
from vedit.errors import StorageUnavailable
from vedit.storage import StorageOptions, open_storage
try:
    open_storage(StorageOptions.of(Settings(storage="s3", s3_bucket="b")))
except StorageUnavailable as exc:
    print(exc.message)
"""


def test_s3_storage_without_boto3_names_the_extra(tmp_path: Path) -> None:
    done = run_python(_NO_BOTO3 + _OPEN_S3, {"VEDIT_DATA_DIR": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    assert "VEDIT_STORAGE=s3 needs boto3" in done.stdout
    assert "pip install 'vedit[scale]'" in done.stdout


def test_serve_with_s3_storage_and_no_boto3_exits_naming_the_extra(tmp_path: Path) -> None:
    code = _NO_BOTO3 + "from vedit.cli import app\napp(prog_name='vedit')"
    env = {"VEDIT_DATA_DIR": str(tmp_path), "VEDIT_STORAGE": "s3", "VEDIT_S3_BUCKET": "b"}
    done = run_python(code, env, "serve", "--port", str(free_port()), "--workers", "1")
    assert done.returncode == 1
    assert "vedit: the storage cannot be used: VEDIT_STORAGE=s3 needs boto3" in done.stderr
    assert "pip install 'vedit[scale]'" in done.stderr


def test_s3_storage_needs_a_bucket(tmp_path: Path) -> None:
    pytest.importorskip("boto3")
    from vedit.config import Settings
    from vedit.errors import StorageUnavailable
    from vedit.storage import StorageOptions, open_storage

    with pytest.raises(StorageUnavailable, match="VEDIT_S3_BUCKET"):
        open_storage(StorageOptions.of(Settings(data_dir=tmp_path, storage="s3")))


def test_a_missing_s3_server_fails_under_ci_and_skips_elsewhere(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true"):
        s3server._missing("weed is not installed")
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="weed is not installed"):
        s3server._missing("weed is not installed")
