"""Every error vedit raises, as data: a kind, a message, and the facts a client acts on.

Core code raises these; nothing here knows an HTTP status or a wire code. Each dialect's
status and code for an error come from one table per dialect in ``api/wire.py``, keyed by
the error's :class:`Kind` (or by its class, where a dialect tells finer). Three families:

- request errors (:class:`VeditError`): a request is answered with one;
- task failures (:class:`TaskFailure`): they end a task. Their ``code``
  (``InvalidFile.Duration``...) is not a wire code but the task's data: the failure's
  stable identifier, stored with the task and shown as it is in its ``output.code``;
- start-up errors (:class:`StartupError`): vedit cannot run as configured; the message
  names the setting, in one line, and ``vedit serve``/``vedit worker`` print it and exit.
"""

from __future__ import annotations

import enum
from typing import Any, ClassVar


class Kind(enum.Enum):
    """What went wrong, in the terms a client acts on."""

    BAD_INPUT = "bad input"  # the request or its media: fix it rather than retry
    UNAUTHORISED = "unauthorised"  # no valid key
    FORBIDDEN = "forbidden"  # a signature, a policy or an address that does not admit it
    NOT_FOUND = "not found"
    CONFLICT = "conflict"  # the request contradicts what is stored
    TOO_LARGE = "too large"
    TOO_SLOW = "too slow"  # the request did not arrive in time
    RATE_LIMITED = "rate limited"
    UNAVAILABLE = "unavailable"  # something vedit needs does not answer now: retry
    UPSTREAM_FAILED = "upstream failed"
    INTERNAL = "internal"


class VeditError(Exception):
    """Base of every error vedit reports: its kind, a message for the client, and, where
    retrying helps, after how many seconds (``retry_after_s``)."""

    kind: ClassVar[Kind] = Kind.INTERNAL

    def __init_subclass__(cls, kind: Kind | None = None, **rest: Any) -> None:
        super().__init_subclass__(**rest)
        cls.kind = kind or cls.kind

    def __init__(self, message: str, *, retry_after_s: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after_s = retry_after_s


# --- request errors (answered at once) ---------------------------------------


class InvalidRequest(VeditError, kind=Kind.BAD_INPUT):
    """A field of the request is missing, of the wrong type or out of range."""


class InvalidJson(InvalidRequest):
    """The body is not JSON, or not a JSON object."""


class MissingModel(InvalidRequest):
    """The body names no model."""


class UnknownModel(InvalidRequest):
    """The body names a model this service does not serve."""


class AsyncRequired(InvalidRequest):
    """A DashScope-dialect create without ``X-DashScope-Async: enable``."""


class UploadRejected(InvalidRequest):
    """An uploaded file that is not an accepted video or image, or outside the media limits;
    ``media_code`` is the failure a task would end with on it (``InvalidFile.Duration``...)."""

    def __init__(self, message: str, *, media_code: str | None = None) -> None:
        super().__init__(message)
        self.media_code = media_code or "InvalidFile.Format"


class BodyTooLarge(VeditError, kind=Kind.TOO_LARGE):
    """The request body is over the size limit."""


class UploadQuotaExceeded(BodyTooLarge):
    """A key's live uploads would pass ``VEDIT_UPLOAD_QUOTA_BYTES``."""


class UploadDenied(VeditError, kind=Kind.FORBIDDEN):
    """An upload of DashScope's flow whose policy is forged, expired, or does not cover it."""


class UploadExists(VeditError, kind=Kind.CONFLICT):
    """An upload of DashScope's flow to an object key that already holds a file
    (``x-oss-forbid-overwrite: true``)."""


class Unauthorized(VeditError, kind=Kind.UNAUTHORISED):
    """The bearer key is missing, malformed, unknown or revoked."""


class RateLimited(VeditError, kind=Kind.RATE_LIMITED):
    """The key sent more creates than its rate limit allows."""


class TaskNotFound(VeditError, kind=Kind.NOT_FOUND):
    """No such task for this key (unknown, expired, or another key's)."""


class TaskNotCancellable(VeditError, kind=Kind.CONFLICT):
    """A cancel of a task that has already ended (succeeded, failed or cancelled)."""


class RouteNotFound(VeditError, kind=Kind.NOT_FOUND):
    """No route at this path."""


class MethodNotAllowed(VeditError, kind=Kind.NOT_FOUND):
    """The path exists, the method does not; ``allowed`` lists the methods it takes."""

    def __init__(self, message: str, *, allowed: str) -> None:
        super().__init__(message)
        self.allowed = allowed


class StoreUnavailable(VeditError, kind=Kind.UNAVAILABLE):
    """The task store could not take the task now (the database is busy or down)."""


class RateLimitUnavailable(StoreUnavailable):
    """The shared rate-limit storage (Redis, ``VEDIT_RATE_LIMIT_STORAGE``) does not answer."""


class StorageUnavailable(VeditError, kind=Kind.UNAVAILABLE):
    """The object store (``VEDIT_STORAGE=s3``) refused or could not be reached; at start-up,
    the server refuses to start with this message."""


class SignatureInvalid(VeditError, kind=Kind.FORBIDDEN):
    """A result URL whose signature does not match, or that has expired."""


class AccessDenied(VeditError, kind=Kind.FORBIDDEN):
    """A route this client may not use (``/metrics`` from an address that is not loopback,
    unless ``VEDIT_METRICS_TOKEN`` or ``VEDIT_METRICS_PUBLIC`` open it)."""


class RangeNotSatisfiable(VeditError, kind=Kind.BAD_INPUT):
    """A download's ``Range`` starts past the end of the file, of ``size`` bytes."""

    def __init__(self, message: str, *, size: int | str) -> None:
        super().__init__(message)
        self.size = size


# --- connection errors (answered by the HTTP server, then the connection is closed) ---


class RequestTimeout(VeditError, kind=Kind.TOO_SLOW):
    """The request line and headers, or the body, did not arrive in time (an upload's body:
    slower than ``VEDIT_UPLOAD_MIN_RATE_BPS``)."""


class HeadersTooLarge(VeditError, kind=Kind.TOO_LARGE):
    """The request line and headers are over the byte cap, or there are too many headers."""


class TooManyConnections(VeditError, kind=Kind.UNAVAILABLE):
    """The server, or this client, already holds as many connections as it may."""


# --- task failures (end a task FAILURE / FAILED) ------------------------------


class TaskFailure(VeditError):
    """Ends a task; ``code`` is the failure's identifier, kept as the task's ``output.code``."""

    code: ClassVar[str] = "InternalError"

    def __init_subclass__(cls, code: str | None = None, **rest: Any) -> None:
        super().__init_subclass__(**rest)
        cls.code = code or cls.code


class MediaRefused(TaskFailure, kind=Kind.BAD_INPUT, code="InvalidURL.Refused"):
    """A media URL points at an address or scheme that is never fetched."""


class MediaDownloadFailed(TaskFailure, kind=Kind.BAD_INPUT, code="InvalidURL.DownloadFailed"):
    """A media URL could not be downloaded (status, timeout, too many redirects)."""


class MediaTooLarge(TaskFailure, kind=Kind.TOO_LARGE, code="InvalidFile.Size"):
    """A media file is over its byte cap."""


class MediaFormat(TaskFailure, kind=Kind.BAD_INPUT, code="InvalidFile.Format"):
    """A media file is not of an accepted container or image format."""


class MediaCorrupt(TaskFailure, kind=Kind.BAD_INPUT, code="InvalidFile.Content"):
    """A media file cannot be decoded."""


class MediaDuration(TaskFailure, kind=Kind.BAD_INPUT, code="InvalidFile.Duration"):
    """The video is too short or too long."""


class MediaFrameRate(TaskFailure, kind=Kind.BAD_INPUT, code="InvalidFile.FPS"):
    """The video's frame rate is too low."""


class MediaResolution(TaskFailure, kind=Kind.BAD_INPUT, code="InvalidFile.Resolution"):
    """A side of the video or image is too small or too large."""


class MediaAspectRatio(TaskFailure, kind=Kind.BAD_INPUT, code="InvalidFile.AspectRatio"):
    """The video or image is too narrow or too wide."""


class EngineFailed(TaskFailure, code="InternalError.Engine"):
    """The engine could not edit the video."""


class EditUnavailable(TaskFailure, kind=Kind.UNAVAILABLE, code="InternalError.ModelUnavailable"):
    """The edit the prompt asks for cannot be made on this server (a model it needs is not
    installed): refused before any media is fetched, never replaced by another edit."""


class StorageFailed(TaskFailure, code="InternalError.Storage"):
    """An upload could not be read from storage, or the result could not be stored."""


class WorkerLost(TaskFailure, code="InternalError.WorkerLost"):
    """The worker running the task died too many times."""


class TaskAborted(Exception):
    """Raised inside a worker when its task was taken away (lease lost); not reported."""


# --- start-up errors (vedit cannot run as configured) ------------------------


class StartupError(RuntimeError):
    """vedit cannot start as configured; the message says which setting and why, in one line
    (the shared rate-limit storage, for one, raises it as it is)."""


class EngineUnavailable(StartupError):
    """The engine chosen cannot run here (a setting, a folder, a package, a device)."""


class DatabaseNotReady(StartupError):
    """The database's driver is missing, or its schema is not the one this vedit needs."""


class WorkersCannotStart(StartupError):
    """No worker could load its engine; the message says why."""

    def __str__(self) -> str:
        return f"the workers cannot start: {super().__str__()}"


class DispatchNotReady(StartupError):
    """Celery dispatch is configured but cannot work (no Celery, no broker URL, no broker)."""
