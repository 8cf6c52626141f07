"""Results and uploads in an S3 bucket (``VEDIT_STORAGE=s3``), through boto3 (extra ``scale``).

- a result: ``s3://<VEDIT_S3_BUCKET>/<VEDIT_S3_PREFIX>results/<task_id>.mp4``;
- an upload: ``s3://<VEDIT_S3_BUCKET>/<VEDIT_S3_PREFIX>uploads/<upload_id>``.

Files are written with boto3's managed transfer (multipart from
``VEDIT_S3_MULTIPART_THRESHOLD_BYTES`` on, in parts of ``VEDIT_S3_MULTIPART_CHUNK_BYTES``)
and a worker reads an upload by downloading it to its work dir. Clients get
presigned GET URLs of the bucket that expire when vedit's own link would, or,
with ``VEDIT_S3_PROXY=true``, vedit's own signed links, whose route streams the
object from the bucket (Range passed on). Credentials come from the standard AWS
chain (``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY``, ``AWS_PROFILE``,
``~/.aws/credentials``, an instance role); this module is imported only when
``VEDIT_STORAGE=s3``, so a local install never imports boto3.

Every failure of the store is raised as :class:`~vedit.errors.StorageUnavailable`
with the setting it concerns and what the server answered (``_failure``).
"""

from __future__ import annotations

import email.utils
import secrets
import time
from collections.abc import Iterator
from datetime import UTC
from pathlib import Path
from typing import Any

from vedit.errors import StorageUnavailable

try:  # the scale extra: this module is imported only when VEDIT_STORAGE=s3
    import boto3
    from boto3.exceptions import S3UploadFailedError
    from boto3.s3.transfer import TransferConfig
    from botocore.config import Config
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        EndpointConnectionError,
        NoCredentialsError,
        PartialCredentialsError,
    )
except ModuleNotFoundError as exc:
    raise StorageUnavailable(
        f"VEDIT_STORAGE=s3 needs boto3, which is not installed ({exc}): pip install 'vedit[scale]'"
    ) from None

from vedit.errors import SignatureInvalid
from vedit.storage.base import Area, ObjectRead, Storage, StorageOptions, StoredFile

MAX_PRESIGN_S = 7 * 24 * 3600  # SigV4's longest presigned URL
READ_CHUNK = 256 * 1024
_CREDENTIAL_CODES = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "Forbidden"}
_MISSING_CODES = {"NoSuchKey", "404", "NotFound"}


class S3Storage(Storage):
    """Objects under ``<prefix>results/`` and ``<prefix>uploads/`` of one bucket."""

    name = "s3"

    def __init__(self, options: StorageOptions) -> None:
        super().__init__(options)
        if not options.s3_bucket:
            raise StorageUnavailable("VEDIT_STORAGE=s3 needs VEDIT_S3_BUCKET, the bucket's name")
        self.bucket = options.s3_bucket
        prefix = options.s3_prefix.strip("/")
        self.prefix = f"{prefix}/" if prefix else ""
        self.endpoint = options.s3_endpoint_url or None
        self.proxy = options.s3_proxy
        config = Config(
            signature_version="s3v4",
            # An S3-compatible server is rarely reachable as <bucket>.<host>: path-style there.
            s3={"addressing_style": "path" if self.endpoint else "auto"},
            connect_timeout=10,
            read_timeout=60,
            retries={"max_attempts": 3, "mode": "standard"},
            max_pool_connections=64,
        )
        try:
            self.client = boto3.session.Session().client(
                "s3",
                endpoint_url=self.endpoint,
                region_name=options.s3_region or None,
                config=config,
            )
        except ValueError as exc:  # "Invalid endpoint: ..."
            raise StorageUnavailable(
                f"VEDIT_S3_ENDPOINT_URL={options.s3_endpoint_url!r} is not usable: {exc}"
            ) from None
        self.transfer = TransferConfig(
            multipart_threshold=options.s3_multipart_threshold_bytes,
            multipart_chunksize=options.s3_multipart_chunk_bytes,
            max_concurrency=4,
        )

    @property
    def where(self) -> str:
        """The store in words, for messages."""
        server = self.endpoint or f"AWS S3 ({self.client.meta.region_name or 'no region'})"
        return f"bucket {self.bucket!r} at {server}"

    def describe(self) -> str:
        served = "streamed by vedit (VEDIT_S3_PROXY)" if self.proxy else "as presigned URLs"
        return f"results and uploads in {self.where}, prefix {self.prefix!r}, served {served}"

    def key(self, area: Area, name: str) -> str:
        return f"{self.prefix}{area}/{name}"

    # --- the backend --------------------------------------------------------------

    def put(self, area: Area, name: str, src: Path, content_type: str) -> str:
        key = self.key(area, name)
        try:
            self.client.upload_file(
                str(src), self.bucket, key,
                ExtraArgs={"ContentType": content_type}, Config=self.transfer,
            )  # fmt: skip
        except (BotoCoreError, ClientError, S3UploadFailedError) as exc:
            raise _failure(exc, f"storing {key}", self) from None
        return f"s3://{self.bucket}/{key}"

    def get(self, area: Area, name: str, dest: Path) -> bool:
        key = self.key(area, name)
        try:
            self.client.download_file(self.bucket, key, str(dest), Config=self.transfer)
        except ClientError as exc:
            if _code(exc) in _MISSING_CODES:
                return False
            raise _failure(exc, f"reading {key}", self) from None
        except BotoCoreError as exc:
            raise _failure(exc, f"reading {key}", self) from None
        return True

    def delete(self, area: Area, name: str) -> None:
        key = self.key(area, name)
        try:
            self.client.delete_object(Bucket=self.bucket, Key=key)
        except (BotoCoreError, ClientError) as exc:
            raise _failure(exc, f"deleting {key}", self) from None

    def check(self) -> None:
        """List the prefix, then write and delete a small object: the bucket exists, the
        credentials are taken, and they may write."""
        try:
            self.client.list_objects_v2(Bucket=self.bucket, Prefix=self.prefix, MaxKeys=1)
            probe = f"{self.prefix}.vedit-check-{secrets.token_hex(8)}"
            self.client.put_object(Bucket=self.bucket, Key=probe, Body=b"vedit start-up check")
            self.client.delete_object(Bucket=self.bucket, Key=probe)
        except (BotoCoreError, ClientError) as exc:
            raise _failure(exc, "checking the bucket at start-up", self) from None

    # --- serving ------------------------------------------------------------------

    def redirect_url(self, found: StoredFile, filename: str | None = None) -> str | None:
        if self.proxy:
            return None
        # Signed afresh at each call, always to the same end: the link's expiry.
        expires_in = max(1, min(found.expires - int(time.time()), MAX_PRESIGN_S))
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": self.key(found.area, found.name)}
        if filename:
            params["ResponseContentDisposition"] = f'attachment; filename="{filename}"'
        try:
            return self.client.generate_presigned_url(
                "get_object", Params=params, ExpiresIn=expires_in
            )
        except BotoCoreError as exc:  # no credentials to sign with
            raise _failure(exc, "presigning a URL", self) from None

    def read(self, found: StoredFile, range_header: str | None, head: bool) -> ObjectRead:
        key = self.key(found.area, found.name)
        ask: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if range_header and not head:
            ask["Range"] = range_header
        try:
            got = self.client.head_object(**ask) if head else self.client.get_object(**ask)
        except ClientError as exc:
            if _code(exc) in _MISSING_CODES:
                raise SignatureInvalid("the file is no longer available") from None
            if _status(exc) == 416:
                size = self._size(key)
                return ObjectRead(416, {"Content-Range": f"bytes */{size}", "Content-Length": "0"})
            raise _failure(exc, f"reading {key}", self) from None
        except BotoCoreError as exc:
            raise _failure(exc, f"reading {key}", self) from None
        headers = {
            "Accept-Ranges": "bytes",
            "Content-Length": str(got["ContentLength"]),
            "Content-Type": got.get("ContentType") or "application/octet-stream",
        }
        if got.get("ETag"):
            headers["ETag"] = got["ETag"]
        if got.get("LastModified"):
            modified = got["LastModified"].astimezone(UTC)
            headers["Last-Modified"] = email.utils.format_datetime(modified, usegmt=True)
        if got.get("ContentRange"):
            headers["Content-Range"] = got["ContentRange"]
        status = 206 if got.get("ContentRange") else 200
        return ObjectRead(status, headers, None if head else _chunks(got["Body"]))

    def _size(self, key: str) -> int:
        try:
            return int(self.client.head_object(Bucket=self.bucket, Key=key)["ContentLength"])
        except (BotoCoreError, ClientError) as exc:
            raise _failure(exc, f"reading {key}", self) from None


def _chunks(body: Any) -> Iterator[bytes]:
    """The object's bytes as they arrive; the connection goes back to the pool at the end."""
    try:
        yield from body.iter_chunks(READ_CHUNK)
    finally:
        body.close()


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _status(exc: ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)


def _failure(exc: Exception, doing: str, storage: S3Storage) -> StorageUnavailable:
    """One message for every failure of the store: the setting to look at, and what the
    server answered (or why none did)."""
    if isinstance(exc, S3UploadFailedError) and isinstance(exc.__context__, ClientError):
        exc = exc.__context__
    endpoint = f"VEDIT_S3_ENDPOINT_URL={storage.endpoint!r}" if storage.endpoint else "AWS S3"
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return StorageUnavailable(
            f"S3 storage, {doing}: no usable credentials ({exc}); vedit takes them from the "
            "standard AWS chain: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, "
            "~/.aws/credentials, or an instance role"
        )
    if isinstance(exc, EndpointConnectionError):
        return StorageUnavailable(f"S3 storage, {doing}: {endpoint}: no server answered ({exc})")
    if isinstance(exc, ClientError):
        status, code = _status(exc), _code(exc)
        message = exc.response.get("Error", {}).get("Message") or ""
        answer = " ".join(filter(None, [str(status or ""), code if code != str(status) else ""]))
        answer += f": {message}" if message else ""
        if code == "NoSuchBucket" or (status == 404 and doing.startswith("checking")):
            setting = f"VEDIT_S3_BUCKET={storage.bucket!r} ({endpoint})"
        elif code in _CREDENTIAL_CODES or status == 403:
            setting = (
                f"the credentials for {storage.where} (AWS_ACCESS_KEY_ID / "
                "AWS_SECRET_ACCESS_KEY or AWS_PROFILE)"
            )
        else:
            setting = storage.where
        return StorageUnavailable(f"S3 storage, {doing}: {setting}: the server answered {answer}")
    return StorageUnavailable(f"S3 storage, {doing}: {storage.where}: {type(exc).__name__}: {exc}")
