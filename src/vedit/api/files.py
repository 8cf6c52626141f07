"""Signed downloads of results, with HTTP Range support; no key needed, the signature is the key.

How a signed link is answered depends on the storage, and only here: a local file is
sent as it is; an object of an S3 bucket is redirected to (307) as a presigned URL
of the bucket that expires with the link, or, with ``VEDIT_S3_PROXY=true``, streamed
from the bucket, the client's ``Range`` passed on. HEAD is answered too (every GET
route takes HEAD: ``api/app.py``). A ``Range`` that cannot be served is an error like
any other, in JSON: 400 when malformed, 416 past the end (with ``Content-Range``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, RedirectResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.responses import MalformedRangeHeader
from starlette.responses import RangeNotSatisfiable as StarletteRangeNotSatisfiable

from vedit.api.deps import services
from vedit.api.wire import AnyfastRoute
from vedit.errors import InvalidRequest, RangeNotSatisfiable, SignatureInvalid
from vedit.media.urls import escape_invisible
from vedit.storage import Storage
from vedit.storage.base import StoredFile

router = APIRouter(tags=["files"], route_class=AnyfastRoute)


_DOC = {
    "summary": "Download a result (signed URL)",
    "responses": {
        403: {"description": "Bad or expired signature, or the key that made it is revoked"},
        307: {"description": "S3 storage: the bucket's presigned URL of the file"},
    },
}


@router.get("/v1/files/{name}", operation_id="downloadResult", **_DOC)  # type: ignore[arg-type]
async def download(
    name: str, request: Request, expires: str = Query(""), signature: str = Query("")
) -> Response:
    svc = services(request)
    storage = svc.storage
    found = await run_in_threadpool(storage.verify, name, expires, signature)
    refused = await run_in_threadpool(svc.store.result_servable, name.removesuffix(".mp4"))
    if refused is not None:
        raise SignatureInvalid(refused)
    return await stored_response(storage, found, request, lambda _path: "video/mp4", filename=name)


def _shown(range_header: str) -> str:
    return repr(escape_invisible(range_header)[:100])


def range_past_the_end(range_header: str, size: int | str) -> RangeNotSatisfiable:
    size_text = f"{size:,}" if isinstance(size, int) else size
    return RangeNotSatisfiable(
        f"the Range header {_shown(range_header)} starts past the end of the file, which "
        f"is {size_text} bytes",
        size=size,
    )


class RangedFileResponse(FileResponse):
    """Starlette's file answer, whose Range errors are vedit's (JSON, in the dialect)
    instead of Starlette's plain text."""

    @classmethod
    def _parse_range_header(cls, http_range: str, file_size: int) -> list[tuple[int, int]]:
        try:
            return super()._parse_range_header(http_range, file_size)
        except MalformedRangeHeader:
            raise InvalidRequest(
                f"the Range header {_shown(http_range)} is malformed; send "
                "'bytes=<first>-<last>' with first <= last, 'bytes=<first>-' or "
                "'bytes=-<suffix length>' (ranges separated by commas)"
            ) from None
        except StarletteRangeNotSatisfiable:
            raise range_past_the_end(http_range, file_size) from None


async def stored_response(
    storage: Storage,
    found: StoredFile,
    request: Request,
    media_type: Callable[[Path], str],
    filename: str | None = None,
) -> Response:
    """The answer to a valid signed link: the file, a redirect to the store, or the object
    streamed from the store. ``media_type(path)`` names a local file's type; an object of
    the store carries its own."""
    path = storage.local_path(found)
    if path is not None:
        kind = await run_in_threadpool(media_type, path)
        return RangedFileResponse(path, media_type=kind, filename=filename)
    url = await run_in_threadpool(storage.redirect_url, found, filename)
    if url is not None:
        return RedirectResponse(url, status_code=307, headers={"Cache-Control": "no-store"})
    got = await run_in_threadpool(
        storage.read, found, request.headers.get("range"), request.method == "HEAD"
    )
    headers = dict(got.headers)
    if got.status == 416:
        size = headers.get("Content-Range", "").rpartition("/")[2]
        sent = request.headers.get("range", "")
        raise range_past_the_end(sent, int(size) if size.isdigit() else size or "*")
    if filename:
        headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    if got.body is None:
        return Response(status_code=got.status, headers=headers)
    return StreamingResponse(got.body, status_code=got.status, headers=headers)
