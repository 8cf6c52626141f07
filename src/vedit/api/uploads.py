"""Uploads into vedit's own storage, two ways (a key sees only its own uploads):

- ``POST /v1/uploads`` — multipart field ``file``, bearer key; answers the file's
  signed ``url``, which ``input.media[]`` takes in both dialects without any
  allow-list entry, and which plays in a browser (``GET /v1/uploads/{id}/{name}``);
- DashScope's flow, used by the official SDK for ``file://`` media:
  ``GET /api/v1/uploads?action=getPolicy&model=...`` (bearer key) answers a signed
  policy whose ``upload_host`` is ``POST /api/v1/uploads`` here (the policy is the
  credential there); the SDK then sends ``oss://<key>`` with
  ``X-DashScope-OssResourceResolve: enable``.

Each file is streamed to disk (``api/multipart.py``), sniffed, and checked against
the media limits before it is kept (``uploads/intake.py``); it expires with the
task retention (``VEDIT_TASK_TTL_S``), or later when a task uses it.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from vedit import MODEL_NAME
from vedit.api.deps import Services, authenticate, services
from vedit.api.files import stored_response
from vedit.api.multipart import receive_form
from vedit.errors import BodyTooLarge, InvalidRequest, UploadDenied, UploadExists
from vedit.keys import key_is_live
from vedit.media.urls import escape_invisible
from vedit.tasks.ids import new_request_id
from vedit.uploads import intake, policy
from vedit.uploads.models import Upload

router = APIRouter(tags=["uploads"])

UPLOAD_PATHS = frozenset({"/v1/uploads", "/api/v1/uploads"})
"""Paths whose bodies get ``VEDIT_UPLOAD_BODY_TIMEOUT_S`` (``api/http_server.py``)."""

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
    },
}


def _incoming(svc: Services) -> Path:
    """Where a file being received is written (local storage: the uploads folder, so keeping
    it is a rename)."""
    return svc.storage.incoming_dir / secrets.token_hex(16)


async def _receive_checked(
    request: Request, svc: Services, dest: Path
) -> tuple[dict[str, str], intake.Sniffed, str]:
    """The form's fields, and its file at ``dest`` once it passed the media checks."""
    s = svc.settings
    form = await receive_form(
        request, dest, cap=intake.upload_cap(s), limit_for=intake.limit_for(s)
    )
    assert form.file is not None
    sniffed = await run_in_threadpool(intake.check_content, dest, s)
    return form.fields, sniffed, form.file.filename


def upload_answer(upload: Upload, svc: Services) -> dict[str, Any]:
    expires = int(upload.expires_at)
    return {
        "id": upload.id,
        "url": svc.storage.signed_upload_url(upload.id, upload.name, expires),
        "expires_at": expires,
        "bytes": upload.bytes,
        "content_type": upload.content_type,
        "kind": upload.kind,
    }


@router.post(
    "/v1/uploads",
    summary="Upload a video or a reference image",
    description="A file for `input.media[].url`: multipart field `file`. It is sniffed "
    "(MP4/MOV video, JPEG/PNG/BMP/WEBP image) and checked against the media limits at once; "
    "the answer's `url` is accepted in both dialects without any allow-list entry, and only "
    "for this key. It expires with the task retention.",
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
    await run_in_threadpool(intake.check_quota, svc.uploads, key.id, svc.settings)
    dest = _incoming(svc)
    try:
        _fields, sniffed, filename = await _receive_checked(request, svc, dest)
        upload = await run_in_threadpool(
            intake.keep, dest, sniffed=sniffed, name=intake.safe_name(filename, sniffed),
            key_id=key.id, storage=svc.storage, uploads=svc.uploads, settings=svc.settings,
        )  # fmt: skip
    finally:
        dest.unlink(missing_ok=True)
    return JSONResponse(upload_answer(upload, svc))


@router.get(
    "/v1/uploads/{upload_id}/{name}",
    operation_id="downloadUpload",
    summary="Download an upload (signed URL)",
    description="The `url` an upload was answered with; no key, the signature is the key. "
    "HTTP Range is supported, so it plays in a browser.",
    responses={
        403: {"description": "Bad or expired signature"},
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
    storage = services(request).storage
    found = await run_in_threadpool(storage.verify_upload, upload_id, name, expires, signature)
    return await stored_response(storage, found, request, _sniffed_type)


def _sniffed_type(path: Path) -> str:
    with path.open("rb") as f:
        sniffed = intake.sniff(f.read(64))
    return sniffed.content_type if sniffed else "application/octet-stream"


# --- DashScope's flow ---------------------------------------------------------------


@router.get(
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


@router.post(
    "/api/v1/uploads",
    operation_id="uploadUnderPolicy",
    summary="Upload a file under a policy (DashScope's upload_host)",
    description="OSS's form upload: `OSSAccessKeyId`, `Signature`, `policy`, `key` (under "
    "the policy's `upload_dir`), `x-oss-forbid-overwrite`, `file`. No bearer key: the "
    "signed policy is the credential. The file is then `oss://<key>` for that key's tasks, "
    "sent with `X-DashScope-OssResourceResolve: enable`.",
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
    dest = _incoming(svc)
    try:
        fields, sniffed, _filename = await _receive_checked(request, svc, dest)
        granted = policy.verify(svc.storage, fields)
        if not await run_in_threadpool(key_is_live, svc.keys, granted.key_id):
            raise UploadDenied("the API key this policy was issued to is revoked")
        if dest.stat().st_size > granted.max_bytes:
            raise BodyTooLarge(f"the file is over the policy's {granted.max_bytes:,}-byte limit")
        object_key = fields["key"]
        if await run_in_threadpool(svc.uploads.exists, object_key):
            if fields.get("x-oss-forbid-overwrite", "false").lower() == "true":
                raise UploadExists(
                    f"key {escape_invisible(object_key)[:300]!r} already holds a file"
                )
            old = await run_in_threadpool(svc.uploads.replace_object, object_key)
            if old is not None:
                await run_in_threadpool(svc.storage.delete_upload, old)
        name = intake.safe_name(object_key, sniffed)
        try:
            upload = await run_in_threadpool(
                intake.keep, dest, sniffed=sniffed, name=name, key_id=granted.key_id,
                storage=svc.storage, uploads=svc.uploads, settings=svc.settings,
                object_key=object_key,
            )  # fmt: skip
        except Exception as exc:
            if await run_in_threadpool(svc.uploads.exists, object_key):  # lost a race for it
                raise UploadExists(
                    f"key {escape_invisible(object_key)[:300]!r} already holds a file"
                ) from exc
            raise
    finally:
        dest.unlink(missing_ok=True)
    return JSONResponse({"key": object_key, "bytes": upload.bytes, "kind": upload.kind})
