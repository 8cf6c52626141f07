"""A clip engine's frames, as the output stage takes them.

The clip editor works at its model's rate and size; the output stage (``media/video.py``)
asks for each 24 fps output frame. :class:`ClipFrames` is the output stage's frame
editor: output frame ``i`` gets the clip frame nearest in time (``clip_index``), scaled
to the output's size. A region edit keeps the source's own pixels outside its region, at
the output's full size (the model's frames are smaller, and its copy of what it was told
to keep is close, not exact); the region's edge is feathered.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np

from vedit.engines.base import ClipEditor, ClipFrame
from vedit.errors import EngineFailed
from vedit.media.video import OutputSpec, clip_index, clip_length, clip_source

FEATHER = 0.004  # the region's edge is blurred over this share of the output's short side


class ClipFrames:
    """The output stage's frame editor (``rgb24``) for a clip editor's frames."""

    pixel_format = "rgb24"

    def __init__(
        self,
        editor: ClipEditor,
        source: Path,
        spec: OutputSpec,
        progress: Callable[[float], None],
    ) -> None:
        count = clip_length(spec.frames, spec.fps, editor.fps)
        frames = clip_source(
            source, fps=editor.fps, count=count, width=editor.width, height=editor.height
        )
        self.made: Iterator[ClipFrame] = editor(frames, count, progress)
        self.fps, self.clip_fps = spec.fps, editor.fps
        self.size = (spec.width, spec.height)
        self.sigma = max(0.5, FEATHER * min(spec.width, spec.height))
        self._at = -1
        self._scaled: tuple[np.ndarray, np.ndarray | None] | None = None

    def __call__(self, rgb: np.ndarray, index: int) -> np.ndarray:
        wanted = clip_index(index, self.fps, self.clip_fps)
        while self._at < wanted:
            frame = next(self.made, None)
            if frame is None:
                raise EngineFailed(f"the clip editor ended before clip frame {wanted}")
            self._at += 1
            self._scaled = None if self._at < wanted else self._scale(frame)
        assert self._scaled is not None
        made, alpha = self._scaled
        if alpha is None:
            return made
        out = rgb.astype(np.float32)
        out += alpha[..., None] * (made.astype(np.float32) - out)
        return np.clip(out + 0.5, 0, 255).astype(np.uint8)

    def _scale(self, frame: ClipFrame) -> tuple[np.ndarray, np.ndarray | None]:
        made = cv2.resize(frame.rgb, self.size, interpolation=cv2.INTER_CUBIC)
        if frame.region is None:
            return made, None
        alpha = cv2.resize(
            frame.region.astype(np.float32), self.size, interpolation=cv2.INTER_LINEAR
        )
        return made, cv2.GaussianBlur(alpha, (0, 0), self.sigma)
