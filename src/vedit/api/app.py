"""``create_app(settings)``: the FastAPI application, its error bodies, health and metrics."""

from __future__ import annotations

import contextlib
import hmac
import ipaddress
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import FileResponse as StarletteFileResponse
from starlette.types import ASGIApp, Receive, Scope, Send
from swagger_ui_bundle import swagger_ui_path

from vedit import MODEL_NAME, __version__
from vedit.api import anyfast, dashscope, files, page, uploads
from vedit.api.deps import RateLimiter, Services
from vedit.api.metrics import Metrics
from vedit.api.openapi import build_openapi
from vedit.api.wire import dialect_of
from vedit.api.writer import TaskWriter
from vedit.config import Settings
from vedit.db import make_engine, make_sessionmaker
from vedit.dispatch.local import LocalDispatcher
from vedit.errors import (
    AccessDenied,
    InvalidRequest,
    MethodNotAllowed,
    RouteNotFound,
    Unauthorized,
    VeditError,
)
from vedit.media.urls import escape_invisible
from vedit.storage import open_storage
from vedit.tasks.store import TaskStore
from vedit.uploads.store import UploadStore

log = logging.getLogger("vedit.api")
DOCS_ASSETS = "/docs/assets"
NOSNIFF = (b"x-content-type-options", b"nosniff")


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
        storage=open_storage(settings),
        dispatcher=dispatcher or _NoDispatcher(),
        writer=writer,
        keys=make_sessionmaker(engine),
        uploads=UploadStore(engine),
        limiter=RateLimiter(settings.rate_limit_storage),
    )
    # Workers run here (`vedit serve`): health and metrics count them; else they run elsewhere
    # (Celery: health reports the broker and the workers that answer its ping).
    workers = dispatcher.health if isinstance(dispatcher, LocalDispatcher) else None
    celery_health = None if workers is not None else getattr(dispatcher, "health", None)
    metrics = Metrics(store, workers, celery_health)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        await writer.close()

    app = FastAPI(
        title="vedit — HappyHorse 1.0 Video Edit",
        description=f"A self-hostable implementation of `{MODEL_NAME}`.",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.services = svc
    routers = (
        anyfast.router,
        dashscope.router,
        files.router,
        uploads.router,
        uploads.dashscope_router,
        page.router,
    )
    for router in routers:
        _answer_head(router.routes)
        app.include_router(router)
    routes = [route for router in routers for route in router.routes]

    @app.exception_handler(VeditError)
    async def _vedit_error(request: Request, exc: VeditError) -> JSONResponse:
        return dialect_of(request.scope).answer(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "the request"
        message = escape_invisible(f"{where}: {err.get('msg', 'is not valid')}")
        return dialect_of(request.scope).answer(InvalidRequest(message))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        where = escape_invisible(f"{request.method} {request.url.path}")[:300]
        status = None  # the error's own
        if exc.status_code == 404:
            err: VeditError = RouteNotFound(f"there is no {where}; see /docs for the routes")
        elif exc.status_code == 405:
            headers = exc.headers or {}
            allow = _allowed_methods(routes, request.url.path) or headers.get("Allow", "")
            err = MethodNotAllowed(f"{where} is not allowed; allowed: {allow}", allowed=allow)
        else:
            err, status = VeditError(escape_invisible(str(exc.detail))), exc.status_code
        return dialect_of(request.scope).answer(err, status, exc.headers or {})

    @app.exception_handler(ClientDisconnect)
    async def _client_gone(request: Request, _exc: ClientDisconnect) -> Response:
        # The client left mid-body, or the server timed its body out and answered 408:
        # one log line; nobody reads this answer; 499 (nginx's "client closed request")
        # is for the metrics.
        log.info(
            "%s %s: the client disconnected before its body was read",
            request.method,
            escape_invisible(request.url.path)[:300],
        )
        return Response(status_code=499)

    @app.get(
        "/healthz",
        tags=["operations"],
        summary="Liveness, database and worker check",
        description="200 `ok`; 503 `degraded` while the database does not answer or fewer "
        "workers run than configured (VEDIT_DISPATCH=celery: while the broker does not answer; "
        "`workers.nodes` counts the Celery workers that answered the last ping).",
        responses={503: {"description": "The database does not answer, or workers are missing"}},
    )
    def healthz() -> JSONResponse:
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception as exc:  # the database is down, locked or gone
            log.warning("health check: the database does not answer: %s", exc)
            reason = escape_invisible(f"{type(exc).__name__}: {exc}")[:300]
            return JSONResponse({"status": "degraded", "database": reason}, status_code=503)
        if celery_health is not None:  # VEDIT_DISPATCH=celery: read from a thread's last ping
            state = celery_health()
            body = {"status": "ok" if state.ok else "degraded", "model": MODEL_NAME}
            return JSONResponse({**body, "workers": state.to_dict()}, 200 if state.ok else 503)
        if workers is None:
            return JSONResponse({"status": "ok", "model": MODEL_NAME})
        health = workers()
        if health.alive < health.wanted:
            return JSONResponse(
                {"status": "degraded", "workers": health.to_dict()}, status_code=503
            )
        return JSONResponse({"status": "ok", "model": MODEL_NAME, "workers": health.to_dict()})

    @app.get(
        "/metrics",
        tags=["operations"],
        summary="Prometheus metrics",
        description="Loopback clients only, unless VEDIT_METRICS_TOKEN is set (then any client "
        "that sends it as a bearer token) or VEDIT_METRICS_PUBLIC=true (any client).",
        response_class=PlainTextResponse,
        responses={
            401: {"description": "When VEDIT_METRICS_TOKEN is set and not sent"},
            403: {"description": "A client that is not on loopback, with neither setting"},
        },
    )
    def prometheus_metrics(request: Request) -> PlainTextResponse:
        token = settings.metrics_token.get_secret_value()
        if token:
            sent = request.headers.get("authorization", "")
            if not hmac.compare_digest(sent.encode(), f"Bearer {token}".encode()):
                raise Unauthorized("/metrics needs 'Authorization: Bearer <VEDIT_METRICS_TOKEN>'")
        elif not settings.metrics_public and not _is_loopback(request):
            raise AccessDenied(
                "/metrics answers loopback clients only, and this request came from "
                f"{escape_invisible(request.client.host if request.client else '?')[:64]}; set "
                "VEDIT_METRICS_TOKEN (then send it as 'Authorization: Bearer <token>') or "
                "VEDIT_METRICS_PUBLIC=true to serve it to other addresses"
            )
        return PlainTextResponse(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    # The interactive docs, with Swagger UI's files served from the installed wheel: no CDN.
    app.mount(DOCS_ASSETS, _Assets(directory=str(swagger_ui_path)), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title=f"{app.title} — API",
            swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_ASSETS}/favicon-32x32.png",
        )

    _answer_head(app.router.routes)

    app.openapi = lambda: build_openapi(app, settings)  # type: ignore[method-assign]
    app.add_middleware(_Guard, metrics=metrics)
    return app


class _Assets(StaticFiles):
    """Starlette's static files, whose Range errors are vedit's (JSON) instead of plain text."""

    def file_response(
        self, full_path: Any, stat_result: Any, scope: Scope, status_code: int = 200
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        if type(response) is StarletteFileResponse:
            return files.RangedFileResponse(
                full_path, status_code=status_code, stat_result=stat_result
            )
        return response  # not modified (304)


def _is_loopback(request: Request) -> bool:
    """Whether the request's client is on this host: 127.0.0.0/8 or ::1 (IPv4-mapped
    included), or a Unix socket. Behind a proxy on this host, uvicorn takes the client
    from ``X-Forwarded-For``, so a request that came through the proxy is not local."""
    if request.client is None:
        return True
    try:
        address = ipaddress.ip_address(request.client.host.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def _allowed_methods(routes: list[Any], path: str) -> str:
    """Every method some route takes at ``path`` (Starlette's 405 names only the first
    route's, where two routes share a path, such as GET and POST /api/v1/uploads)."""
    methods: set[str] = set()
    for route in routes:
        if isinstance(route, APIRoute) and route.path_regex.match(path):
            methods |= route.methods
    return ", ".join(sorted(methods))


def _answer_head(routes: list[Any]) -> None:
    """HEAD on every GET route: the GET answer's status and headers, no body (uvicorn drops
    it; a file response does not even read the file)."""
    for route in routes:
        if isinstance(route, APIRoute) and "GET" in route.methods:
            route.methods.add("HEAD")


class _Guard:
    """The outermost middleware, one layer for three jobs.

    It times every request for ``/metrics``; it adds ``X-Content-Type-Options: nosniff``
    to every answer that lacks it (a browser must never take an error or a download for
    a page); and nothing a request does reaches the client as a traceback: whatever
    escapes a route is logged once, with its traceback, and answered with a 500 in the
    request's dialect (the connection stays open for the next request).
    """

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 0  # until the response starts

        async def tracked(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = message.get("headers") or []
                if not any(name.lower() == NOSNIFF[0] for name, _ in headers):
                    message = {**message, "headers": [*headers, NOSNIFF]}
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception:
            log.exception("%s %s failed", scope["method"], escape_invisible(scope["path"])[:300])
            if not status:
                err = VeditError(
                    "the server failed to answer this request; the failure has been logged"
                )
                await dialect_of(scope).answer(err)(scope, receive, tracked)
        finally:
            self.metrics.observe(
                scope["method"], scope.get("route"), status or 500, time.perf_counter() - start
            )


class _NoDispatcher:
    def submit(self, task_id: str) -> None:
        """Workers elsewhere poll the queue."""
