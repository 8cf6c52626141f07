"""Task and request ids: ``asyntask_`` + 32 base62 characters from ``secrets``."""

from __future__ import annotations

import secrets
import string
import uuid

_BASE62 = string.ascii_letters + string.digits
TASK_ID_PREFIX = "asyntask_"


def new_task_id() -> str:
    return TASK_ID_PREFIX + "".join(secrets.choice(_BASE62) for _ in range(32))


def is_task_id(value: str) -> bool:
    body = value.removeprefix(TASK_ID_PREFIX)
    return value.startswith(TASK_ID_PREFIX) and len(body) == 32 and all(c in _BASE62 for c in body)


def new_request_id() -> str:
    return str(uuid.uuid4())
