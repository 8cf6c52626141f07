"""Who runs the queued tasks: a :class:`Dispatcher`, chosen by ``VEDIT_DISPATCH``.

``local`` (``local.py``): worker processes started and watched by this process;
``celery`` (``celery.py``): task ids over a broker to ``vedit worker`` processes on
any host. Either is started once, told of each new task (``submit``), asked how
its workers fare (``health``), runs the janitor (``sweep``) and is stopped. A
server with no workers of its own (they run elsewhere, on the same database) has
:class:`QueueOnly`.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Protocol

from vedit.config import Settings


class Gauge(NamedTuple):
    """One value for ``/metrics``."""

    name: str
    help: str
    value: float


class Health(Protocol):
    """How a dispatcher's workers fare, for ``/healthz`` and ``/metrics``."""

    @property
    def ok(self) -> bool: ...

    def to_dict(self) -> dict[str, Any]: ...

    def gauges(self) -> list[Gauge]: ...


class Dispatcher(Protocol):
    def start(self) -> None:
        """Start the workers (or the link to them); raises when none can run."""

    def submit(self, task_id: str) -> None:
        """A task was queued (never blocks)."""

    def health(self) -> Health | None:
        """How the workers fare; None when they run elsewhere."""

    def sweep(self) -> None:
        """One pass of the janitor (``runtime/janitor.py``)."""

    def stop(self, grace_s: float = 10.0) -> None:
        """Stop; running tasks go back to the queue."""


class QueueOnly:
    """No workers here: workers elsewhere (``vedit worker``) poll the queue."""

    def start(self) -> None:
        pass

    def submit(self, task_id: str) -> None:
        pass

    def health(self) -> Health | None:
        return None

    def sweep(self) -> None:
        pass

    def stop(self, grace_s: float = 10.0) -> None:
        pass


def dispatcher_from(settings: Settings) -> Dispatcher:
    """The dispatcher of ``VEDIT_DISPATCH`` (Celery's raises ``DispatchNotReady`` when it
    cannot be set up)."""
    if settings.dispatch == "celery":
        from vedit.dispatch.celery import CeleryDispatcher

        return CeleryDispatcher(settings)
    from vedit.dispatch.local import LocalDispatcher

    return LocalDispatcher(settings)
