"""The browser page at ``/``: plain HTML, CSS and JavaScript shipped in ``api/page/``.

No build step and no CDN: the files are served as they are, under a Content-Security-Policy
that lets the page talk only to this server (media may play from any http(s) URL, since a
source may be one). The page is a client of the public API like any other; nothing here
reads a task or a key. HEAD is answered like GET (``api/app.py``).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter

from vedit.api.files import RangedFileResponse as FileResponse
from vedit.api.wire import AnyfastRoute
from vedit.errors import RouteNotFound
from vedit.media.urls import escape_invisible

PAGE_DIR = Path(__file__).with_name("page")
ASSETS = {
    "page.js": "text/javascript; charset=utf-8",
    "page.css": "text/css; charset=utf-8",
    "icon.svg": "image/svg+xml",
}
CSP = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self'",
        "img-src 'self' blob: data: http: https:",
        "media-src 'self' blob: http: https:",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    )
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",  # revalidated (ETag) so an upgrade shows at once
}

router = APIRouter(route_class=AnyfastRoute)


@router.get("/", include_in_schema=False)
def page() -> FileResponse:
    """The page itself."""
    return FileResponse(
        PAGE_DIR / "index.html", media_type="text/html; charset=utf-8", headers=HEADERS
    )


@router.get("/page/{name}", include_in_schema=False)
def asset(name: str) -> FileResponse:
    """One of the page's own files; any other name is a 404."""
    media_type = ASSETS.get(name)
    if media_type is None:
        raise RouteNotFound(f"there is no page asset '{escape_invisible(name)[:100]}'")
    return FileResponse(PAGE_DIR / name, media_type=media_type, headers=HEADERS)
