"""The media limits of CONTRACT.md §4, as the ``VEDIT_VIDEO_*`` and ``VEDIT_IMAGE_*``
settings set them: what the intake, the probe and the local-file checks compare with."""

from __future__ import annotations

from dataclasses import dataclass

from vedit.options import Options


@dataclass(frozen=True)
class MediaLimits(Options):
    video_max_bytes: int
    video_min_duration_s: float
    video_max_duration_s: float
    video_min_short_side: int
    video_max_long_side: int
    video_max_aspect: float
    video_min_fps: float
    image_max_bytes: int
    image_max_pixels: int
    image_min_side: int
    image_max_aspect: float
