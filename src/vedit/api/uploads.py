"""Uploads into vedit's own storage, two ways (a key sees only its own uploads):

- ``POST /v1/uploads`` — multipart field ``file``, bearer key; answers the file's
  signed ``url``, which ``input.media[]`` takes in both dialects without any
  allow-list entry, and which plays in a browser (``GET /v1/uploads/{id}/{name}``);
- DashScope's flow, used by the official SDK for ``file://`` media:
  ``GET /api/v1/uploads?action=getPolicy&model=...`` (bearer key) answers a signed
  policy whose ``upload_host`` is ``POST /api/v1/uploads`` here (the policy is the
  credential there); the SDK then sends ``oss://<key>`` with
  ``X-DashScope-OssResourceResolve: enable``.

The work is ordered so that a hostile client costs little: the key (or the policy,
checked as soon as the form's fields before its file part have arrived) and the quota
(reserved for the declared size) come first, before a byte of the file is written; the
file is streamed to disk (``api/multipart.py``), sniffed, its header checked against
the media limits, and only then decoded, within a cost known beforehand and under
this process's decode budget (``uploads/intake.py``, ``media/bounded.py``). It expires
with the task retention (``VEDIT_TASK_TTL_S``), or later when a task uses it. Its
signed link stops working when its key is revoked.
"""

from __future__ import annotations

import logging
import secrets
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response
from python_multipart.multipart import parse_options_header
from starlette.concurrency import run_in_threadpool

from vedit import MODEL_NAME
from vedit.api.deps import Services, authenticate, services
from vedit.api.files import stored_response
from vedit.api.multipart import ReceivedFile, receive_form
from vedit.api.wire import AnyfastRoute, DashScopeRoute
from vedit.errors import BodyTooLarge, InvalidRequest, SignatureInvalid, UploadExists
from vedit.media.bounded import DecodeBudget, budget_bytes
from vedit.media.limits import MediaLimits
from vedit.media.urls import escape_invisible
from vedit.tasks.ids import new_request_id
from vedit.uploads import intake, policy
from vedit.uploads.models import Upload
from vedit.uploads.store import Reservation

log = logging.getLogger("vedit.uploads")
router = APIRouter(tags=["uploads"], route_class=AnyfastRoute)
dashscope_router = APIRouter(tags=["uploads"], route_class=DashScopeRoute)  # DashScope's flow

UPLOAD_PATHS = frozenset({"/v1/uploads", "/api/v1/uploads"})
"""Paths whose POSTs the HTTP server treats as uploads (``api/http_server.py``): a
connection budget of their own (``VEDIT_HTTP_MAX_UPLOAD_CONNECTIONS``), a body that must
arrive at ``VEDIT_UPLOAD_MIN_RATE_BPS`` after ``VEDIT_UPLOAD_RATE_GRACE_S`` instead of
``VEDIT_HTTP_BODY_TIMEOUT_S``, and a declared size of at most the largest file plus the
form (``FORM_ALLOWANCE``), refused at the headers."""

_FORM = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {"file": {"type": "string", "format": "binary"}},
                }
            }
        },
    }
}
_UPLOAD_ANSWER = {
    "type": "object",
    "required": ["id", "url", "expires_at", "bytes", "content_type", "kind"],
    "properties": {
        "id": {"type": "string", "example": "up_4f0c2a9d6e5b41b7a3c8d9e0f1a2b3c4"},
        "url": {
            "type": "string",
            "description": "Put it in input.media[].url; it is also a signed download link.",
        },
        "expires_at": {"type": "integer", "description": "Unix seconds"},
        "bytes": {"type": "integer"},
        "content_type": {"type": "string", "description": "Sniffed from the file's bytes"},
        "kind": {"type": "string", "enum": ["video", "image"]},
        "filename": {
            "type": ["string", "null"],
            "description": "The file name the client sent (any script), as metadata",
        },
    },
}


def _incoming(svc: Services) -> Path:
    """Where a file being received is written (local storage: the uploads folder, so keeping
    it is a rename)."""
    return svc.storage.incoming_dir / secrets.token_hex(16)


def _declared(request: Request) -> int | None:
    """The body's Content-Length, when the client declared one."""
    text = request.headers.get("content-length", "")
    return int(text) if text.isascii() and text.isdigit() and len(text) < 19 else None


def _budget(request: Request) -> DecodeBudget:
    """This process's decode budget (one per app: ``media/bounded.py``)."""
    state = request.app.state
    budget: DecodeBudget | None = getattr(state, "decode_budget", None)
    if budget is None:
        budget = state.decode_budget = DecodeBudget(
            budget_bytes(MediaLimits.of(services(request).settings))
        )
    return budget


async def _checked(request: Request, svc: Services, dest: Path, key_id: int) -> intake.Sniffed:
    """The received file's checks: its header at once, then its decode within the budget,
    whose turns go round the keys waiting."""
    s = svc.settings
    inspected = await run_in_threadpool(intake.inspect, dest, s)
    async with _budget(request).hold(inspected.cost, owner=key_id):
        await run_in_threadpool(intake.verify, dest, inspected, s)
    return inspected.sniffed


async def _release(svc: Services, reservation: Reservation) -> None:
    """Give back an unused reservation; one left (the store is down) expires by itself."""
    try:
        await run_in_threadpool(svc.uploads.release, reservation)
    except Exception as exc:  # noqa: BLE001  (the janitor purges it when it expires)
        log.warning("an upload reservation could not be released: %s", exc)


def upload_answer(upload: Upload, svc: Services) -> dict[str, Any]:
    expires = int(upload.expires_at)
    return {
        "id": upload.id,
        "url": svc.storage.signed_upload_url(upload.id, upload.name, expires),
        "expires_at": expires,
        "bytes": upload.bytes,
        "content_type": upload.content_type,
        "kind": upload.kind,
        "filename": upload.filename,
    }


@router.post(
    "/v1/uploads",
    summary="Upload a video or a reference image",
    description="A file for `input.media[].url`: multipart field `file` (its file name may be "
    "in any script). It is sniffed (MP4/MOV video, JPEG/PNG/BMP/WEBP image) and checked "
    "against the media limits at once; the answer's `url` is accepted in both dialects "
    "without any allow-list entry, and only for this key. It expires with the task "
    "retention; its link stops working if the key is revoked.",
    responses={
        200: {"content": {"application/json": {"schema": _UPLOAD_ANSWER}}},
        400: {"description": "`invalid_file`: not an accepted medium, or outside the limits"},
        401: {"description": "Missing, malformed, unknown or revoked key"},
        413: {
            "description": "Over VEDIT_VIDEO_MAX_BYTES / VEDIT_IMAGE_MAX_BYTES, or "
            "`upload_quota_exceeded`: the key holds VEDIT_UPLOAD_QUOTA_BYTES of uploads"
        },
    },
    openapi_extra=_FORM,
)
async def create_upload(request: Request) -> JSONResponse:
    key = await authenticate(request)
    svc = services(request)
    s = svc.settings
    cap = intake.upload_cap(s)
    reservation = await run_in_threadpool(
        intake.reserve, svc.uploads, key.id, _declared(request), cap, s
    )
    dest = _incoming(svc)
    settled = False
    try:
        form = await receive_form(request, dest, cap=cap, limit_for=intake.limit_for(s))
        assert form.file is not None
        sniffed = await _checked(request, svc, dest, key.id)
        upload = await run_in_threadpool(
            intake.keep, dest, sniffed=sniffed, name=intake.safe_name(form.file.filename, sniffed),
            filename=intake.client_filename(form.file.filename), key_id=key.id,
            storage=svc.storage, uploads=svc.uploads, settings=s, reservation=reservation,
        )  # fmt: skip
        settled = True  # the upload's row holds its bytes now
    finally:
        dest.unlink(missing_ok=True)
        if not settled:
            await _release(svc, reservation)
    return JSONResponse(upload_answer(upload, svc))


@router.get(
    "/v1/uploads/{upload_id}/{name}",
    operation_id="downloadUpload",
    summary="Download an upload (signed URL)",
    description="The `url` an upload was answered with; no key, the signature is the key. "
    "HTTP Range is supported, so it plays in a browser.",
    responses={
        403: {"description": "Bad or expired signature, or the key that uploaded it is revoked"},
        307: {"description": "S3 storage: the bucket's presigned URL of the file"},
    },
)
async def download_upload(
    upload_id: str,
    name: str,
    request: Request,
    expires: str = Query(""),
    signature: str = Query(""),
) -> Response:
    svc = services(request)
    found = await run_in_threadpool(svc.storage.verify_upload, upload_id, name, expires, signature)
    refused = await run_in_threadpool(svc.uploads.servable, upload_id)
    if refused is not None:
        raise SignatureInvalid(refused)
    return await stored_response(svc.storage, found, request, _sniffed_type)


def _sniffed_type(path: Path) -> str:
    with path.open("rb") as f:
        sniffed = intake.sniff(f.read(64))
    return sniffed.content_type if sniffed else "application/octet-stream"


# --- DashScope's flow ---------------------------------------------------------------


@dashscope_router.get(
    "/api/v1/uploads",
    summary="Get an upload policy (DashScope)",
    description="`action=getPolicy`: a policy for one upload session of this key, signed "
    "by this server, with `upload_host` pointing at `POST /api/v1/uploads`. The official "
    "SDK asks for it when a media URL is `file://...`.",
    responses={400: {"description": "`InvalidParameter`"}, 401: {"description": "`InvalidApiKey`"}},
)
async def get_policy(
    request: Request,
    action: str = Query(json_schema_extra={"enum": ["getPolicy"]}),
    model: str = Query(json_schema_extra={"enum": [MODEL_NAME]}),
) -> dict[str, Any]:
    key = await authenticate(request)
    svc = services(request)
    if action != "getPolicy":
        raise InvalidRequest(f"action must be 'getPolicy', got {escape_invisible(action)[:64]!r}")
    if model != MODEL_NAME:
        raise InvalidRequest(
            f"model {escape_invisible(model)[:64]!r} is not supported; use {MODEL_NAME!r}"
        )
    data = policy.issue(
        svc.storage,
        key_id=key.id,
        max_bytes=intake.upload_cap(svc.settings),
        ttl_s=svc.settings.upload_policy_ttl_s,
        upload_host=svc.settings.public_base_url.rstrip("/") + "/api/v1/uploads",
    )
    return {"request_id": new_request_id(), "data": data}


@dashscope_router.post(
    "/api/v1/uploads",
    operation_id="uploadUnderPolicy",
    summary="Upload a file under a policy (DashScope's upload_host)",
    description="OSS's form upload: `OSSAccessKeyId`, `Signature`, `policy`, `key` (under "
    "the policy's `upload_dir`), `x-oss-forbid-overwrite`, then `file`, last. No bearer key: "
    "the signed policy is the credential, checked (with the key's quota) as soon as the "
    "fields before the file have arrived, before a byte of the file is stored. The file is "
    "then `oss://<key>` for that key's tasks, sent with "
    "`X-DashScope-OssResourceResolve: enable`.",
    responses={
        400: {"description": "`InvalidParameter` or `InvalidFile.*`"},
        403: {"description": "`AccessDenied`: a forged or expired policy, a key outside it"},
        409: {"description": "`FileAlreadyExists`: the key is taken and overwrite is forbidden"},
        413: {"description": "`RequestTooLarge`"},
    },
    openapi_extra=_FORM,
)
async def upload_under_policy(request: Request) -> JSONResponse:
    svc = services(request)
    s = svc.settings
    granted: list[tuple[policy.Policy, Reservation]] = []

    async def on_file(fields: dict[str, str], file: ReceivedFile) -> tuple[int, str]:
        """The policy, the key, the object key and the quota, before the file is written."""
        found = policy.verify(svc.storage, fields)
        cap = min(intake.upload_cap(s), found.max_bytes)
        declared = _declared(request)
        most = None if declared is None else declared - file.starts_at
        if most is not None and most - _closing_bytes(request) > cap:
            raise BodyTooLarge(
                f"the body declares {declared:,} bytes (Content-Length), so its file is about "
                f"{most - _closing_bytes(request):,} bytes: over the policy's {cap:,}-byte limit"
            )
        reservation = await run_in_threadpool(
            intake.reserve, svc.uploads, found.key_id, most, cap, s, "this policy was issued to"
        )
        granted.append((found, reservation))
        if _forbids_overwrite(fields) and await run_in_threadpool(
            svc.uploads.exists, fields["key"]
        ):
            raise UploadExists(
                f"key {escape_invisible(fields['key'])[:300]!r} already holds a file"
            )
        return cap, "policy's "

    dest = _incoming(svc)
    settled = False
    try:
        form = await receive_form(
            request, dest, cap=intake.upload_cap(s), limit_for=intake.limit_for(s),
            on_file=on_file,
        )  # fmt: skip
        assert form.file is not None and granted
        found, reservation = granted[0]
        object_key = form.fields["key"]
        sniffed = await _checked(request, svc, dest, found.key_id)
        try:
            upload = await run_in_threadpool(
                intake.keep, dest, sniffed=sniffed, name=intake.safe_name(object_key, sniffed),
                filename=intake.client_filename(form.file.filename), key_id=found.key_id,
                storage=svc.storage, uploads=svc.uploads, settings=s, reservation=reservation,
                object_key=object_key, replace=not _forbids_overwrite(form.fields),
            )  # fmt: skip
        except Exception as exc:
            if await run_in_threadpool(svc.uploads.exists, object_key):  # lost a race for it
                raise UploadExists(
                    f"key {escape_invisible(object_key)[:300]!r} already holds a file"
                ) from exc
            raise
        settled = True  # the upload's row holds its bytes now
    finally:
        dest.unlink(missing_ok=True)
        if granted and not settled:
            await _release(svc, granted[0][1])
    return JSONResponse({"key": object_key, "bytes": upload.bytes, "kind": upload.kind})


def _forbids_overwrite(fields: dict[str, str]) -> bool:
    return fields.get("x-oss-forbid-overwrite", "false").strip().lower() == "true"


def _closing_bytes(request: Request) -> int:
    """Bytes after the file part in a form of this request's boundary: ``CRLF--<b>--CRLF``."""
    _, options = parse_options_header(request.headers.get("content-type", ""))
    return len(options.get(b"boundary", b"")) + 8
