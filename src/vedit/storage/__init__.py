"""Where results and uploads are kept: ``open_storage(options)`` picks the backend of
``VEDIT_STORAGE`` (``local``: ``local.py``; ``s3``: ``s3.py``, which needs boto3, the
``scale`` extra). What every backend offers is :class:`~vedit.storage.base.Storage`."""

from __future__ import annotations

from vedit.storage.base import Storage, StorageOptions
from vedit.storage.local import LocalStorage

__all__ = ["Storage", "StorageOptions", "open_storage"]


def open_storage(options: StorageOptions) -> Storage:
    """The storage ``settings`` name; raises :class:`~vedit.errors.StorageUnavailable` when it cannot be
    used at all (boto3 missing, no bucket named). Reaching the store is :meth:`Storage.check`."""
    if options.storage == "local":
        return LocalStorage(options)
    from vedit.storage.s3 import S3Storage  # without boto3: StorageUnavailable, naming it

    return S3Storage(options)
