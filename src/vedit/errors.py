"""Every error vedit reports, and the one table that maps each to HTTP and to wire bodies.

Routes and workers raise these; only this module decides the status code and
the body. Request errors carry an Anyfast-dialect ``code`` (the gateway's
``invalid_request`` family) and a DashScope ``dashscope_code``. Task failures
carry a DashScope-style code (``InvalidFile.Duration``...) that ends up in the
task's ``output.code``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from vedit.tasks.ids import new_request_id

DASHSCOPE_PATH_PREFIX = "/api/v1/"
"""Requests under this path speak DashScope's dialect; every other path speaks Anyfast's."""


class VeditError(Exception):
    """Base of every error vedit reports to a client."""

    http_status: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"
    dashscope_code: ClassVar[str] = "InternalError"

    def __init__(self, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers or {}

    def anyfast_body(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "data": None}

    def dashscope_body(self, request_id: str) -> dict[str, Any]:
        return {"code": self.dashscope_code, "message": self.message, "request_id": request_id}

    def body_for_path(self, path: str) -> dict[str, Any]:
        """The body in the dialect of a request to ``path`` (Anyfast's when the path is unknown)."""
        if path.startswith(DASHSCOPE_PATH_PREFIX):
            return self.dashscope_body(new_request_id())
        return self.anyfast_body()


# --- request errors (answered at once) ---------------------------------------


class InvalidRequest(VeditError):
    """A field of the request is missing, of the wrong type or out of range."""

    http_status = 400
    code = "invalid_request"
    dashscope_code = "InvalidParameter"


class InvalidJson(InvalidRequest):
    """The body is not JSON, or not a JSON object."""

    code = "invalid_json"


class MissingModel(InvalidRequest):
    """The body names no model."""

    code = "missing_model"


class UnknownModel(InvalidRequest):
    """The body names a model this service does not serve."""

    code = "model_not_supported"


class BodyTooLarge(VeditError):
    """The request body is over the size limit."""

    http_status = 413
    code = "request_too_large"
    dashscope_code = "RequestTooLarge"


class UploadRejected(InvalidRequest):
    """An uploaded file that is not an accepted video or image, or outside the media limits.

    Its DashScope code is the media check's own (``InvalidFile.Duration``...).
    """

    code = "invalid_file"
    dashscope_code = "InvalidFile.Format"

    def __init__(self, message: str, *, media_code: str | None = None) -> None:
        super().__init__(message)
        if media_code:
            self.dashscope_code = media_code  # type: ignore[misc]


class UploadQuotaExceeded(BodyTooLarge):
    """A key's live uploads would pass ``VEDIT_UPLOAD_QUOTA_BYTES``."""

    code = "upload_quota_exceeded"
    dashscope_code = "Throttling.AllocationQuota"


class UploadDenied(VeditError):
    """An upload of DashScope's flow whose policy is forged, expired, or does not cover it."""

    http_status = 403
    code = "upload_denied"
    dashscope_code = "AccessDenied"


class UploadExists(VeditError):
    """An upload of DashScope's flow to an object key that already holds a file
    (``x-oss-forbid-overwrite: true``)."""

    http_status = 409
    code = "file_already_exists"
    dashscope_code = "FileAlreadyExists"


class Unauthorized(VeditError):
    """The bearer key is missing, malformed, unknown or revoked."""

    http_status = 401
    code = "invalid_api_key"
    dashscope_code = "InvalidApiKey"


class RateLimited(VeditError):
    """The key sent more creates than its rate limit allows."""

    http_status = 429
    code = "rate_limit_exceeded"
    dashscope_code = "Throttling.RateQuota"


class TaskNotFound(VeditError):
    """No such task for this key (unknown, expired, or another key's)."""

    http_status = 404
    code = "task_not_exist"
    dashscope_code = "InvalidParameter.TaskNotExist"


class AsyncRequired(InvalidRequest):
    """A DashScope-dialect create without ``X-DashScope-Async: enable``."""


class TaskNotCancellable(VeditError):
    """A cancel of a task that has already ended (succeeded, failed or cancelled)."""

    http_status = 400
    code = "task_not_cancelable"
    dashscope_code = "UnsupportedOperation"


class RouteNotFound(VeditError):
    """No route at this path."""

    http_status = 404
    code = "not_found"
    dashscope_code = "NotFound"


class MethodNotAllowed(VeditError):
    """The path exists, the method does not (the answer carries ``Allow``)."""

    http_status = 405
    code = "method_not_allowed"
    dashscope_code = "MethodNotAllowed"


class StoreUnavailable(VeditError):
    """The task store could not take the task now (the database is busy or down)."""

    http_status = 503
    code = "service_unavailable"
    dashscope_code = "ServiceUnavailable"


class RateLimitUnavailable(StoreUnavailable):
    """The shared rate-limit storage (Redis, ``VEDIT_RATE_LIMIT_STORAGE``) does not answer."""


class StorageUnavailable(VeditError):
    """The object store (``VEDIT_STORAGE=s3``) refused or could not be reached; at start-up,
    the server refuses to start with this message."""

    http_status = 503
    code = "storage_unavailable"
    dashscope_code = "ServiceUnavailable"


class SignatureInvalid(VeditError):
    """A result URL whose signature does not match, or that has expired."""

    http_status = 403
    code = "signature_invalid"
    dashscope_code = "AccessDenied"


class AccessDenied(VeditError):
    """A route this client may not use (``/metrics`` from an address that is not loopback,
    unless ``VEDIT_METRICS_TOKEN`` or ``VEDIT_METRICS_PUBLIC`` open it)."""

    http_status = 403
    code = "access_denied"
    dashscope_code = "AccessDenied"


class RangeNotSatisfiable(VeditError):
    """A download's ``Range`` starts past the end of the file (the answer carries
    ``Content-Range: bytes */<size>``)."""

    http_status = 416
    code = "range_not_satisfiable"
    dashscope_code = "InvalidRange"


# --- connection errors (answered by the HTTP server, then the connection is closed) ---


class RequestTimeout(VeditError):
    """The request line and headers, or the body, did not arrive in time (an upload's body:
    slower than ``VEDIT_UPLOAD_MIN_RATE_BPS``)."""

    http_status = 408
    code = "request_timeout"
    dashscope_code = "RequestTimeOut"


class HeadersTooLarge(VeditError):
    """The request line and headers are over the byte cap, or there are too many headers."""

    http_status = 431
    code = "request_header_too_large"
    dashscope_code = "RequestHeaderTooLarge"


class TooManyConnections(VeditError):
    """The server, or this client, already holds as many connections as it may."""

    http_status = 503
    code = "too_many_connections"
    dashscope_code = "ServiceUnavailable"


# --- task failures (end a task FAILURE / FAILED) ------------------------------


class TaskFailure(VeditError):
    """Ends a task; ``code`` is the DashScope-style code shown in ``output.code``."""

    code = "InternalError"
    dashscope_code = "InternalError"


class MediaRefused(TaskFailure):
    """A media URL points at an address or scheme that is never fetched."""

    code = dashscope_code = "InvalidURL.Refused"


class MediaDownloadFailed(TaskFailure):
    """A media URL could not be downloaded (status, timeout, too many redirects)."""

    code = dashscope_code = "InvalidURL.DownloadFailed"


class MediaTooLarge(TaskFailure):
    """A media file is over its byte cap."""

    code = dashscope_code = "InvalidFile.Size"


class MediaFormat(TaskFailure):
    """A media file is not of an accepted container or image format."""

    code = dashscope_code = "InvalidFile.Format"


class MediaCorrupt(TaskFailure):
    """A media file cannot be decoded."""

    code = dashscope_code = "InvalidFile.Content"


class MediaDuration(TaskFailure):
    """The video is too short or too long."""

    code = dashscope_code = "InvalidFile.Duration"


class MediaFrameRate(TaskFailure):
    """The video's frame rate is too low."""

    code = dashscope_code = "InvalidFile.FPS"


class MediaResolution(TaskFailure):
    """A side of the video or image is too small or too large."""

    code = dashscope_code = "InvalidFile.Resolution"


class MediaAspectRatio(TaskFailure):
    """The video or image is too narrow or too wide."""

    code = dashscope_code = "InvalidFile.AspectRatio"


class EngineFailed(TaskFailure):
    """The engine could not edit the video."""

    code = dashscope_code = "InternalError.Engine"


class EditUnavailable(TaskFailure):
    """The edit the prompt asks for cannot be made on this server (a model it needs is not
    installed): refused before any media is fetched, never replaced by another edit."""

    code = dashscope_code = "InternalError.ModelUnavailable"


class StorageFailed(TaskFailure):
    """An upload could not be read from storage, or the result could not be stored."""

    code = dashscope_code = "InternalError.Storage"


class WorkerLost(TaskFailure):
    """The worker running the task died too many times."""

    code = dashscope_code = "InternalError.WorkerLost"


class EngineUnavailable(RuntimeError):
    """The engine chosen cannot run here (a setting, a folder, a package, a device); the
    message says which and why, in one line: ``vedit serve``/``vedit worker`` print it and
    exit, with no traceback."""


class TaskAborted(Exception):
    """Raised inside a worker when its task was taken away (lease lost); not reported."""
