"""The OpenAPI document tells the truth: schemathesis (from PyPI) against a live server.

Every check schemathesis has, at least 100 examples per operation, every phase
(examples, coverage, fuzzing, stateful): no server error, no answer that the
document does not declare, no schema-valid request refused and no schema-violating
one accepted, auth ignored nowhere, ``Allow`` on every 405.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

# One line per exception, each with its reason.
CONFIG = """
# Cancelling a task that has ended is a 400 (task_not_cancelable / UnsupportedOperation), by
# contract: a schema-valid id of an ended task is refused, as DashScope refuses it.
[[operations]]
include-path-regex = "/cancel$"
checks.positive_data_acceptance.expected-statuses = [200, 400, 401, 404]

# An upload's bytes must be a real video or image within the media limits, which no schema
# can say: schema-valid random bytes are refused with 400 invalid_file (or 413, 403, 409).
[[operations]]
include-path-regex = "/uploads$"
include-method = "POST"
checks.positive_data_acceptance.expected-statuses = [200, 400, 401, 403, 409, 413]
"""


@pytest.fixture(scope="module")
def server(api_server):
    return api_server


def test_schemathesis_finds_no_server_error_and_no_check_failure(server, tmp_path) -> None:
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG)
    run = subprocess.run(
        [
            sys.executable, "-m", "schemathesis.cli", "--config-file", str(config), "run",
            f"{server.base}/openapi.json",
            "--checks", "all",
            "--max-examples", "100",
            "--workers", "1",  # schemathesis 4.32's example phase is flaky with more
            "--seed", "20261128",  # reproducible in CI; change it to explore
            "--header", f"Authorization: Bearer {server.key}",
            "--no-color",
        ],
        capture_output=True, text=True, timeout=900, cwd=tmp_path,
    )  # fmt: skip
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-6000:]
    assert " passed" in out, out[-3000:]
    # The server logged no traceback: nothing escaped as a 500.
    assert "Traceback" not in server.log(), server.log()[-3000:]
