"""The ``classic`` engine: the reference image's look on every frame, on the CPU.

Frame statistics are smoothed over time (an exponential moving average), so
the grade is stable from frame to frame yet follows the scene. Deterministic:
no randomness is used, so the seed changes nothing here.
"""

from __future__ import annotations

import numpy as np

from vedit.engines.base import EditJob
from vedit.engines.classic.colour import ColourStats, apply_matrix, transfer_matrix
from vedit.media.video import FrameEditor

SMOOTHING = 0.08  # weight of each new frame in the running source statistics
STRENGTH = 0.85  # how far toward the reference the colours move


class ClassicEngine:
    """Colour and tone transfer from the reference image (Monge-Kantorovich linear map)."""

    name = "classic"

    def prepare(self, job: EditJob) -> FrameEditor:
        reference = ColourStats.of(job.references[0])
        running: list[ColourStats] = []

        def edit(frame: np.ndarray, index: int) -> np.ndarray:
            stats = ColourStats.of(frame)
            if running:
                stats = running[0].blend(stats, SMOOTHING)
                running[0] = stats
            else:
                running.append(stats)
            return apply_matrix(frame, transfer_matrix(stats, reference, STRENGTH))

        return edit
