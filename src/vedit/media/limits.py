"""The media limits of CONTRACT.md §4 (the ``VEDIT_VIDEO_*`` and ``VEDIT_IMAGE_*``
settings: what the intake, the probe and the local-file checks compare with) and the
output policy (the ``VEDIT_OUTPUT_*`` and ``VEDIT_X264_*`` settings: the output stage's).
No import here loads the media stack: a server process takes these without PyAV."""

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


@dataclass(frozen=True)
class OutputPolicy(Options):
    """How much of the input is edited, at what rate, and libx264's settings."""

    output_max_duration_s: float
    output_fps: int
    x264_preset: str
    x264_crf: int
    x264_params: str
    x264_threads: int
