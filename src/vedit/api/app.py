"""``create_app(settings)``: the FastAPI application, its error bodies, health and metrics."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from vedit import MODEL_NAME, __version__
from vedit.api import anyfast, dashscope, files
from vedit.api.deps import Services
from vedit.api.metrics import Metrics
from vedit.api.schemas import CreateRequest
from vedit.api.writer import TaskWriter
from vedit.config import Settings
from vedit.db import make_engine, make_sessionmaker
from vedit.errors import InvalidRequest, VeditError
from vedit.storage.local import LocalStorage
from vedit.tasks.store import TaskStore


def error_response(request: Request, exc: VeditError) -> JSONResponse:
    """The error body of the dialect the request was made in."""
    body = exc.body_for_path(request.url.path)
    return JSONResponse(body, status_code=exc.http_status, headers=exc.headers)


def create_app(settings: Settings, dispatcher: Any = None) -> FastAPI:
    """The API over the database and storage named by ``settings``.

    ``dispatcher`` receives ``submit(task_id)`` for each new task; without one,
    tasks wait in the queue for workers started elsewhere (``vedit worker``).
    """
    settings.ensure_dirs()
    engine = make_engine(settings.resolved_database_url)
    store = TaskStore(engine)
    writer = TaskWriter(store)
    svc = Services(
        settings=settings,
        store=store,
        storage=LocalStorage(settings),
        dispatcher=dispatcher or _NoDispatcher(),
        writer=writer,
        keys=make_sessionmaker(engine),
    )
    metrics = Metrics(store)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        await writer.close()

    app = FastAPI(
        title="vedit — HappyHorse 1.0 Video Edit",
        description=f"A self-hostable implementation of `{MODEL_NAME}`.",
        version=__version__,
        lifespan=lifespan,
    )
    app.state.services = svc
    app.include_router(anyfast.router)
    app.include_router(dashscope.router)
    app.include_router(files.router)

    @app.exception_handler(VeditError)
    async def _vedit_error(request: Request, exc: VeditError) -> JSONResponse:
        return error_response(request, exc)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err.get("loc", ()))
        return error_response(request, InvalidRequest(f"{where}: {err.get('msg')}"))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        err = VeditError(str(exc.detail))
        err.http_status, err.code = exc.status_code, code  # type: ignore[misc]
        return error_response(request, err)

    @app.exception_handler(ClientDisconnect)
    async def _client_gone(_request: Request, _exc: ClientDisconnect) -> Response:
        # The client left mid-body, or the server timed its body out and answered 408:
        # nobody reads this answer; 499 (nginx's "client closed request") is for the metrics.
        return Response(status_code=499)

    @app.get("/healthz", tags=["operations"], summary="Liveness and database check")
    def healthz() -> dict[str, str]:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return {"status": "ok", "model": MODEL_NAME}

    @app.get("/metrics", tags=["operations"], summary="Prometheus metrics")
    def prometheus_metrics() -> PlainTextResponse:
        return PlainTextResponse(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            from fastapi.openapi.utils import get_openapi

            schema = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes
            )
            components = schema.setdefault("components", {})
            defs = CreateRequest.model_json_schema(ref_template="#/components/schemas/{model}")
            components.setdefault("schemas", {}).update(defs.pop("$defs", {}))
            components["schemas"]["CreateRequest"] = defs
            components["securitySchemes"] = {"bearerAuth": {"type": "http", "scheme": "bearer"}}
            schema["security"] = [{"bearerAuth": []}]
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    app.add_middleware(_Wrap, wrap=metrics.middleware)
    return app


class _Wrap:
    """Adapts a function-style ASGI middleware to ``app.add_middleware``."""

    def __init__(self, app: Any, wrap: Any) -> None:
        self.app = wrap(app)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)


class _NoDispatcher:
    def submit(self, task_id: str) -> None:
        """Workers elsewhere poll the queue."""
