"""Taking an uploaded file in: what it is (sniffed from its bytes), its cap, its checks.

An upload passes the same checks as a fetched medium (``media/probe.py``), at once,
so a clip that is too short is refused when it is uploaded, not when a task runs.
What the client says the file is (its name, its Content-Type) is never trusted.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from vedit.config import Settings
from vedit.errors import TaskFailure, UploadQuotaExceeded, UploadRejected
from vedit.storage.base import Storage
from vedit.uploads.models import Upload
from vedit.uploads.store import UploadStore, new_upload_id

SNIFF_BYTES = 64
ACCEPTED = "a video (MP4 or MOV) or an image (JPEG, PNG, BMP or WEBP)"
# Atoms a QuickTime file may open with when it has no ftyp.
_QT_ATOMS = (b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot")


@dataclass(frozen=True)
class Sniffed:
    kind: str  # "video" | "image"
    content_type: str


def sniff(head: bytes) -> Sniffed | None:
    """What the first bytes of a file show it to be, among the accepted media."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return Sniffed("image", "image/png")
    if head.startswith(b"\xff\xd8\xff"):
        return Sniffed("image", "image/jpeg")
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return Sniffed("image", "image/webp")
    if head.startswith(b"BM") and len(head) >= 26:
        return Sniffed("image", "image/bmp")
    if head[4:8] == b"ftyp":
        return Sniffed("video", "video/quicktime" if head[8:12] == b"qt  " else "video/mp4")
    if head[4:8] in _QT_ATOMS:
        return Sniffed("video", "video/quicktime")
    return None


def byte_limit(kind: str, settings: Settings) -> int:
    return settings.video_max_bytes if kind == "video" else settings.image_max_bytes


def upload_cap(settings: Settings) -> int:
    """The cap of an upload before its first bytes show what it is."""
    return max(settings.video_max_bytes, settings.image_max_bytes)


def limit_for(settings: Settings) -> Callable[[bytes], int]:
    """``limit_for(head)`` for :func:`vedit.api.multipart.receive_form`: the cap of the kind
    of file the head shows; a head that is no accepted medium is refused at once."""

    def limit(head: bytes) -> int:
        found = sniff(head)
        if found is None:
            raise UploadRejected(f"the file is not {ACCEPTED}; it starts with {_shown(head)}")
        return byte_limit(found.kind, settings)

    return limit


def _shown(head: bytes) -> str:
    text = head[:16]
    if text and all(32 <= b < 127 for b in text):
        return repr(text.decode())
    return text.hex(" ") or "nothing (empty)"


def check_content(path: Path, settings: Settings, label: str | None = None) -> Sniffed:
    """Sniff and check a received file against the media limits; raises
    :class:`UploadRejected` with the limit and the value measured."""
    # PyAV is imported on the first upload, not with the API: a server whose media stack is
    # broken still starts far enough to say so (its workers report it, dispatch/local.py).
    from vedit.media.probe import load_image, probe_video, what_was_received

    with path.open("rb") as f:
        found = sniff(f.read(SNIFF_BYTES))
    if found is None:
        raise UploadRejected(f"the file is not {ACCEPTED}; received {what_was_received(path)}")
    label = label or f"the uploaded file ({found.kind})"
    try:
        if found.kind == "video":
            probe_video(path, settings, label)
        else:
            load_image(path, settings, label)
    except TaskFailure as exc:
        raise UploadRejected(exc.message, media_code=exc.code) from None
    return found


def check_quota(uploads: UploadStore, key_id: int, settings: Settings, adding: int = 0) -> None:
    """Refuse when ``key_id``'s live uploads, plus ``adding`` bytes, pass the quota."""
    quota = settings.upload_quota_bytes
    if quota <= 0:
        return
    held = uploads.bytes_held(key_id)
    if held + adding > quota or (adding == 0 and held >= quota):
        raise UploadQuotaExceeded(
            f"this key's uploads would hold {held + adding:,} bytes; at most {quota:,} are "
            f"kept per key (VEDIT_UPLOAD_QUOTA_BYTES): uploads are freed as they expire "
            f"(VEDIT_TASK_TTL_S = {settings.task_ttl_s:g} s)"
        )


def safe_name(filename: str, sniffed: Sniffed) -> str:
    """The name an upload shows in its URL: the client's base name in URL-safe characters."""
    base = filename.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(c if c.isascii() and (c.isalnum() or c in "._-") else "_" for c in base)
    name = name.strip("._")[:100]
    return name or ("video" if sniffed.kind == "video" else "image")


def keep(
    received: Path,
    *,
    sniffed: Sniffed,
    name: str,
    key_id: int,
    storage: Storage,
    uploads: UploadStore,
    settings: Settings,
    object_key: str | None = None,
) -> Upload:
    """Move a checked file into storage and record it; it lives ``task_ttl_s``."""
    check_quota(uploads, key_id, settings, received.stat().st_size)
    now = time.time()
    upload = Upload(
        id=new_upload_id(),
        key_id=key_id,
        object_key=object_key,
        name=name,
        kind=sniffed.kind,
        content_type=sniffed.content_type,
        bytes=received.stat().st_size,
        created_at=now,
        expires_at=now + settings.task_ttl_s,
    )
    storage.keep_upload(upload.id, received, sniffed.content_type)
    try:
        uploads.add(upload)
    except Exception:
        storage.delete_upload(upload.id)
        raise
    return upload
