"""Every relative link and anchor of README.md, BENCHMARKS.md and docs/*.md resolves
(tools/check_doc_links.py), so moving a section between pages cannot leave a dead link."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TOOL = ROOT / "tools" / "check_doc_links.py"


def test_every_relative_link_of_the_docs_resolves() -> None:
    out = subprocess.run([sys.executable, str(TOOL)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


def test_anchors_are_made_as_github_makes_them() -> None:
    spec = importlib.util.spec_from_file_location("check_doc_links", TOOL)
    assert spec and spec.loader
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    assert tool.slug("Upload — `POST /v1/uploads`") == "upload--post-v1uploads"
    assert (
        tool.slug("Many machines: Celery workers (`VEDIT_DISPATCH=celery`)")
        == "many-machines-celery-workers-vedit_dispatchcelery"
    )
    assert tool.slug("Is there a person?") == "is-there-a-person"
