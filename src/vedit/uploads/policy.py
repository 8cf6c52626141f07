"""DashScope's upload flow, with vedit at both ends.

The official SDK uploads a local file (``file:///...``) in three steps:
``GET {base}/uploads?action=getPolicy&model=...`` gives it a policy; it posts the
file as a form to the policy's ``upload_host`` with the policy, its signature and
an object key under the policy's ``upload_dir``; then it sends ``oss://<key>``.

Here the policy is vedit's own: a base64 JSON document (OSS's shape: an
``expiration`` and ``conditions``) naming the key it was issued to, an
``upload_dir`` of that key's own (``vedit/<key id>/<random>``) and the size
range, signed with HMAC-SHA256 under the server's secret. ``upload_host`` is
vedit itself (``POST /api/v1/uploads``), which checks all of it as soon as the
fields before the file part have arrived, before a byte of the file is written.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from vedit.errors import InvalidRequest, UploadDenied
from vedit.media.urls import escape_invisible
from vedit.storage.base import Storage

SIGNING_LABEL = "upload-policy"
OBJECT_ROOT = "vedit"
FORM_FIELDS = ("OSSAccessKeyId", "Signature", "policy", "key")
MAX_OBJECT_NAME = 255


@dataclass(frozen=True)
class Policy:
    """What a signed policy allows: who, where, until when, how large."""

    key_id: int
    access_key_id: str
    upload_dir: str
    expires_at: float
    max_bytes: int


def access_key_id(key_id: int) -> str:
    return f"vedit-key-{key_id}"


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def issue(
    storage: Storage, *, key_id: int, max_bytes: int, ttl_s: float, upload_host: str
) -> dict[str, object]:
    """The ``data`` of a getPolicy answer, with the fields the SDK reads."""
    expires = int(time.time() + ttl_s)
    upload_dir = f"{OBJECT_ROOT}/{key_id}/{secrets.token_hex(8)}"
    document = {
        "expiration": _iso(expires),
        "conditions": [
            {"x-vedit-key-id": key_id},
            {"x-vedit-expires": expires},
            ["starts-with", "$key", upload_dir + "/"],
            ["content-length-range", 1, max_bytes],
        ],
    }
    encoded = base64.b64encode(json.dumps(document, separators=(",", ":")).encode()).decode()
    return {
        "policy": encoded,
        "signature": storage.sign(SIGNING_LABEL, encoded),
        "upload_dir": upload_dir,
        "upload_host": upload_host,
        "expire_in_seconds": int(ttl_s),
        "max_file_size_mb": max_bytes // 1_000_000,
        "oss_access_key_id": access_key_id(key_id),
        "x_oss_object_acl": "private",
        "x_oss_forbid_overwrite": "true",
    }


def verify(storage: Storage, fields: dict[str, str], now: float | None = None) -> Policy:
    """The policy a form was sent under, once it is shown to be vedit's, unexpired, and to
    cover the form's ``key``; raises :class:`UploadDenied` (403) otherwise."""
    now = time.time() if now is None else now
    missing = [name for name in FORM_FIELDS if not fields.get(name)]
    if missing:
        raise InvalidRequest(
            f"the upload form lacks {', '.join(missing)} before its file part (the file must "
            "be the form's last part); get a policy from "
            "GET /api/v1/uploads?action=getPolicy&model=... first"
        )
    encoded = fields["policy"]
    # Compared as bytes: compare_digest refuses str with non-ASCII characters (a TypeError).
    if not hmac.compare_digest(
        storage.sign(SIGNING_LABEL, encoded).encode(), fields["Signature"].encode()
    ):
        raise UploadDenied(
            "the policy's Signature does not match: the policy was not issued by this server, "
            "or was changed"
        )
    try:
        document = json.loads(base64.b64decode(encoded, validate=True))
        conditions = document["conditions"]
        key_id = int(conditions[0]["x-vedit-key-id"])
        expires = int(conditions[1]["x-vedit-expires"])
        upload_dir = conditions[2][2].removesuffix("/")
        max_bytes = int(conditions[3][2])
    except (binascii.Error, ValueError, KeyError, IndexError, TypeError):  # signed, so ours
        raise UploadDenied("the policy cannot be read") from None
    policy = Policy(key_id, access_key_id(key_id), upload_dir, expires, max_bytes)
    if expires <= now:
        raise UploadDenied(
            f"the upload policy expired at {_iso(expires)} (now {_iso(now)}); get a new one"
        )
    if not hmac.compare_digest(fields["OSSAccessKeyId"].encode(), policy.access_key_id.encode()):
        raise UploadDenied(
            f"OSSAccessKeyId {escape_invisible(fields['OSSAccessKeyId'])[:64]!r} is not the one "
            "the policy was issued to"
        )
    key = fields["key"]
    name = key[len(upload_dir) + 1 :] if key.startswith(upload_dir + "/") else ""
    if (
        not name
        or "/" in name
        or name in (".", "..")
        or len(name.encode()) > MAX_OBJECT_NAME
        or not name.isprintable()
    ):
        raise UploadDenied(
            f"key {escape_invisible(key)[:300]!r} is not a file name (at most "
            f"{MAX_OBJECT_NAME} bytes, no '/') under the policy's upload_dir {upload_dir!r}"
        )
    return policy
