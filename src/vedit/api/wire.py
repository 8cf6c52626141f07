"""How an error reads on the wire: one table per dialect, from an error to (status, code).

Core code raises :mod:`vedit.errors` (a kind, a message, facts); only here does an error
get a status, a code and headers. A table maps each :class:`~vedit.errors.Kind`, and the
classes a dialect tells apart more finely (Anyfast's ``invalid_json`` is DashScope's
``InvalidParameter``); the nearest class in the error's MRO wins over its kind.

The dialect is the route's (:class:`AnyfastRoute`, :class:`DashScopeRoute`); a request no
dialect's route took (a 404, a request the HTTP server answers before routing) speaks its
path's: :func:`dialect_of_path` is the one place that looks at a path.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.types import Scope

from vedit import errors
from vedit.errors import Kind, VeditError
from vedit.tasks.ids import new_request_id

Code = str | Callable[[Any], str]  # a code, or how to read it off the error


@dataclass(frozen=True)
class Dialect:
    """One dialect's errors: its table, its body, its OpenAPI schema for that body."""

    name: str
    table: Mapping[Kind | type[VeditError], tuple[int, Code]]
    envelope: Callable[[str, str], dict[str, Any]]  # (code, message) -> body
    schema: str

    def __post_init__(self) -> None:
        assert set(Kind) <= self.table.keys(), f"{self.name}: a kind without an answer"

    def render(self, error: VeditError) -> tuple[int, dict[str, Any]]:
        """The error's status and body."""
        table = self.table
        status, code = next(
            (table[c] for c in type(error).__mro__ if c in table), table[error.kind]
        )
        code = code if isinstance(code, str) else code(error)
        return status, self.envelope(code, error.message)

    def answer(
        self, error: VeditError, status: int | None = None, headers: Mapping[str, str] = {}
    ) -> JSONResponse:
        """The JSON answer; ``status``/``headers``: those of an HTTP error Starlette raised."""
        own_status, body = self.render(error)
        return JSONResponse(body, status or own_status, {**headers, **error_headers(error)})


def error_headers(error: VeditError) -> dict[str, str]:
    """The headers an error's facts call for."""
    headers = {}
    if error.retry_after_s is not None:
        headers["Retry-After"] = str(error.retry_after_s)
    if isinstance(error, errors.MethodNotAllowed):
        headers["Allow"] = error.allowed
    if isinstance(error, errors.RangeNotSatisfiable):
        headers["Content-Range"] = f"bytes */{error.size}"
    return headers


ANYFAST = Dialect(
    "anyfast",
    {
        Kind.BAD_INPUT: (400, "invalid_request"),
        errors.InvalidJson: (400, "invalid_json"),
        errors.MissingModel: (400, "missing_model"),
        errors.UnknownModel: (400, "model_not_supported"),
        errors.UploadRejected: (400, "invalid_file"),
        errors.TaskNotCancellable: (400, "task_not_cancelable"),
        errors.RangeNotSatisfiable: (416, "range_not_satisfiable"),
        Kind.UNAUTHORISED: (401, "invalid_api_key"),
        Kind.FORBIDDEN: (403, "access_denied"),
        errors.UploadDenied: (403, "upload_denied"),
        errors.SignatureInvalid: (403, "signature_invalid"),
        Kind.NOT_FOUND: (404, "not_found"),
        errors.TaskNotFound: (404, "task_not_exist"),
        errors.MethodNotAllowed: (405, "method_not_allowed"),
        Kind.CONFLICT: (409, "conflict"),
        errors.UploadExists: (409, "file_already_exists"),
        Kind.TOO_LARGE: (413, "request_too_large"),
        errors.UploadQuotaExceeded: (413, "upload_quota_exceeded"),
        errors.HeadersTooLarge: (431, "request_header_too_large"),
        Kind.TOO_SLOW: (408, "request_timeout"),
        Kind.RATE_LIMITED: (429, "rate_limit_exceeded"),
        Kind.UNAVAILABLE: (503, "service_unavailable"),
        errors.StorageUnavailable: (503, "storage_unavailable"),
        errors.TooManyConnections: (503, "too_many_connections"),
        Kind.UPSTREAM_FAILED: (502, "upstream_failed"),
        Kind.INTERNAL: (500, "internal_error"),
    },
    lambda code, message: {"code": code, "message": message, "data": None},
    "Error",
)

DASHSCOPE = Dialect(
    "dashscope",
    {
        Kind.BAD_INPUT: (400, "InvalidParameter"),
        errors.UploadRejected: (400, lambda error: error.media_code),
        errors.TaskNotCancellable: (400, "UnsupportedOperation"),
        errors.RangeNotSatisfiable: (416, "InvalidRange"),
        Kind.UNAUTHORISED: (401, "InvalidApiKey"),
        Kind.FORBIDDEN: (403, "AccessDenied"),
        Kind.NOT_FOUND: (404, "NotFound"),
        errors.TaskNotFound: (404, "InvalidParameter.TaskNotExist"),
        errors.MethodNotAllowed: (405, "MethodNotAllowed"),
        Kind.CONFLICT: (409, "Conflict"),
        errors.UploadExists: (409, "FileAlreadyExists"),
        Kind.TOO_LARGE: (413, "RequestTooLarge"),
        errors.UploadQuotaExceeded: (413, "Throttling.AllocationQuota"),
        errors.HeadersTooLarge: (431, "RequestHeaderTooLarge"),
        Kind.TOO_SLOW: (408, "RequestTimeOut"),
        Kind.RATE_LIMITED: (429, "Throttling.RateQuota"),
        Kind.UNAVAILABLE: (503, "ServiceUnavailable"),
        Kind.UPSTREAM_FAILED: (502, "InternalError.Upstream"),
        Kind.INTERNAL: (500, "InternalError"),
    },
    lambda code, message: {"code": code, "message": message, "request_id": new_request_id()},
    "DashScopeError",
)


class AnyfastRoute(APIRoute):
    """A route of the seed's (Anyfast's) dialect."""

    dialect = ANYFAST


class DashScopeRoute(APIRoute):
    """A route of DashScope's dialect."""

    dialect = DASHSCOPE


def dialect_of(scope: Scope) -> Dialect:
    """The dialect of the route that took the request, else that of its path."""
    return getattr(scope.get("route"), "dialect", None) or dialect_of_path(scope.get("path", ""))


def dialect_of_path(path: str) -> Dialect:
    """The dialect of a request that no dialect's route took: DashScope's under ``/api/v1/``."""
    return DASHSCOPE if path.startswith("/api/v1/") else ANYFAST
