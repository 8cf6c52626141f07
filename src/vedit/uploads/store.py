"""Uploaded files: their rows, their reservations against the quota, and how a media URL
names one.

A task's media URL names an upload in one of two ways, both kept as sent in the task:

- the URL that ``POST /v1/uploads`` answered (``<public_base_url>/v1/uploads/<id>/<name>?...``);
- ``oss://<object_key>``, the URL of DashScope's upload flow, with the header
  ``X-DashScope-OssResourceResolve: enable`` on the create.

Either is resolved to the stored file, and only for the key that uploaded it: the
worker copies the file from storage and never fetches it over HTTP. An upload URL is
recognised in whatever form a client, a proxy or this server would read it the same
(:func:`upload_ref`): a rewritten one (case, percent-encoding, dot segments, slashes,
the host's spelling) is still the upload it names, so it is refused for another key,
never fetched.

A key's bytes (live uploads, plus reservations of uploads in progress) stay under its
quota: an upload reserves its declared size before its body is read, and the reservation
is replaced by the upload's row (of its real size) when the file is kept. Each of these
steps writes the key's row first, so one key's quota steps take turns (PostgreSQL: the
row's lock; SQLite: the database's write lock).
"""

from __future__ import annotations

import ipaddress
import re
import secrets
import socket
import time
from dataclasses import dataclass
from urllib.parse import SplitResult, parse_qs, unquote, urlsplit

from sqlalchemy import Engine, delete, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from vedit.errors import InvalidRequest
from vedit.keys import ApiKey
from vedit.media.urls import escape_invisible
from vedit.storage.base import UPLOADS_PREFIX, Storage
from vedit.uploads.models import Upload, UploadReservation

OSS_SCHEME = "oss://"
OSS_RESOLVE_HEADER = "X-DashScope-OssResourceResolve"
UPLOAD_ID = re.compile(r"up_[0-9a-f]{32}")
_UPLOAD_PATH = re.compile(
    re.escape(UPLOADS_PREFIX) + r"(?P<id>[^/]+)/(?P<name>[^/]+)", re.IGNORECASE
)
KINDS = {"video": "video", "reference_image": "image"}  # media type -> upload kind
_DEFAULT_PORTS = {"http": 80, "https": 443}
_MAX_SIGNED_TRIES = 8  # expires/signature values tried, each, from a query that repeats them


def new_upload_id() -> str:
    return "up_" + secrets.token_hex(16)


@dataclass(frozen=True)
class UploadRef:
    """What a media URL names: an upload id, or an object key of DashScope's flow."""

    upload_id: str | None = None
    object_key: str | None = None

    def __str__(self) -> str:
        return self.upload_id or f"{OSS_SCHEME}{self.object_key}"


@dataclass(frozen=True)
class Reservation:
    """Bytes held against a key's quota for an upload in progress."""

    id: str
    key_id: int
    bytes: int


class QuotaFull(Exception):
    """The key's live uploads and reservations (``held`` bytes) leave no room."""

    def __init__(self, held: int) -> None:
        super().__init__(held)
        self.held = held


class KeyRevoked(Exception):
    """The key is revoked (or gone): it may not upload."""


def _normalized(path: str) -> str:
    """``path`` with backslashes as slashes, dot segments resolved, empty segments (runs of
    slashes, a trailing slash) dropped: how a client or a router may read it."""
    segments: list[str] = []
    for segment in path.replace("\\", "/").split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            if segments:
                segments.pop()
            continue
        segments.append(segment)
    return "/" + "/".join(segments)


def _readings(path: str) -> list[str]:
    """The ways a URL's path may be read: percent-decoded once (as this server's router
    does), and decoded until it no longer changes; each normalized."""
    once = unquote(path)
    full = once
    for _ in range(4):
        again = unquote(full)
        if again == full:
            break
        full = again
    return list(dict.fromkeys((_normalized(once), _normalized(full))))


def _host(host: str) -> str:
    """A host name or address in one spelling: lower case, no trailing dot, IDNA, IPv4 in
    dotted quads (``127.1``, ``0x7f.0.0.1`` and ``2130706433`` are 127.0.0.1)."""
    host = host.lower().rstrip(".")
    try:
        return str(ipaddress.ip_address(host.strip("[]").partition("%")[0]))
    except ValueError:
        pass
    if host and all(label.isalnum() for label in host.split(".")):
        try:
            return socket.inet_ntoa(socket.inet_aton(host))
        except OSError:
            pass
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError:
        return host


def _origin(parts: SplitResult) -> tuple[str, str, int | None] | None:
    """A URL's scheme, host and port (the scheme's default when none is given)."""
    scheme = parts.scheme.lower()
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        return None
    if not host:
        return None
    return scheme, _host(host), port or _DEFAULT_PORTS.get(scheme)


def upload_ref(url: str, public_base_url: str, storage: Storage) -> UploadRef | None:
    """The upload ``url`` names, or None when it is an ordinary URL to fetch.

    An upload URL is one this server signed, whatever host it names (a worker need not
    know the API's public address), or any URL under ``<public_base_url>/v1/uploads/``
    (a made-up one there is refused, never fetched). Both are recognised in any of the
    forms that read the same: upper case, percent-encoding, dot segments, repeated or
    trailing slashes, a repeated query parameter, and (for the base URL) the host's case,
    a trailing dot, the default port written out.
    """
    if url[: len(OSS_SCHEME)].lower() == OSS_SCHEME:
        return UploadRef(object_key=url[len(OSS_SCHEME) :])
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return None
    if parts.scheme.lower() not in _DEFAULT_PORTS:
        return None
    readings = _readings(parts.path)
    ours = False
    if public_base_url:
        base = urlsplit(public_base_url)
        ours = _origin(parts) is not None and _origin(parts) == _origin(base)
    found = [m for path in readings if (m := _UPLOAD_PATH.fullmatch(path))]
    if found:
        query = parse_qs(parts.query, keep_blank_values=True)
        expires = query.get("expires", [])[:_MAX_SIGNED_TRIES]
        signatures = query.get("signature", [])[:_MAX_SIGNED_TRIES]
        for match in found:
            for e in expires:
                for sig in signatures:
                    if storage.signs_upload(match["id"], match["name"], e, sig):
                        return UploadRef(upload_id=match["id"])
        if ours:
            return UploadRef(upload_id=found[0]["id"])
        return None
    prefix = UPLOADS_PREFIX.lower()
    for path in readings:
        if ours and (path.lower() + "/").startswith(prefix):
            return UploadRef(upload_id=path[len(prefix) :].partition("/")[0])
    return None


class UploadStore:
    """The ``uploads`` and ``upload_reservations`` rows; the files themselves are the
    storage's."""

    def __init__(self, engine: Engine) -> None:
        self.sessions = sessionmaker(engine, expire_on_commit=False)

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

    def servable(self, upload_id: str) -> str | None:
        """Why the upload's signed link must not be served any more (its key was revoked,
        or the upload is gone), or None when it may be."""
        with self.sessions() as s:
            row = s.execute(
                select(Upload.id, ApiKey.revoked_at)
                .join(ApiKey, ApiKey.id == Upload.key_id)
                .where(Upload.id == upload_id)
            ).first()
        if row is None:
            return "the file is no longer available"
        if row.revoked_at is not None:
            return "the file is no longer available: the API key that uploaded it was revoked"
        return None

    # --- the quota ------------------------------------------------------------------

    @staticmethod
    def _lock_key(s: Session, key_id: int) -> None:
        """Write the key's row (changing nothing), so that the quota steps of one key take
        turns until the transaction ends; :class:`KeyRevoked` for a revoked or unknown key."""
        done = s.execute(
            update(ApiKey)
            .where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None))
            .values(name=ApiKey.name)
            .execution_options(synchronize_session=False)
        )
        if done.rowcount != 1:
            raise KeyRevoked(key_id)

    @staticmethod
    def _held(s: Session, key_id: int, now: float) -> int:
        uploaded = s.scalar(
            select(func.coalesce(func.sum(Upload.bytes), 0)).where(
                Upload.key_id == key_id, Upload.expires_at > now
            )
        )
        reserved = s.scalar(
            select(func.coalesce(func.sum(UploadReservation.bytes), 0)).where(
                UploadReservation.key_id == key_id, UploadReservation.expires_at > now
            )
        )
        return int(uploaded or 0) + int(reserved or 0)

    def bytes_held(self, key_id: int, now: float | None = None) -> int:
        """Bytes of ``key_id``'s live uploads and of its uploads in progress."""
        with self.sessions() as s:
            return self._held(s, key_id, time.time() if now is None else now)

    def reserve(
        self, key_id: int, size: int, *, quota: int, ttl_s: float, now: float | None = None
    ) -> Reservation:
        """Hold ``size`` bytes of ``key_id``'s quota (0: none) for an upload in progress,
        for at most ``ttl_s``; raises :class:`QuotaFull` or :class:`KeyRevoked`."""
        now = time.time() if now is None else now
        row = UploadReservation(
            id="ur_" + secrets.token_hex(16), key_id=key_id, bytes=size, expires_at=now + ttl_s
        )
        with self.sessions.begin() as s:
            self._lock_key(s, key_id)
            if quota > 0:
                held = self._held(s, key_id, now)
                if held + size > quota:
                    raise QuotaFull(held)
            s.add(row)
        return Reservation(row.id, key_id, size)

    def release(self, reservation: Reservation) -> None:
        """Give back what an upload that failed reserved."""
        with self.sessions.begin() as s:
            s.execute(delete(UploadReservation).where(UploadReservation.id == reservation.id))

    def settle(
        self,
        upload: Upload,
        reservation: Reservation | None,
        *,
        quota: int,
        replace: bool = False,
    ) -> str | None:
        """Record a kept upload in place of its reservation, in one transaction (raises
        :class:`KeyRevoked`; :class:`QuotaFull` when it had no live reservation and does not
        fit). ``replace``: the upload takes the place of the one at its object key, whose id
        is returned (its file is the caller's to delete)."""
        with self.sessions.begin() as s:
            self._lock_key(s, upload.key_id)
            released = 0
            if reservation is not None:
                released = s.execute(
                    delete(UploadReservation).where(
                        UploadReservation.id == reservation.id,
                        UploadReservation.expires_at > upload.created_at,
                    )
                ).rowcount
            if quota > 0 and not released:
                held = self._held(s, upload.key_id, upload.created_at)
                if held + upload.bytes > quota:
                    raise QuotaFull(held)
            old = None
            if replace and upload.object_key is not None:
                old = s.scalar(select(Upload.id).where(Upload.object_key == upload.object_key))
                if old is not None:
                    s.execute(delete(Upload).where(Upload.id == old))
            s.add(upload)
        return old

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
        """Delete uploads past ``expires_at``, and reservations left by uploads that never
        ended (a server that died mid-upload); returns the uploads' ids so their files can
        go too."""
        now = time.time() if now is None else now
        with self.sessions.begin() as s:
            ids = list(s.scalars(select(Upload.id).where(Upload.expires_at <= now)))
            if ids:
                s.execute(delete(Upload).where(Upload.id.in_(ids)))
            s.execute(delete(UploadReservation).where(UploadReservation.expires_at <= now))
        return ids
