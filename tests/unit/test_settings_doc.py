"""docs/settings.md is generated from ``vedit.Settings`` by tools/settings_doc.py: it says what
config.py says, a stale copy is named as stale (with the settings that differ), and a
setting without a description cannot be documented at all."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOOL = ROOT / "tools" / "settings_doc.py"
PAGE = ROOT / "docs" / "settings.md"


def check(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(TOOL), "--check", *args], capture_output=True, text=True, timeout=60
    )


def test_docs_settings_md_says_what_config_py_says() -> None:
    out = check()
    assert out.returncode == 0, out.stderr


def test_a_stale_page_is_refused_naming_the_setting_that_differs(tmp_path: Path) -> None:
    stale = tmp_path / "settings.md"
    line = next(x for x in PAGE.read_text().splitlines() if x.startswith("| `VEDIT_TASK_TTL_S`"))
    stale.write_text(PAGE.read_text().replace(line, line.replace("`86400`", "`3600`")))
    out = check("--page", str(stale))
    assert out.returncode == 1
    assert "is stale" in out.stderr and "about VEDIT_TASK_TTL_S." in out.stderr, out.stderr
    assert "tools/settings_doc.py" in out.stderr and "+| `VEDIT_TASK_TTL_S`" in out.stderr


def test_a_missing_page_is_stale(tmp_path: Path) -> None:
    out = check("--page", str(tmp_path / "absent.md"))
    assert out.returncode == 1 and "is stale" in out.stderr


def test_a_setting_without_a_description_stops_the_generator(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spec = importlib.util.spec_from_file_location("settings_doc", TOOL)
    assert spec and spec.loader
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    monkeypatch.setattr(tool.Settings.model_fields["x264_crf"], "description", None)
    with pytest.raises(SystemExit, match="Settings.x264_crf has no description"):
        tool.render()
