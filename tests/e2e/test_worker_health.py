"""Workers that cannot run are loud: the start check, health and backoff while workers die,
and one log line when a task starts and one when it ends (real servers, real processes).

A worker is made unable to run as in the field: a package named ``av`` whose import
fails sits first on the server's ``PYTHONPATH`` (the "shadow" folder), so every new
worker process finds it instead of PyAV, while the server itself never imports ``av``.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from conftest import VeditServer, free_port

BACKOFF_ENV = {"VEDIT_WORKER_RESTART_BACKOFF_S": "0.5", "VEDIT_WORKER_RESTART_BACKOFF_MAX_S": "4"}
NO_AV = "vedit: the workers cannot start: ModuleNotFoundError: No module named 'av'"


def shadow_env(shadow: Path) -> dict[str, str]:
    """``PYTHONPATH`` with ``shadow`` first: a package there hides the real one."""
    path = [str(shadow), *filter(None, [os.environ.get("PYTHONPATH")])]
    return {"PYTHONPATH": os.pathsep.join(path)}


def hide_av(shadow: Path) -> None:
    (shadow / "av").mkdir(parents=True, exist_ok=True)
    (shadow / "av" / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'av'\", name='av')\n"
    )


def run_vedit(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "vedit.cli", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def worker_pids(server_pid: int) -> list[int]:
    """The server's worker processes (not multiprocessing's resource tracker)."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (stat.parent / "cmdline").read_bytes()
        except OSError:
            continue
        if parent == server_pid and b"spawn_main" in cmdline:
            pids.append(int(stat.parent.name))
    return pids


def worker_gauges(srv: VeditServer) -> tuple[float, float]:
    text = srv.client.get("/metrics").text
    alive = re.search(r"^vedit_workers_alive (\S+)$", text, re.M)
    wanted = re.search(r"^vedit_workers_wanted (\S+)$", text, re.M)
    assert alive and wanted, text
    return float(alive[1]), float(wanted[1])


@dataclass
class Death:
    at: float  # seconds, from the log line's time
    slot: int
    pid: int
    cause: str
    delay: float  # the backoff announced before the slot starts again


DEATH = re.compile(
    r"^(\S+ \S+) vedit\.dispatch worker (\d+) \(pid (\d+)\) (.*); starting it again in (\S+) s$",
    re.M,
)


def deaths_by_slot(log: str) -> dict[int, list[Death]]:
    out: dict[int, list[Death]] = {}
    for m in DEATH.finditer(log):
        at = datetime.strptime(m[1], "%Y-%m-%d %H:%M:%S,%f").timestamp()
        death = Death(at, int(m[2]), int(m[3]), m[4], float(m[5]))
        out.setdefault(death.slot, []).append(death)
    return out


def wait_for(check: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


# --- the start check -------------------------------------------------------------------


def test_a_server_whose_workers_cannot_import_a_module_exits_before_it_serves(tmp_path) -> None:
    hide_av(tmp_path / "shadow")
    port = free_port()
    env = {"VEDIT_DATA_DIR": str(tmp_path / "data"), **shadow_env(tmp_path / "shadow")}
    done = run_vedit("serve", "--port", str(port), "--workers", "2", env=env)
    out = done.stdout + done.stderr
    assert done.returncode == 1, out
    assert NO_AV in done.stderr.splitlines()
    assert out.count("Traceback (most recent call last)") == 1  # the first failure's, logged
    assert "No module named 'av'" in out.split("Traceback (most recent call last)")[1]
    # It never took traffic, never made and lost a key, and never looped on restarts.
    assert "Uvicorn running" not in out and "API key" not in out
    assert "starting it again" not in out


def test_a_worker_command_whose_workers_cannot_import_a_module_exits_with_the_reason(
    tmp_path,
) -> None:
    hide_av(tmp_path / "shadow")
    env = {"VEDIT_DATA_DIR": str(tmp_path / "data"), **shadow_env(tmp_path / "shadow")}
    done = run_vedit("worker", "--workers", "1", env=env)
    assert done.returncode == 1, done.stdout + done.stderr
    assert NO_AV in done.stderr.splitlines()


def test_a_worker_that_hangs_while_loading_times_the_start_out(tmp_path) -> None:
    (tmp_path / "shadow" / "av").mkdir(parents=True)
    (tmp_path / "shadow" / "av" / "__init__.py").write_text("import time\ntime.sleep(600)\n")
    env = {
        "VEDIT_DATA_DIR": str(tmp_path / "data"),
        "VEDIT_WORKER_START_TIMEOUT_S": "3",
        **shadow_env(tmp_path / "shadow"),
    }
    done = run_vedit("serve", "--port", str(free_port()), "--workers", "1", env=env, timeout=60)
    assert done.returncode == 1, done.stdout + done.stderr
    assert (
        "vedit: the workers cannot start: no worker loaded engine 'classic' within 3 s "
        "(VEDIT_WORKER_START_TIMEOUT_S)"
    ) in done.stderr.splitlines()


def test_an_unknown_engine_stops_the_server_with_the_reason(tmp_path) -> None:
    env = {"VEDIT_DATA_DIR": str(tmp_path / "data"), "VEDIT_ENGINE": "nope"}
    done = run_vedit("serve", "--port", str(free_port()), "--workers", "1", env=env)
    assert done.returncode == 1, done.stdout + done.stderr
    assert (
        "vedit: the workers cannot start: VEDIT_ENGINE is 'nope'; it must be classic, vace "
        "or dashscope"
    ) in done.stderr.splitlines()
    assert "Traceback" not in done.stderr, "a setting that cannot be needs no traceback"


# --- workers that die after a good start --------------------------------------------------


def test_dying_workers_make_health_degraded_restart_with_backoff_and_recover(
    make_server, tmp_path
) -> None:
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    srv = make_server(workers=2, env={**shadow_env(shadow), **BACKOFF_ENV})
    ok = srv.client.get("/healthz")
    assert ok.status_code == 200
    assert ok.json()["workers"] == {"alive": 2, "wanted": 2, "last_error": None}
    assert worker_gauges(srv) == (2, 2)

    # 1. The install breaks under the running server, and its workers die.
    hide_av(shadow)
    pids = worker_pids(srv.proc.pid)
    assert len(pids) == 2
    for pid in pids:
        os.kill(pid, signal.SIGKILL)

    # 2. Health says so, with the cause.
    def degraded_by_av() -> bool:
        r = srv.client.get("/healthz")
        return r.status_code == 503 and "No module named 'av'" in (
            r.json()["workers"]["last_error"] or ""
        )

    wait_for(degraded_by_av, 60, "/healthz to turn 503 naming the missing module")
    body = srv.client.get("/healthz").json()
    assert body["status"] == "degraded"
    assert body["workers"]["wanted"] == 2 and body["workers"]["alive"] < 2
    assert body["workers"]["last_error"].startswith("worker ")
    alive, wanted = worker_gauges(srv)
    assert alive < 2 and wanted == 2

    # 3. Each slot dies five times (the kill, then four failed starts): each death is
    # logged once with its cause, and the restarts wait 0.5, 1, 2, 4, 4 s (the cap).
    wait_for(
        lambda: all(len(deaths_by_slot(srv.log()).get(n, [])) >= 5 for n in (1, 2)),
        90,
        "five deaths in each worker slot",
    )
    deaths = deaths_by_slot(srv.log())
    for slot in (1, 2):
        mine = deaths[slot][:5]
        assert "was killed by SIGKILL" in mine[0].cause
        for death in mine[1:]:
            assert death.cause == "could not start: ModuleNotFoundError: No module named 'av'"
        assert [d.delay for d in mine] == [0.5, 1, 2, 4, 4]
        for before, after in zip(mine, mine[1:], strict=False):
            assert after.at - before.at >= before.delay - 0.01  # the wait was kept
    every_pid = [d.pid for slot_deaths in deaths.values() for d in slot_deaths]
    assert len(every_pid) == len(set(every_pid))  # one line per death
    assert srv.log().count("Traceback (most recent call last)") == 2  # once per slot: new cause

    # 4. The install is mended: the next restarts come up and health is back.
    shutil.rmtree(shadow / "av")

    def healthy() -> bool:
        return srv.client.get("/healthz").status_code == 200

    wait_for(healthy, 60, "/healthz to come back to 200")
    back = srv.client.get("/healthz").json()
    assert back["status"] == "ok"
    assert back["workers"]["alive"] == back["workers"]["wanted"] == 2
    assert worker_gauges(srv) == (2, 2)


# --- the per-task log lines ------------------------------------------------------------


def test_each_task_logs_a_line_when_it_starts_and_one_when_it_ends(make_server, media) -> None:
    srv = make_server(workers=1)
    good = srv.submit(
        media.url("silent.mp4"),
        media.url("coffee.jpg"),
        prompt="turn it into a watercolor painting",
        resolution="720P",
    )
    bad = srv.submit(media.url("garbage.mp4"), media.url("coffee.jpg"), resolution="720P")
    assert srv.wait(good)["status"] == "SUCCESS"
    code = srv.wait(bad)["data"]["output"]["code"]

    slow = srv.submit(media.url("slow?file=silent.mp4&seconds=3"), media.url("coffee.jpg"))
    wait_for(
        lambda: srv.db("select status from tasks where id = ?", slow)[0][0] == "running",
        30,
        "the slow task to run",
    )
    r = srv.client.post(f"/v1/video/generations/{slow}/cancel", headers=srv.headers())
    assert r.status_code == 200, r.text
    wait_for(lambda: f"task {slow} finished" in srv.log(), 30, "the cancelled task's last line")

    log = srv.log()
    lines = {tid: [ln for ln in log.splitlines() if f"task {tid} " in ln] for tid in (good, bad)}
    assert len(lines[good]) == 2, lines[good]
    assert re.search(
        rf" vedit\.worker task {good} started: plan stylize watercolor, "
        r"input 3\.\d\d s 640x360, output 720P$",
        lines[good][0],
    )
    assert re.search(
        rf" vedit\.worker task {good} finished: SUCCEEDED in \d+\.\d\d s$", lines[good][1]
    )
    # A task that fails its checks has no plan, so only its end is logged: code, no traceback.
    assert len(lines[bad]) == 1, lines[bad]
    assert re.search(
        rf" vedit\.worker task {bad} finished: FAILED {re.escape(code)} in \d+\.\d\d s$",
        lines[bad][0],
    )
    assert re.search(rf" vedit\.worker task {slow} finished: CANCELED in \d+\.\d\d s$", log, re.M)
    assert "Traceback" not in log


def test_healthz_is_503_degraded_while_the_database_does_not_answer(tmp_path) -> None:
    """The real app on uvicorn, its database a file in a folder that does not exist."""
    import threading

    import httpx
    import uvicorn

    from vedit.api.app import create_app
    from vedit.config import Settings

    missing = tmp_path / "gone" / "vedit.db"
    app = create_app(Settings(data_dir=tmp_path / "data", database_url=f"sqlite:///{missing}"))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        while not server.started:
            time.sleep(0.05)
        r = httpx.get(f"http://127.0.0.1:{port}/healthz")
        assert r.status_code == 503, r.text
        body = r.json()
        assert body["status"] == "degraded" and "unable to open database file" in body["database"]
    finally:
        server.should_exit = True
        thread.join(timeout=10)
