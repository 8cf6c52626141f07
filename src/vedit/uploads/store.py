"""Uploaded files: their rows, and how a media URL names one.

A task's media URL names an upload in one of two ways, both kept as sent in the task:

- the URL that ``POST /v1/uploads`` answered (``<public_base_url>/v1/uploads/<id>/<name>?...``);
- ``oss://<object_key>``, the URL of DashScope's upload flow, with the header
  ``X-DashScope-OssResourceResolve: enable`` on the create.

Either is resolved to the stored file, and only for the key that uploaded it: the
worker copies the file from storage and never fetches it over HTTP.
"""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from sqlalchemy import Engine, delete, func, select, update
from sqlalchemy.orm import sessionmaker

from vedit.errors import InvalidRequest
from vedit.media.urls import escape_invisible
from vedit.storage.base import UPLOADS_PREFIX, Storage
from vedit.uploads.models import Upload

OSS_SCHEME = "oss://"
OSS_RESOLVE_HEADER = "X-DashScope-OssResourceResolve"
UPLOAD_ID = re.compile(r"up_[0-9a-f]{32}")
_UPLOAD_PATH = re.compile(UPLOADS_PREFIX + r"(?P<id>up_[0-9a-f]{32})/(?P<name>[^/]+)")
KINDS = {"video": "video", "reference_image": "image"}  # media type -> upload kind


def new_upload_id() -> str:
    return "up_" + secrets.token_hex(16)


@dataclass(frozen=True)
class UploadRef:
    """What a media URL names: an upload id, or an object key of DashScope's flow."""

    upload_id: str | None = None
    object_key: str | None = None

    def __str__(self) -> str:
        return self.upload_id or f"{OSS_SCHEME}{self.object_key}"


def upload_ref(url: str, public_base_url: str, storage: Storage) -> UploadRef | None:
    """The upload ``url`` names, or None when it is an ordinary URL to fetch.

    An upload URL is one this server signed (whatever host it names: a worker need not
    know the API's public address), or any URL under ``<public_base_url>/v1/uploads/``
    (a made-up one there is refused, never fetched).
    """
    if url[: len(OSS_SCHEME)].lower() == OSS_SCHEME:
        return UploadRef(object_key=url[len(OSS_SCHEME) :])
    parts = urlsplit(url)
    found = _UPLOAD_PATH.fullmatch(parts.path)
    if found:
        query = parse_qs(parts.query)
        expires, signature = query.get("expires", [""])[0], query.get("signature", [""])[0]
        if storage.signs_upload(found["id"], found["name"], expires, signature):
            return UploadRef(upload_id=found["id"])
    base = public_base_url.rstrip("/") + UPLOADS_PREFIX
    if public_base_url and url.startswith(base):
        return UploadRef(upload_id=url[len(base) :].partition("/")[0].partition("?")[0])
    return None


class UploadStore:
    """The ``uploads`` rows; the files themselves are the storage's."""

    def __init__(self, engine: Engine) -> None:
        self.sessions = sessionmaker(engine, expire_on_commit=False)

    def add(self, upload: Upload) -> None:
        with self.sessions.begin() as s:
            s.add(upload)

    def exists(self, object_key: str) -> bool:
        with self.sessions() as s:
            return s.scalar(select(Upload.id).where(Upload.object_key == object_key)) is not None

    def find(self, ref: UploadRef, key_id: int, now: float | None = None) -> Upload | None:
        """The live upload ``ref`` names, if it is ``key_id``'s (else None: the answer is
        the same for an unknown, an expired and another key's upload)."""
        now = time.time() if now is None else now
        if ref.upload_id is not None:
            if not UPLOAD_ID.fullmatch(ref.upload_id):
                return None
            where = Upload.id == ref.upload_id
        else:
            where = Upload.object_key == ref.object_key
        with self.sessions() as s:
            row = s.scalar(select(Upload).where(where))
        if row is None or row.key_id != key_id or row.expires_at <= now:
            return None
        return row

    def bytes_held(self, key_id: int, now: float | None = None) -> int:
        """Bytes of ``key_id``'s live uploads."""
        now = time.time() if now is None else now
        with self.sessions() as s:
            held = s.scalar(
                select(func.sum(Upload.bytes)).where(
                    Upload.key_id == key_id, Upload.expires_at > now
                )
            )
        return int(held or 0)

    def check_media(
        self,
        media: list[dict[str, str]],
        key_id: int,
        *,
        public_base_url: str,
        storage: Storage,
        oss_resolve: bool,
        now: float | None = None,
    ) -> list[str]:
        """The ids of the uploads a create's ``media`` names; raises :class:`InvalidRequest`
        naming the item when one is not this key's live upload, is of the wrong kind, or is
        an ``oss://`` URL sent without the resolve header."""
        used: list[str] = []
        for i, item in enumerate(media):
            ref = upload_ref(item["url"], public_base_url, storage)
            if ref is None:
                continue
            where = f"input.media[{i}].url"
            if ref.object_key is not None and not oss_resolve:
                raise InvalidRequest(
                    f"{where} is an oss:// URL; it is resolved only with the header "
                    f"{OSS_RESOLVE_HEADER}: enable"
                )
            found = self.find(ref, key_id, now)
            if found is None:
                shown = escape_invisible(str(ref))[:300]
                raise InvalidRequest(
                    f"{where} names no upload of this key: {shown} is unknown, expired or "
                    "another key's (upload the file again)"
                )
            wanted = KINDS[item["type"]]
            if found.kind != wanted:
                raise InvalidRequest(
                    f"{where} is an upload of {'a' if found.kind == 'video' else 'an'} "
                    f"{found.kind} ({found.content_type}), but input.media[{i}] is the "
                    f"{item['type']}"
                )
            used.append(found.id)
        return used

    def replace_object(self, object_key: str) -> str | None:
        """Forget the upload at ``object_key`` (an overwrite); returns its id, for its file."""
        with self.sessions.begin() as s:
            old = s.scalar(select(Upload.id).where(Upload.object_key == object_key))
            if old is not None:
                s.execute(delete(Upload).where(Upload.id == old))
        return old

    def keep_until(self, upload_ids: list[str], until: float) -> None:
        """Uploads a task uses live at least as long as the task."""
        if not upload_ids:
            return
        with self.sessions.begin() as s:
            s.execute(
                update(Upload)
                .where(Upload.id.in_(upload_ids), Upload.expires_at < until)
                .values(expires_at=until)
            )

    def purge_expired(self, now: float | None = None) -> list[str]:
        """Delete uploads past ``expires_at``; returns their ids so their files can go too."""
        now = time.time() if now is None else now
        with self.sessions.begin() as s:
            ids = list(s.scalars(select(Upload.id).where(Upload.expires_at <= now)))
            if ids:
                s.execute(delete(Upload).where(Upload.id.in_(ids)))
        return ids
