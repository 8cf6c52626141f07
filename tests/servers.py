"""Real Redis and PostgreSQL servers for the tests: session fixtures, loopback only.

Each server runs from Debian's binaries in a temporary folder, on a free loopback
port, for the whole session, and is stopped at its end. A missing binary skips
the tests that need it, with the reason, except under ``CI=true``, where it fails
them (CI installs both: ``.ci/apt.sh``). Nothing here is a mock: the tests talk
to the same servers a deployment would.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

REDIS_SERVER = Path("/usr/bin/redis-server")


def _postgres_bin() -> Path:
    """Debian's newest PostgreSQL (15 on Debian 12): ``/usr/lib/postgresql/<major>/bin``."""
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    return found[-1].parent if found else Path("/usr/lib/postgresql/15/bin")


PG_BIN = _postgres_bin()
PG_USER = "postgres"  # the superuser of the test cluster (and, as root, the OS user it runs as)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _missing(what: str, path: Path) -> None:
    """Skip (or, with ``CI=true``, fail) because ``what`` (``path``) is absent."""
    reason = f"{what} is not installed ({path} is missing); `bash .ci/apt.sh` installs the servers"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason}; CI=true, so this is a failure, not a skip", pytrace=False)
    print(f"\nskipping: {reason}")
    pytest.skip(reason)


def _wait_for_port(port: int, proc: subprocess.Popen[bytes] | None, timeout_s: float) -> bool:
    """True once something accepts connections on 127.0.0.1:``port``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return True
        time.sleep(0.05)
    return False


# --- Redis --------------------------------------------------------------------------


class RedisServer:
    """A Redis server on a loopback port, with no persistence, in a temporary folder."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="vedit-redis-"))
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, port: int | None = None) -> RedisServer:
        """Start on ``port`` (again, after ``stop``), or on a free one."""
        for _ in range(5):  # a port taken between choosing and binding it: choose again
            self.port = port or _free_port()
            log = (self.folder / "redis.log").open("ab")
            self.proc = subprocess.Popen(
                [str(REDIS_SERVER), "--port", str(self.port), "--bind", "127.0.0.1",
                 "--save", "", "--appendonly", "no", "--dir", str(self.folder)],
                stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
            if _wait_for_port(self.port, self.proc, 10):
                return self
            self.stop(remove=False)
            if port:
                break
        log_text = (self.folder / "redis.log").read_text(errors="replace")[-2000:]
        raise RuntimeError(f"redis-server did not start:\n{log_text}")

    def stop(self, remove: bool = True) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if remove:
            shutil.rmtree(self.folder, ignore_errors=True)


def redis_server_or_skip() -> RedisServer:
    """A new, not yet started Redis server; skip (CI: fail) when redis-server is absent."""
    if not REDIS_SERVER.is_file():
        _missing("redis-server", REDIS_SERVER)
    return RedisServer()


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """``redis://127.0.0.1:<port>/0`` of a Redis server that lives for the session."""
    server = redis_server_or_skip()
    try:
        yield server.start().url
    finally:
        server.stop()


# --- PostgreSQL -----------------------------------------------------------------------


class PostgresServer:
    """A throw-away PostgreSQL cluster on a loopback port: trust auth, no socket file, and
    (unless ``durable``, as the benchmarks ask) no fsync, for speed.

    ``initdb`` refuses to run as root: as root, the cluster belongs to (and runs as) the
    ``postgres`` system user; otherwise, to the current user.
    """

    def __init__(self, durable: bool = False) -> None:
        self.durable = durable
        self.folder = Path(tempfile.mkdtemp(prefix="vedit-pg-"))
        self.data = self.folder / "data"
        self.port = 0
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            user = pwd.getpwnam(PG_USER)
            os.chown(self.folder, user.pw_uid, user.pw_gid)
            self.as_user = ["runuser", "-u", PG_USER, "--"]

    def _run(self, *cmd: str, timeout_s: float = 60) -> None:
        done = subprocess.run(
            [*self.as_user, *cmd], capture_output=True, text=True, timeout=timeout_s
        )
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stderr}")

    def start(self) -> PostgresServer:
        self._run(str(PG_BIN / "initdb"), "-D", str(self.data), "-U", PG_USER, "-A", "trust",
                  "-E", "UTF8", "--no-sync", "--no-instructions")  # fmt: skip
        for _ in range(5):  # a port taken between choosing and binding it: choose again
            self.port = _free_port()
            options = (
                f"-h 127.0.0.1 -p {self.port} -c unix_socket_directories='' -c max_connections=200"
            )
            if not self.durable:
                options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
            try:
                self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-o", options,
                          "-l", str(self.folder / "postgres.log"), "-w", "-t", "30", "start")  # fmt: skip
                return self
            except RuntimeError:
                if "Address already in use" not in self.log():
                    raise
        raise RuntimeError(f"postgres did not start:\n{self.log()}")

    def log(self) -> str:
        path = self.folder / "postgres.log"
        return path.read_text(errors="replace")[-3000:] if path.is_file() else ""

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{PG_USER}@127.0.0.1:{self.port}/{database}"

    def execute(self, sql: str) -> None:
        """Run one statement on the ``postgres`` database, outside a transaction."""
        import psycopg

        with psycopg.connect(
            f"host=127.0.0.1 port={self.port} user={PG_USER} dbname=postgres", autocommit=True
        ) as conn:
            conn.execute(sql)

    def stop(self) -> None:
        if self.data.is_dir():
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate",
                          "-w", "stop", timeout_s=30)  # fmt: skip
        shutil.rmtree(self.folder, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server (Debian's, 15 here) that lives for the session."""
    if not (PG_BIN / "initdb").is_file():
        _missing("PostgreSQL", PG_BIN / "initdb")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        _missing("psycopg (pip install 'vedit[scale]')", Path("psycopg"))
    server = PostgresServer()
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture(scope="session")
def postgres_url(postgres_server: PostgresServer) -> str:
    """``postgresql+psycopg://...`` of a database made for the session (``vedit_test``)."""
    postgres_server.execute("CREATE DATABASE vedit_test")
    return postgres_server.url("vedit_test")


@pytest.fixture
def pg_url(postgres_server: PostgresServer) -> Iterator[str]:
    """A fresh, empty database for one test, dropped at its end."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    postgres_server.execute(f"CREATE DATABASE {name}")
    yield postgres_server.url(name)
    postgres_server.execute(f"DROP DATABASE {name} WITH (FORCE)")
