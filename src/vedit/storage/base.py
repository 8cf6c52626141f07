"""What every storage backend offers, and the signer of vedit's own links.

The rest of vedit goes through :class:`Storage` whatever the backend: the worker
publishes a result and copies an upload to its work dir, the API keeps an upload
and hands out links, the janitor deletes what expired. Two kinds of object live
in storage, each under its own area:

- a result: area ``results``, name ``<task_id>.mp4``;
- an upload: area ``uploads``, name ``<upload_id>``.

vedit's own links are HMAC-signed with an expiry (``<public_base_url>/v1/files/...``,
``/v1/uploads/...``): the signature is over the path and the expiry, so a changed
name, a changed expiry or an old link is refused (403). An upload's link is also
how a task's media URL names the upload, whatever the backend. The same secret
signs the upload policies of DashScope's flow (``uploads/policy.py``), under its
own label.

The backends (``local.py``, ``s3.py``) only store, read and delete objects and
say how one is served; they do not know tasks, keys or HTTP requests.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Literal
from urllib.parse import quote

from vedit.errors import SignatureInvalid
from vedit.options import Options

FILES_PREFIX = "/v1/files/"
UPLOADS_PREFIX = "/v1/uploads/"

Area = Literal["results", "uploads"]


@dataclass(frozen=True)
class StoredFile:
    """An object a valid signed link names, and until when the link is valid."""

    area: Area
    name: str
    expires: int


@dataclass
class ObjectRead:
    """An object (or the asked range of it) as the API relays it: status, headers, body
    (None for HEAD, and for an answer without a body such as 416)."""

    status: int
    headers: dict[str, str]
    body: Iterator[bytes] | None = field(default=None)


@dataclass(frozen=True)
class StorageOptions(Options):
    """Where results and uploads are kept, and how vedit's links to them are signed
    (``VEDIT_STORAGE``, ``VEDIT_DATA_DIR``, ``VEDIT_S3_*``, ``VEDIT_SIGNING_SECRET``...)."""

    storage: str
    data_dir: Path
    public_base_url: str
    signing_secret: str
    result_url_ttl_s: float
    s3_bucket: str
    s3_endpoint_url: str
    s3_region: str
    s3_prefix: str
    s3_proxy: bool
    s3_multipart_threshold_bytes: int
    s3_multipart_chunk_bytes: int

    @property
    def results_dir(self) -> Path:
        return self.data_dir / "results"

    @property
    def uploads_dir(self) -> Path:
        return self.data_dir / "uploads"


class Storage(ABC):
    """Results and uploads, and the signer of vedit's links to them."""

    name: ClassVar[str]

    def __init__(self, options: StorageOptions) -> None:
        self.options = options
        self._secret = _load_secret(options)

    # --- the backend --------------------------------------------------------------

    @abstractmethod
    def put(self, area: Area, name: str, src: Path, content_type: str) -> str:
        """Store the file ``src`` as ``name``; returns where it went (for the task row).
        ``src`` is moved or copied: the caller removes it if it is still there."""

    @abstractmethod
    def get(self, area: Area, name: str, dest: Path) -> bool:
        """Copy the object to the local file ``dest``; False when there is no such object."""

    @abstractmethod
    def delete(self, area: Area, name: str) -> None:
        """Delete the object; deleting one that is gone is no error."""

    @abstractmethod
    def check(self) -> None:
        """Raise :class:`~vedit.errors.StorageUnavailable`, naming the setting and what the
        store answered, when objects cannot be written and read (checked at start-up)."""

    @abstractmethod
    def describe(self) -> str:
        """Where results and uploads are, and how they are served, in words (start-up line)."""

    def local_path(self, found: StoredFile) -> Path | None:
        """The file on this machine that a link serves (local storage), else None."""
        return None

    def redirect_url(self, found: StoredFile, filename: str | None = None) -> str | None:
        """A URL of the store itself that serves the object until the link expires (presigned),
        or None when vedit must serve it (:meth:`read`)."""
        return None

    def read(self, found: StoredFile, range_header: str | None, head: bool) -> ObjectRead:
        """The object, or the ``Range`` asked of it, for vedit to relay (a store whose links
        :meth:`local_path` or :meth:`redirect_url` serve is never asked)."""
        raise RuntimeError(f"storage {self.name} serves its links itself: nothing to relay")

    # --- what the rest of vedit calls ---------------------------------------------

    @property
    def incoming_dir(self) -> Path:
        """Where a file being received is written before it is kept (always a local folder)."""
        folder = self.options.uploads_dir / ".incoming"
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def publish_result(self, task_id: str, src: Path) -> str:
        return self.put("results", f"{task_id}.mp4", src, "video/mp4")

    def delete_result(self, task_id: str) -> None:
        self.delete("results", f"{task_id}.mp4")

    def keep_upload(self, upload_id: str, src: Path, content_type: str) -> None:
        self.put("uploads", upload_id, src, content_type)

    def copy_upload(self, upload_id: str, dest: Path) -> bool:
        return self.get("uploads", upload_id, dest)

    def delete_upload(self, upload_id: str) -> None:
        self.delete("uploads", upload_id)

    def result_url(self, task_id: str, expires: int) -> str:
        """The URL a client downloads the result from, valid until ``expires`` (unix s)."""
        found = StoredFile("results", f"{task_id}.mp4", expires)
        return self.redirect_url(found, f"{task_id}.mp4") or self.signed_url(task_id, expires)

    def upload_fetch_url(self, upload_id: str, name: str, expires: int) -> str:
        """The URL a third party (the relay's upstream) fetches an upload from."""
        found = StoredFile("uploads", upload_id, expires)
        return self.redirect_url(found) or self.signed_upload_url(upload_id, name, expires)

    # --- vedit's signed links -----------------------------------------------------

    def sign(self, label: str, message: str) -> str:
        """HMAC-SHA256 (hex) of ``message`` under this server's secret; ``label`` keeps
        what is signed for one purpose from passing for another."""
        return hmac.new(self._secret, f"{label}\n{message}".encode(), hashlib.sha256).hexdigest()

    def signed_url(self, task_id: str, expires: int) -> str:
        """vedit's own link to a result (``/v1/files/<task_id>.mp4``)."""
        return self._url(f"{FILES_PREFIX}{task_id}.mp4", expires)

    def signed_upload_url(self, upload_id: str, name: str, expires: int) -> str:
        """vedit's own link to an upload; a task's media URL names the upload by it. A name
        in another script than Latin is percent-encoded (UTF-8) in the URL; the signature is
        over the name itself, as the route reads it."""
        path = f"{UPLOADS_PREFIX}{upload_id}/{name}"
        return self._url(path, expires, shown=f"{UPLOADS_PREFIX}{upload_id}/{quote(name, safe='')}")

    def verify(
        self, name: str, expires: str, signature: str, now: float | None = None
    ) -> StoredFile:
        """The result a signed link names; raises :class:`SignatureInvalid` when it must not
        be served."""
        self._check(f"{FILES_PREFIX}{name}", expires, signature, now)
        if not name.endswith(".mp4") or "/" in name:
            raise SignatureInvalid("the file is no longer available")
        return self._exists(StoredFile("results", name, int(expires)))

    def verify_upload(
        self, upload_id: str, name: str, expires: str, signature: str, now: float | None = None
    ) -> StoredFile:
        """The upload a signed link names; raises :class:`SignatureInvalid` when it must not
        be served."""
        self._check(f"{UPLOADS_PREFIX}{upload_id}/{name}", expires, signature, now)
        if "/" in upload_id:
            raise SignatureInvalid("the file is no longer available")
        return self._exists(StoredFile("uploads", upload_id, int(expires)))

    def signs_upload(self, upload_id: str, name: str, expires: str, signature: str) -> bool:
        """Whether this server signed the upload URL with these parts (expired or not)."""
        try:
            self._check(f"{UPLOADS_PREFIX}{upload_id}/{name}", expires, signature, now=0)
        except SignatureInvalid:
            return False
        return True

    def _exists(self, found: StoredFile) -> StoredFile:
        """``found``, when the backend can tell at once that the object is there (a local
        file); a remote object's absence shows when it is read."""
        path = self.local_path(found)
        if path is not None and not path.is_file():
            raise SignatureInvalid("the file is no longer available")
        return found

    def _signature(self, path: str, expires: int) -> str:
        # Result URLs were signed as "<path>\n<expires>" before uploads existed: kept, so that
        # links already handed out stay valid.
        msg = f"{path}\n{expires}".encode()
        return hmac.new(self._secret, msg, hashlib.sha256).hexdigest()

    def _check(self, path: str, expires: str, signature: str, now: float | None) -> None:
        now = time.time() if now is None else now
        # Only plain ASCII digits of a sane length are an expiry ("²" is a digit to str.isdigit).
        valid = expires.isascii() and expires.isdigit() and len(expires) <= 12
        if not valid or not hmac.compare_digest(
            self._signature(path, int(expires)), signature.encode("ascii", "replace").decode()
        ):
            raise SignatureInvalid("the URL's signature does not match")
        if int(expires) <= now:
            raise SignatureInvalid(f"the URL expired at {int(expires)} (now {int(now)})")

    def _url(self, path: str, expires: int, shown: str | None = None) -> str:
        base = self.options.public_base_url.rstrip("/")
        signature = self._signature(path, expires)
        return f"{base}{shown or path}?expires={expires}&signature={signature}"


def _load_secret(options: StorageOptions) -> bytes:
    if options.signing_secret:
        return options.signing_secret.encode()
    path = options.data_dir / "signing.key"
    if not path.exists():
        options.data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
    return path.read_text().strip().encode()
