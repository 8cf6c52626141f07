"""The Celery dispatcher's pieces against a real Redis broker (no worker processes): the
settings that make long edits safe, the janitor's count of queued tasks against the
broker's messages, and the plain install (no Celery) refusing only Celery dispatch."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import task_row
from vedit.config import Settings
from vedit.dispatch.celery import CeleryDispatcher, DispatchNotReady, make_celery

SRC = str(Path(__file__).resolve().parents[2] / "src")


def celery_settings(tmp_path: Path, broker: str, **kw: object) -> Settings:
    return Settings(
        data_dir=tmp_path,
        database_url=f"sqlite:///{tmp_path / 't.db'}",
        dispatch="celery",
        broker_url=broker,
        **kw,
    )


def test_long_edits_are_acknowledged_late_one_at_a_time_and_not_redelivered_early(
    tmp_path,
) -> None:
    s = celery_settings(tmp_path, "redis://127.0.0.1:1/0")
    conf = make_celery(s).conf
    assert conf.task_acks_late and conf.task_reject_on_worker_lost
    assert conf.worker_prefetch_multiplier == 1
    longest = 3 * s.media_total_timeout_s + s.upstream_deadline_s
    assert conf.broker_transport_options["visibility_timeout"] == 2 * longest == 4320
    pinned = celery_settings(tmp_path, "redis://x/0", broker_visibility_timeout_s=99)
    assert make_celery(pinned).conf.broker_transport_options["visibility_timeout"] == 99


def test_queued_tasks_without_a_message_are_sent_again_at_the_second_check(
    store, tmp_path, redis_url
) -> None:
    broker = redis_url.rsplit("/", 1)[0] + "/14"
    d = CeleryDispatcher(
        celery_settings(tmp_path, broker, dispatch_resend_after_s=0), watch_workers=False
    )
    try:
        with d.app.connection_for_write() as conn:
            conn.default_channel.client.flushdb()
        rows = [task_row() for _ in range(3)]
        store.add_many(rows)
        d.send([rows[0]["id"]])  # one message made it; two were lost
        assert d.messages_waiting() == 1
        assert d.resend_lost_messages() == 0  # first sight: perhaps a worker is taking them
        assert d.resend_lost_messages() == 2  # still short: sent again
        assert d.messages_waiting() == 3
        assert d.resend_lost_messages() == 0  # as many messages as queued tasks
        assert d.resend_lost_messages() == 0
    finally:
        d.stop()
        d.store.engine.dispose()


def test_without_celery_only_celery_dispatch_asks_for_the_scale_extra(tmp_path) -> None:
    blocked = "import sys; sys.modules['celery'] = None; sys.modules['kombu'] = None"
    run = (
        f"{blocked}\nimport vedit.dispatch.celery, vedit.api.app\nfrom vedit.cli import app\napp()"
    )
    env = {
        **os.environ,
        "PYTHONPATH": SRC,
        "VEDIT_DATA_DIR": str(tmp_path),
        "VEDIT_DISPATCH": "celery",
        "VEDIT_BROKER_URL": "redis://127.0.0.1:1/0",
    }
    out = subprocess.run(
        [sys.executable, "-c", run, "worker", "--workers", "1"],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 1
    assert "VEDIT_DISPATCH=celery needs Celery" in out.stderr
    assert "pip install 'vedit[scale]'" in out.stderr and "Traceback" not in out.stderr


def test_the_relay_engine_is_refused_with_celery_dispatch(tmp_path) -> None:
    """The relay follows many upstream tasks in one process's loop; Celery's pool would run
    them one at a time through a path that does not exist, so both commands refuse it."""
    s = Settings(data_dir=tmp_path, dispatch="celery", engine="dashscope",
                 broker_url="redis://127.0.0.1:1/0")  # fmt: skip
    with pytest.raises(DispatchNotReady, match="use VEDIT_DISPATCH=local for the relay"):
        make_celery(s)
