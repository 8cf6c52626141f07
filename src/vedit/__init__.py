"""vedit: a self-hostable implementation of the HappyHorse 1.0 video-edit API.

``from vedit import Client, AsyncClient, Settings``: each is loaded on first use, so the
server's processes never import the clients (``client.py``), and ``from vedit import
MODEL_NAME`` loads no settings.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vedit.client import (
        ApiError,
        AsyncClient,
        Client,
        Task,
        TaskFailed,
        TaskNotFinished,
        Upload,
        WaitTimeout,
    )
    from vedit.config import Settings

MODEL_NAME = "happyhorse-1.0-video-edit"
__version__ = "0.1.0"

__all__ = [
    "MODEL_NAME",
    "ApiError",
    "AsyncClient",
    "Client",
    "Settings",
    "Task",
    "TaskFailed",
    "TaskNotFinished",
    "Upload",
    "WaitTimeout",
    "__version__",
]


def __getattr__(name: str) -> Any:
    """The client names and ``Settings``, imported on first use."""
    if name == "Settings":
        from vedit.config import Settings

        return Settings
    if name in __all__:
        from vedit import client

        return getattr(client, name)
    raise AttributeError(f"module 'vedit' has no attribute {name!r}")
