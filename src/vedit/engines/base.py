"""What an engine is: it turns the request's media into edited frames, nothing else.

Engines never see HTTP requests or the database. A frame engine receives what
it needs in an :class:`EditJob` and returns a :class:`~vedit.media.video.FrameEditor`
that the output stage (``media/video.py``) calls for every output frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from vedit.engines.plan import EditPlan
from vedit.media.video import FrameEditor


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
    operations: frozenset[str]  # the plan operations it carries out (engines/plan.py)

    def why_not(self, operation: str) -> str:
        """Why this engine does not carry out ``operation`` here (shown in the plan)."""
        ...

    def prepare(self, job: EditJob) -> FrameEditor:
        """Everything done once per task (reference analysis, models); returns the per-frame edit."""
        ...


def get_engine(name: str, models_dir: Path | None = None) -> Engine:
    """The engine called ``name`` (setting ``VEDIT_ENGINE``); ``models_dir`` is
    ``VEDIT_MODELS_DIR``, where model files are looked for first."""
    if name == "classic":
        from vedit.engines.classic import ClassicEngine

        return ClassicEngine(models_dir)
    raise ValueError(f"unknown engine {name!r}; available: classic")
