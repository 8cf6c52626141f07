"""Taking an uploaded file in: what it is (sniffed from its bytes), its cap, its checks,
its place in the key's quota.

An upload passes the same checks as a fetched medium (``media/probe.py``), at once, so a
clip that is too short is refused when it is uploaded, not when a task runs; but in an
order that bounds what a hostile file costs (``media/bounded.py``):

1. the key's quota is reserved for the declared size before the body is read
   (:func:`reserve`), so concurrent uploads cannot pass the quota together;
2. :func:`inspect` sniffs the file and checks the size its header declares against the
   limits, without decoding anything, and says what the rest may cost in memory;
3. :func:`verify` decodes what must be decoded, within that cost (the API runs it under
   its :class:`~vedit.media.bounded.DecodeBudget`);
4. :func:`keep` moves the file into storage and records it in place of its reservation.

What the client says the file is (its name, its Content-Type) is never trusted; its
name is kept as metadata and shown, made safe, in the upload's URL (:func:`safe_name`).
"""

from __future__ import annotations

import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from vedit.config import Settings
from vedit.errors import (
    MediaFormat,
    TaskFailure,
    UploadDenied,
    UploadQuotaExceeded,
    UploadRejected,
)
from vedit.media.bounded import (
    ImageHeader,
    check_image_size,
    decode_cost,
    read_header,
    verify_image,
    video_cost,
)
from vedit.media.limits import MediaLimits
from vedit.media.sniff import SNIFF_BYTES, Sniffed, refused_format, shown, sniff
from vedit.storage.base import Storage
from vedit.uploads.models import Upload
from vedit.uploads.store import KeyRevoked, QuotaFull, Reservation, UploadStore, new_upload_id

ACCEPTED = "a video (MP4 or MOV) or an image (JPEG, PNG, BMP or WEBP)"
MAX_FILENAME = 255  # characters of the client's file name kept as metadata
MAX_URL_NAME = 100  # characters of the name shown in the upload's URL
# How long a reservation outlives the longest upload body: the checks after it (a decode
# may wait its turn for the budget).
RESERVATION_SLACK_S = 600.0


@dataclass(frozen=True)
class Inspected:
    """A received file, sniffed and its header checked: what :func:`verify` will cost."""

    sniffed: Sniffed
    header: ImageHeader | None  # an image's; None for a video
    cost: int  # bytes :func:`verify` may hold beyond its fixed ~1 MB


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
            known = refused_format(head)
            if known:
                raise UploadRejected(
                    f"the file is {known}, which is not accepted: send {ACCEPTED}; convert it "
                    f"first, e.g. with `vedit convert IN OUT.mp4` (or `vedit submit --convert`)"
                )
            raise UploadRejected(f"the file is not {ACCEPTED}; it starts with {shown(head)}")
        return byte_limit(found.kind, settings)

    return limit


def _rejected(exc: TaskFailure) -> UploadRejected:
    return UploadRejected(exc.message, media_code=exc.code)


def inspect(path: Path, settings: Settings, label: str | None = None) -> Inspected:
    """Sniff a received file and check the size its header declares against the limits,
    decoding nothing; raises :class:`UploadRejected` with the limit and the value seen."""
    from vedit.media.probe import what_was_received

    with path.open("rb") as f:
        found = sniff(f.read(SNIFF_BYTES))
    if found is None:
        raise UploadRejected(f"the file is not {ACCEPTED}; received {what_was_received(path)}")
    label = label or f"the uploaded file ({found.kind})"
    size = path.stat().st_size
    if found.kind == "video":
        # The demuxer's index grows with the file: its size is counted with the frame's.
        return Inspected(found, None, video_cost(MediaLimits.of(settings)) + size)
    header = read_header(path)
    if header is None:
        raise UploadRejected(
            f"{label}: not an image of an accepted format (JPEG, PNG, BMP, WEBP) with a "
            f"readable header; received {what_was_received(path)}",
            media_code=MediaFormat.code,
        )
    try:
        check_image_size(header.width, header.height, MediaLimits.of(settings), label)
    except TaskFailure as exc:
        raise _rejected(exc) from None
    return Inspected(found, header, decode_cost(header, size))


def verify(path: Path, inspected: Inspected, settings: Settings, label: str | None = None) -> None:
    """Check the rest of the file (that it decodes; a video's duration, frame rate...),
    holding at most ``inspected.cost`` bytes; raises :class:`UploadRejected`."""
    # PyAV is imported on the first upload, not with the API: a server whose media stack is
    # broken still starts far enough to say so (its workers report it, dispatch/local.py).
    from vedit.media.probe import probe_video, what_was_received

    label = label or f"the uploaded file ({inspected.sniffed.kind})"
    try:
        if inspected.header is None:
            probe_video(path, MediaLimits.of(settings), label)
        else:
            verify_image(path, inspected.header, label, what_was_received(path))
    except TaskFailure as exc:
        raise _rejected(exc) from None


def check_content(path: Path, settings: Settings, label: str | None = None) -> Sniffed:
    """:func:`inspect`, then :func:`verify`: the checks of one file, for a caller that
    checks one at a time (``vedit edit``)."""
    inspected = inspect(path, settings, label)
    verify(path, inspected, settings, label)
    return inspected.sniffed


def quota_exceeded(held: int, adding: int, settings: Settings) -> UploadQuotaExceeded:
    return UploadQuotaExceeded(
        f"this key's uploads would hold {held + adding:,} bytes ({held:,} held or arriving, "
        f"{adding:,} more); at most {settings.upload_quota_bytes:,} are kept per key "
        f"(VEDIT_UPLOAD_QUOTA_BYTES): uploads are freed as they expire "
        f"(VEDIT_TASK_TTL_S = {settings.task_ttl_s:g} s)"
    )


def reserve(
    uploads: UploadStore,
    key_id: int,
    declared: int | None,
    cap: int,
    settings: Settings,
    whose: str = "this upload is for",
) -> Reservation:
    """Reserve the key's quota for an upload: its declared size (the body's Content-Length:
    the file is no larger), or ``cap`` when none is declared. Raises
    :class:`UploadQuotaExceeded`, or :class:`UploadDenied` for a revoked key."""
    size = min(declared, cap) if declared is not None else cap
    try:
        return uploads.reserve(
            key_id,
            size,
            quota=settings.upload_quota_bytes,
            ttl_s=settings.upload_longest_s + RESERVATION_SLACK_S,
        )
    except QuotaFull as full:
        raise quota_exceeded(full.held, size, settings) from None
    except KeyRevoked:
        raise UploadDenied(f"the API key {whose} is revoked") from None


def safe_name(filename: str, sniffed: Sniffed) -> str:
    """The name an upload shows in its URL: the client's base name with letters, digits
    and marks of any script kept (NFC), ``-``, ``_`` and ``.``; anything else becomes
    ``_``; a name with no letter or digit left is the kind (``video.mp4``)."""
    base = unicodedata.normalize("NFC", filename.replace("\\", "/").rsplit("/", 1)[-1])
    stem, dot, ext = base.rpartition(".")
    if not dot:
        stem, ext = base, ""
    stem = "".join(c if unicodedata.category(c)[0] in "LNM" or c in "-_." else "_" for c in stem)
    stem = stem.strip(".")
    if not any(unicodedata.category(c)[0] in "LN" for c in stem):
        stem = sniffed.kind
    ext = "".join(c for c in ext if c.isascii() and c.isalnum())[:10]
    name = stem[: MAX_URL_NAME - len(ext) - 1].rstrip(".")
    return f"{name}.{ext}" if ext else name


def client_filename(filename: str) -> str | None:
    """The client's file name as kept (metadata, never a path): its last part, without
    control characters, at most :data:`MAX_FILENAME` characters; None when empty."""
    base = filename.replace("\\", "/").rsplit("/", 1)[-1]
    kept = "".join(c for c in base if unicodedata.category(c) not in ("Cc", "Cs"))
    return kept[:MAX_FILENAME] or None


def keep(
    received: Path,
    *,
    sniffed: Sniffed,
    name: str,
    key_id: int,
    storage: Storage,
    uploads: UploadStore,
    settings: Settings,
    reservation: Reservation | None = None,
    filename: str | None = None,
    object_key: str | None = None,
    replace: bool = False,
) -> Upload:
    """Move a checked file into storage and record it in place of its reservation; it lives
    ``task_ttl_s``. ``replace``: it takes the place of the upload at ``object_key``, whose
    file is deleted."""
    now = time.time()
    size = received.stat().st_size
    upload = Upload(
        id=new_upload_id(),
        key_id=key_id,
        object_key=object_key,
        name=name,
        filename=filename,
        kind=sniffed.kind,
        content_type=sniffed.content_type,
        bytes=size,
        created_at=now,
        expires_at=now + settings.task_ttl_s,
    )
    storage.keep_upload(upload.id, received, sniffed.content_type)
    try:
        old = uploads.settle(
            upload, reservation, quota=settings.upload_quota_bytes, replace=replace
        )
    except QuotaFull as full:
        storage.delete_upload(upload.id)
        raise quota_exceeded(full.held, size, settings) from None
    except KeyRevoked:
        storage.delete_upload(upload.id)
        raise UploadDenied("the API key this upload is for was revoked meanwhile") from None
    except Exception:
        storage.delete_upload(upload.id)
        raise
    if old is not None:
        storage.delete_upload(old)
    return upload
