"""What an engine is: it turns the request's media into edited frames, nothing else.

Engines never see HTTP requests or the database. A frame engine receives what
it needs in an :class:`EditJob` and returns a :class:`~vedit.media.video.FrameEditor`
that the output stage (``media/video.py``) calls for every output frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from vedit.config import Settings
from vedit.engines.plan import EditPlan
from vedit.media.video import FrameEditor

if TYPE_CHECKING:
    from vedit.engines.relay import RelayEngine


@dataclass(frozen=True)
class EditJob:
    """One edit: the plan, the reference image(s), the seed and the output geometry."""

    prompt: str
    plan: EditPlan
    references: list[np.ndarray]
    seed: int
    width: int
    height: int
    fps: int
    frames: int
    models_dir: Path | None = None


class Engine(Protocol):
    """An engine that edits frame by frame on this machine."""

    name: str
    kind: str  # "frame" (edits frames here); the relay engine's kind is "relay"
    operations: frozenset[str]  # the plan operations it carries out (engines/plan.py)

    def why_not(self, operation: str) -> str:
        """Why this engine does not carry out ``operation`` here (shown in the plan)."""
        ...

    def prepare(self, job: EditJob) -> FrameEditor:
        """Everything done once per task (reference analysis, models); returns the per-frame edit."""
        ...


def get_engine(settings: Settings) -> Engine | RelayEngine:
    """The engine named by ``VEDIT_ENGINE``: ``classic`` (frames on this machine, models
    from ``VEDIT_MODELS_DIR`` or the mediapipe wheel) or ``dashscope`` (the relay)."""
    if settings.engine == "classic":
        from vedit.engines.classic import ClassicEngine

        return ClassicEngine(settings.models_dir)
    if settings.engine == "dashscope":
        from vedit.engines.relay import RelayEngine

        return RelayEngine(settings)
    raise ValueError(f"unknown engine {settings.engine!r}; available: classic, dashscope")
