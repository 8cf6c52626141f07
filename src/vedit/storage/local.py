"""Results on the local disk, handed out through HMAC-signed URLs with an expiry.

A URL is ``<public_base_url>/v1/files/<task_id>.mp4?expires=<unix>&signature=<hex>``;
the signature is HMAC-SHA256 over the path and the expiry, so a changed name, a
changed expiry or an old link is refused (403).
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


class LocalStorage:
    """Result files under ``<data_dir>/results`` and the signer of their URLs."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.root = settings.results_dir
        self.root.mkdir(parents=True, exist_ok=True)
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

    # --- signed URLs ----------------------------------------------------------

    def _signature(self, name: str, expires: int) -> str:
        msg = f"{FILES_PREFIX}{name}\n{expires}".encode()
        return hmac.new(self._secret, msg, hashlib.sha256).hexdigest()

    def signed_url(self, task_id: str, expires: int) -> str:
        name = f"{task_id}.mp4"
        base = self.settings.public_base_url.rstrip("/")
        return f"{base}{FILES_PREFIX}{name}?expires={expires}&signature={self._signature(name, expires)}"

    def verify(self, name: str, expires: str, signature: str, now: float | None = None) -> Path:
        """The file behind a signed URL; raises :class:`SignatureInvalid` when it must not be served."""
        now = time.time() if now is None else now
        # Only plain ASCII digits of a sane length are an expiry ("²" is a digit to str.isdigit).
        valid = expires.isascii() and expires.isdigit() and len(expires) <= 12
        if not valid or not hmac.compare_digest(
            self._signature(name, int(expires)), signature.encode("ascii", "replace").decode()
        ):
            raise SignatureInvalid("the URL's signature does not match")
        if int(expires) <= now:
            raise SignatureInvalid(f"the URL expired at {int(expires)} (now {int(now)})")
        path = self.root / name
        if not name.endswith(".mp4") or "/" in name or not path.is_file():
            raise SignatureInvalid("the file is no longer available")
        return path
