"""Where results and uploads are kept: ``open_storage(settings)`` picks the backend of
``VEDIT_STORAGE`` (``local``: ``local.py``; ``s3``: ``s3.py``, which needs boto3, the
``scale`` extra). What every backend offers is :class:`~vedit.storage.base.Storage`."""

from __future__ import annotations

from vedit.config import Settings
from vedit.errors import StorageUnavailable
from vedit.storage.base import Storage
from vedit.storage.local import LocalStorage

__all__ = ["Storage", "open_storage"]

_S3_MODULES = {"boto3", "botocore", "s3transfer"}


def open_storage(settings: Settings) -> Storage:
    """The storage ``settings`` name; raises :class:`StorageUnavailable` when it cannot be
    used at all (boto3 missing, no bucket named). Reaching the store is :meth:`Storage.check`."""
    if settings.storage == "local":
        return LocalStorage(settings)
    try:
        from vedit.storage.s3 import S3Storage
    except ModuleNotFoundError as exc:
        if (exc.name or "").partition(".")[0] not in _S3_MODULES:
            raise
        raise StorageUnavailable(
            f"VEDIT_STORAGE=s3 needs boto3, which is not installed ({exc}): "
            "pip install 'vedit[scale]'"
        ) from None
    return S3Storage(settings)
