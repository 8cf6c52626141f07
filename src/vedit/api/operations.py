"""The operator's routes: ``/healthz``, ``/metrics``, and the interactive docs at ``/docs``
(Swagger UI's files served from the installed wheel: no CDN). No task is read here."""

from __future__ import annotations

import hmac
import ipaddress
import logging
from typing import Any

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from starlette.responses import FileResponse as StarletteFileResponse
from starlette.types import Scope
from swagger_ui_bundle import swagger_ui_path

from vedit import MODEL_NAME
from vedit.api import files
from vedit.api.deps import services
from vedit.api.wire import AnyfastRoute
from vedit.errors import AccessDenied, Unauthorized
from vedit.media.urls import escape_invisible

log = logging.getLogger("vedit.api")
router = APIRouter(tags=["operations"], route_class=AnyfastRoute)
DOCS_ASSETS = "/docs/assets"


@router.get(
    "/healthz",
    summary="Liveness, database and worker check",
    description="200 `ok`; 503 `degraded` while the database does not answer or fewer "
    "workers run than configured (VEDIT_DISPATCH=celery: while the broker does not answer; "
    "`workers.nodes` counts the Celery workers that answered the last ping).",
    responses={503: {"description": "The database does not answer, or workers are missing"}},
)
def healthz(request: Request) -> JSONResponse:
    svc = services(request)
    try:
        with svc.store.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # the database is down, locked or gone
        log.warning("health check: the database does not answer: %s", exc)
        reason = escape_invisible(f"{type(exc).__name__}: {exc}")[:300]
        return JSONResponse({"status": "degraded", "database": reason}, status_code=503)
    health = svc.metrics.health()  # Celery's: read from a thread's last ping
    if health is None:  # workers run elsewhere (`vedit worker`)
        return JSONResponse({"status": "ok", "model": MODEL_NAME})
    body = {"status": "ok" if health.ok else "degraded", "model": MODEL_NAME}
    return JSONResponse({**body, "workers": health.to_dict()}, 200 if health.ok else 503)


@router.get(
    "/metrics",
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
    svc = services(request)
    token = svc.settings.metrics_token.get_secret_value()
    if token:
        sent = request.headers.get("authorization", "")
        if not hmac.compare_digest(sent.encode(), f"Bearer {token}".encode()):
            raise Unauthorized("/metrics needs 'Authorization: Bearer <VEDIT_METRICS_TOKEN>'")
    elif not svc.settings.metrics_public and not _is_loopback(request):
        raise AccessDenied(
            "/metrics answers loopback clients only, and this request came from "
            f"{escape_invisible(request.client.host if request.client else '?')[:64]}; set "
            "VEDIT_METRICS_TOKEN (then send it as 'Authorization: Bearer <token>') or "
            "VEDIT_METRICS_PUBLIC=true to serve it to other addresses"
        )
    return PlainTextResponse(generate_latest(svc.metrics.registry), media_type=CONTENT_TYPE_LATEST)


@router.get("/docs", include_in_schema=False)
def docs(request: Request) -> HTMLResponse:
    return get_swagger_ui_html(
        openapi_url="/openapi.json",
        title=f"{request.app.title} — API",
        swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
        swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
        swagger_favicon_url=f"{DOCS_ASSETS}/favicon-32x32.png",
    )


class DocsAssets(StaticFiles):
    """Swagger UI's files, whose Range errors are vedit's (JSON) instead of plain text."""

    def __init__(self) -> None:
        super().__init__(directory=str(swagger_ui_path))

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
