"""What the app answers when a request goes wrong: its exception handlers and its outermost
middleware. Every answer is JSON in the dialect of the route that took the request
(``api/wire.py`` holds the tables); nothing reaches the client as a traceback.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Receive, Scope, Send

from vedit.api.metrics import Metrics
from vedit.api.wire import dialect_of
from vedit.errors import InvalidRequest, MethodNotAllowed, RouteNotFound, VeditError
from vedit.media.urls import escape_invisible

log = logging.getLogger("vedit.api")
NOSNIFF = (b"x-content-type-options", b"nosniff")


def exception_handlers(routes: Sequence[Any]) -> dict[Any, Callable[..., Any]]:
    """The app's handlers; ``routes``: every route, whose methods a 405 lists."""

    async def vedit_error(request: Request, exc: VeditError) -> JSONResponse:
        return dialect_of(request.scope).answer(exc)

    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "the request"
        message = escape_invisible(f"{where}: {err.get('msg', 'is not valid')}")
        return dialect_of(request.scope).answer(InvalidRequest(message))

    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
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

    async def client_gone(request: Request, _exc: ClientDisconnect) -> Response:
        # The client left mid-body, or the server timed its body out and answered 408:
        # one log line; nobody reads this answer; 499 (nginx's "client closed request")
        # is for the metrics.
        log.info(
            "%s %s: the client disconnected before its body was read",
            request.method,
            escape_invisible(request.url.path)[:300],
        )
        return Response(status_code=499)

    return {
        VeditError: vedit_error,
        RequestValidationError: validation_error,
        StarletteHTTPException: http_error,
        ClientDisconnect: client_gone,
    }


def _allowed_methods(routes: Sequence[Any], path: str) -> str:
    """Every method some route takes at ``path`` (Starlette's 405 names only the first
    route's, where two routes share a path, such as GET and POST /api/v1/uploads)."""
    methods: set[str] = set()
    for route in routes:
        if isinstance(route, APIRoute) and route.path_regex.match(path):
            methods |= route.methods
    return ", ".join(sorted(methods))


class Guard:
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
