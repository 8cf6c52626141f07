"""The janitor: tasks whose worker is gone go back to the queue, expired rows and files go.

Whichever dispatcher runs it (``vedit serve``'s supervisor, a ``vedit worker``'s
main process, Celery's), the janitor does the same things, each safe to run from
many processes on one database (every recovery is a compare-and-set):

- a running task whose heartbeat stopped (``VEDIT_TASK_LEASE_S``), or whose
  worker is known dead (its process on this host, its server gone), is queued
  again once, then failed (``TaskStore.recover_lost``);
- expired tasks and uploads are deleted with their files, and uploads left
  half-received.

A worker's id, which its claims carry, is ``host:group-pid:worker-pid``
(:func:`worker_id_for`): enough for a janitor on the same host to tell whether
it lives.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
from pathlib import Path

from vedit.errors import StorageUnavailable
from vedit.runtime.context import Context
from vedit.storage.base import Area
from vedit.tasks.store import Recovery

log = logging.getLogger("vedit.janitor")
HOST = socket.gethostname()


def worker_id_for(group_pid: int, worker_pid: int) -> str:
    """``host:group-pid:worker-pid``: the group is the server (or ``vedit worker``) that
    started the worker process."""
    return f"{HOST}:{group_pid}:{worker_pid}"


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie, dead but not yet reaped, does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    return state not in ("Z", "X")


class Janitor:
    """Recovers lost tasks and deletes expired ones, over a process's :class:`Context`."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._undeleted: list[tuple[Area, str]] = []  # files of purged rows, not deleted yet

    def recover(self, worker_id: str | None = None) -> list[Recovery]:
        """Tasks whose lease ran out (or, with ``worker_id``, that worker's, dead now)."""
        s = self.ctx.settings
        return self.ctx.store.recover_lost(
            lease_s=s.task_lease_s, max_attempts=s.task_max_attempts, worker_id=worker_id
        )

    def recover_orphans(self) -> list[Recovery]:
        """Tasks left running by a server (or ``vedit worker`` group) on this host that is
        gone: lost, whatever their heartbeat says."""
        lost = []
        for owner in self.ctx.store.running_owners():
            host, _, rest = owner.partition(":")
            group = rest.partition(":")[0]
            if host == HOST and group.isdigit() and not pid_alive(int(group)):
                lost += self.recover(owner)
        return lost

    def recover_dead_workers(self, group_pid: int) -> list[Recovery]:
        """Tasks of this host's worker processes in group ``group_pid`` that have died."""
        lost = []
        for owner in self.ctx.store.running_owners():
            host, _, rest = owner.partition(":")
            group, _, pid = rest.partition(":")
            if (
                host == HOST
                and group == str(group_pid)
                and pid.isdigit()
                and not pid_alive(int(pid))
            ):
                log.warning("worker process %s died", pid)
                lost += self.recover(owner)
        return lost

    def purge(self) -> None:
        """Delete expired tasks and uploads with their files, and uploads left half-received
        (a server killed mid-upload). Files the store would not delete now (a remote store
        that is down) are tried again at the next sweep."""
        ctx, undeleted = self.ctx, self._undeleted
        for task in ctx.store.purge_expired():
            undeleted.append(("results", f"{task.id}.mp4"))
        for upload_id in ctx.uploads.purge_expired():
            undeleted.append(("uploads", upload_id))
        for n, (area, name) in enumerate(undeleted):
            try:
                ctx.storage.delete(area, name)
            except StorageUnavailable as exc:
                left = len(undeleted) - n
                log.warning("%s; %d file(s) to delete are tried again", exc.message, left)
                del undeleted[:n]
                break
        else:
            undeleted.clear()
        stale = time.time() - 2 * ctx.settings.upload_longest_s
        for path in ctx.storage.incoming_dir.glob("*"):
            with contextlib.suppress(OSError):
                if path.stat().st_mtime < stale:
                    path.unlink()


def log_recovered(recoveries: list[Recovery]) -> list[str]:
    """Log each recovery; returns the ids queued again (to be dispatched once more)."""
    again = []
    for r in recoveries:
        if r.requeued:
            log.warning("task %s lost its worker; queued again", r.task_id)
            again.append(r.task_id)
        else:
            log.warning("task %s lost its worker too often; failed", r.task_id)
    return again
