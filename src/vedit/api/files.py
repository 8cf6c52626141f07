"""Signed downloads of results, with HTTP Range support; no key needed, the signature is the key.

HEAD is answered too (every GET route takes HEAD: ``api/app.py``).
"""

from __future__ import annotations

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse

from vedit.api.deps import services

router = APIRouter(tags=["files"])


_DOC = {
    "summary": "Download a result (signed URL)",
    "responses": {403: {"description": "Bad or expired signature"}},
}


@router.get("/v1/files/{name}", operation_id="downloadResult", **_DOC)  # type: ignore[arg-type]
def download(
    name: str, request: Request, expires: str = Query(""), signature: str = Query("")
) -> FileResponse:
    path = services(request).storage.verify(name, expires, signature)
    return FileResponse(path, media_type="video/mp4", filename=name)
