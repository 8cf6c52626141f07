"""What an engine is: it turns the request's media into edited frames, nothing else.

Engines never see HTTP requests or the database. A frame engine receives what
it needs in an :class:`EditJob` and returns a :class:`~vedit.media.video.FrameEditor`
that the output stage (``media/video.py``) calls for every output frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from vedit.media.video import FrameEditor


@dataclass(frozen=True)
class EditJob:
    """One edit: the prompt, the reference image(s), the seed and the output geometry."""

    prompt: str
    references: list[np.ndarray]
    seed: int
    width: int
    height: int
    fps: int
    frames: int


class Engine(Protocol):
    """An engine that edits frame by frame on this machine."""

    name: str

    def prepare(self, job: EditJob) -> FrameEditor:
        """Everything done once per task (reference analysis, models); returns the per-frame edit."""
        ...


def get_engine(name: str) -> Engine:
    """The engine called ``name`` (setting ``VEDIT_ENGINE``)."""
    if name == "classic":
        from vedit.engines.classic import ClassicEngine

        return ClassicEngine()
    raise ValueError(f"unknown engine {name!r}; available: classic")
