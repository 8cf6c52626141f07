"""Results and uploads on the local disk, handed out through HMAC-signed URLs with an expiry.

- a result: ``<public_base_url>/v1/files/<task_id>.mp4?expires=<unix>&signature=<hex>``;
- an upload: ``<public_base_url>/v1/uploads/<upload_id>/<name>?expires=<unix>&signature=<hex>``.

The signature is HMAC-SHA256 over the path and the expiry, so a changed name, a
changed expiry or an old link is refused (403). The same secret signs the upload
policies of DashScope's flow (``uploads/policy.py``), under its own label.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from pathlib import Path

from vedit.config import Settings
from vedit.errors import SignatureInvalid

FILES_PREFIX = "/v1/files/"
UPLOADS_PREFIX = "/v1/uploads/"


class LocalStorage:
    """Result files under ``<data_dir>/results``, uploads under ``<data_dir>/uploads``, and
    the signer of their URLs."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.root = settings.results_dir
        self.root.mkdir(parents=True, exist_ok=True)
        self.uploads_root = settings.uploads_dir
        self.uploads_root.mkdir(parents=True, exist_ok=True)
        self._secret = self._load_secret(settings)

    @staticmethod
    def _load_secret(settings: Settings) -> bytes:
        if settings.signing_secret:
            return settings.signing_secret.encode()
        path = settings.data_dir / "signing.key"
        if not path.exists():
            settings.data_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(32))
        return path.read_text().strip().encode()

    # --- files ----------------------------------------------------------------

    def result_path(self, task_id: str) -> Path:
        return self.root / f"{task_id}.mp4"

    def delete(self, task_id: str) -> None:
        self.result_path(task_id).unlink(missing_ok=True)

    def upload_path(self, upload_id: str) -> Path:
        return self.uploads_root / upload_id

    def delete_upload(self, upload_id: str) -> None:
        self.upload_path(upload_id).unlink(missing_ok=True)

    # --- signatures -----------------------------------------------------------

    def sign(self, label: str, message: str) -> str:
        """HMAC-SHA256 (hex) of ``message`` under this server's secret; ``label`` keeps
        what is signed for one purpose from passing for another."""
        return hmac.new(self._secret, f"{label}\n{message}".encode(), hashlib.sha256).hexdigest()

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

    def _url(self, path: str, expires: int) -> str:
        base = self.settings.public_base_url.rstrip("/")
        return f"{base}{path}?expires={expires}&signature={self._signature(path, expires)}"

    # --- signed URLs ----------------------------------------------------------

    def signed_url(self, task_id: str, expires: int) -> str:
        return self._url(f"{FILES_PREFIX}{task_id}.mp4", expires)

    def verify(self, name: str, expires: str, signature: str, now: float | None = None) -> Path:
        """The file behind a signed result URL; raises :class:`SignatureInvalid` when it must
        not be served."""
        self._check(f"{FILES_PREFIX}{name}", expires, signature, now)
        path = self.root / name
        if not name.endswith(".mp4") or "/" in name or not path.is_file():
            raise SignatureInvalid("the file is no longer available")
        return path

    def signed_upload_url(self, upload_id: str, name: str, expires: int) -> str:
        return self._url(f"{UPLOADS_PREFIX}{upload_id}/{name}", expires)

    def signs_upload(self, upload_id: str, name: str, expires: str, signature: str) -> bool:
        """Whether this server signed the upload URL with these parts (expired or not)."""
        try:
            self._check(f"{UPLOADS_PREFIX}{upload_id}/{name}", expires, signature, now=0)
        except SignatureInvalid:
            return False
        return True

    def verify_upload(
        self, upload_id: str, name: str, expires: str, signature: str, now: float | None = None
    ) -> Path:
        """The file behind a signed upload URL; raises :class:`SignatureInvalid` when it must
        not be served."""
        self._check(f"{UPLOADS_PREFIX}{upload_id}/{name}", expires, signature, now)
        path = self.upload_path(upload_id)
        if "/" in upload_id or not path.is_file():
            raise SignatureInvalid("the file is no longer available")
        return path
