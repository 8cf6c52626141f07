"""``create_app(settings)``: the FastAPI application, as a list of what it is made of."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute

from vedit import MODEL_NAME, __version__
from vedit.api import anyfast, dashscope, files, operations, page, uploads
from vedit.api.deps import RateLimiter, Services
from vedit.api.handlers import Guard, exception_handlers
from vedit.api.metrics import Metrics
from vedit.api.openapi import build_openapi
from vedit.api.writer import TaskWriter
from vedit.config import Settings
from vedit.db import make_engine, make_sessionmaker
from vedit.dispatch import QueueOnly
from vedit.storage import StorageOptions, open_storage
from vedit.tasks.store import TaskStore
from vedit.uploads.store import UploadStore

ROUTERS = (
    anyfast.router,  # POST /v1/video/generations, its query and cancel
    dashscope.router,  # the same tasks in DashScope's dialect, under /api/v1/
    files.router,  # signed result downloads
    uploads.router,  # POST /v1/uploads and its signed downloads
    uploads.dashscope_router,  # DashScope's upload flow: a policy, then a form
    page.router,  # the browser page at /
    operations.router,  # /healthz, /metrics, /docs
)


def create_app(settings: Settings, dispatcher: Any = None) -> FastAPI:
    """The API over the database and storage named by ``settings``.

    ``dispatcher`` receives ``submit(task_id)`` for each new task; without one,
    tasks wait in the queue for workers started elsewhere (``vedit worker``).
    """
    svc = _services(settings, dispatcher)
    app = FastAPI(
        title="vedit — HappyHorse 1.0 Video Edit",
        description=f"A self-hostable implementation of `{MODEL_NAME}`.",
        version=__version__,
        lifespan=_closing(svc.writer),
        exception_handlers=exception_handlers([r for router in ROUTERS for r in router.routes]),
        docs_url=None,
        redoc_url=None,
    )
    app.state.services = svc
    for router in ROUTERS:
        _answer_head(router.routes)
        app.include_router(router)
    app.mount(operations.DOCS_ASSETS, operations.DocsAssets(), name="docs-assets")
    app.openapi = lambda: build_openapi(app, settings)  # type: ignore[method-assign]
    app.add_middleware(Guard, metrics=svc.metrics)
    return app


def _services(settings: Settings, dispatcher: Any) -> Services:
    """What the routes share: the database, the storage, the dispatcher, the limits."""
    settings.ensure_dirs()
    engine = make_engine(settings.resolved_database_url)
    store = TaskStore(engine)
    dispatcher = dispatcher or QueueOnly()
    return Services(
        settings=settings,
        store=store,
        storage=open_storage(StorageOptions.of(settings)),
        dispatcher=dispatcher,
        writer=TaskWriter(store),
        keys=make_sessionmaker(engine),
        uploads=UploadStore(engine),
        limiter=RateLimiter(settings.rate_limit_storage),
        metrics=Metrics(store, dispatcher.health),
    )


def _closing(writer: TaskWriter) -> Any:
    """The app's lifespan: nothing to start; the task writer is closed at shutdown."""

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        await writer.close()

    return lifespan


def _answer_head(routes: list[Any]) -> None:
    """HEAD on every GET route: the GET answer's status and headers, no body (uvicorn drops
    it; a file response does not even read the file)."""
    for route in routes:
        if isinstance(route, APIRoute) and "GET" in route.methods:
            route.methods.add("HEAD")
