"""Validation of downloaded media against the limits of CONTRACT.md §4, before any editing.

Each failure raises a :class:`~vedit.errors.TaskFailure` whose message states the
limit and the value measured. Corrupt or truncated files fail here too.
"""

from __future__ import annotations

import logging
import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageOps

from vedit.config import Settings
from vedit.errors import (
    EngineFailed,
    MediaAspectRatio,
    MediaCorrupt,
    MediaDuration,
    MediaFormat,
    MediaFrameRate,
    MediaResolution,
)

log = logging.getLogger("vedit.media")

VIDEO_FORMATS = {"mov", "mp4"}
IMAGE_FORMATS = {"JPEG", "PNG", "BMP", "WEBP"}
# What a download that is not the expected medium usually turns out to be.
_SIGNATURES = (
    (0, b"\x89PNG", "a PNG image"),
    (0, b"\xff\xd8\xff", "a JPEG image"),
    (0, b"GIF8", "a GIF image"),
    (0, b"BM", "a BMP image"),
    (8, b"WEBP", "a WEBP image"),
    (4, b"ftyp", "an MP4/MOV file"),
    (0, b"\x1a\x45\xdf\xa3", "a Matroska/WebM file"),
    (0, b"%PDF", "a PDF document"),
    (0, b"PK\x03\x04", "a ZIP archive"),
)


def what_was_received(path: Path) -> str:
    """What a downloaded file holds, for a message ("3,120 bytes of HTML"), never where it is."""
    size = path.stat().st_size if path.exists() else 0
    with path.open("rb") as f:
        head = f.read(64)
    kind = next((name for at, magic, name in _SIGNATURES if head[at:].startswith(magic)), None)
    if kind is None:
        text = head.lstrip().lower()
        if text.startswith((b"<!doctype html", b"<html")):
            kind = "HTML (a web page, not the file itself?)"
        elif text.startswith((b"{", b"[")):
            kind = "JSON"
        elif text.startswith(b"<"):
            kind = "XML"
        elif head and all(32 <= b < 127 or b in b"\t\r\n" for b in head):
            kind = "text"
        else:
            kind = "data starting with " + (head[:8].hex(" ") or "nothing")
    return f"{size:,} bytes of {kind}" if size else "an empty file"


def _reason(exc: Exception) -> str:
    """An FFmpeg or Pillow error without the file's path on this server, for the log only:
    clients get vedit's own words, never a library's."""
    if isinstance(exc, av.FFmpegError) and exc.strerror:
        return str(exc.strerror)
    return str(exc).split(" '/")[0].split(' "/')[0]


@dataclass(frozen=True)
class VideoInfo:
    """What the probe measured of the input video."""

    width: int
    height: int
    fps: float
    duration_s: float
    has_audio: bool


def probe_video(path: Path, settings: Settings, label: str = "media[0] (video)") -> VideoInfo:
    """Check the video against the limits; returns what was measured.

    The limits are checked on what the container declares before a frame is decoded; then
    the first frame is decoded on one thread, and FFmpeg refuses any picture (while opening
    the file too) over ``video_max_long_side`` squared: a file declaring or holding a huge
    picture costs at most about 4 bytes a pixel of that bound (``media/bounded.py``)."""
    bounded = {"threads": "1", "max_pixels": str(settings.video_max_long_side**2)}
    try:
        container = av.open(str(path), metadata_errors="ignore", options=bounded)
    except av.error.InvalidDataError:
        raise MediaFormat(
            f"{label}: not a video file FFmpeg can read; received {what_was_received(path)}"
        ) from None
    except av.FFmpegError as exc:
        log.info("%s: FFmpeg cannot open the file: %s", label, _reason(exc))
        raise MediaCorrupt(
            f"{label}: the file cannot be opened as a video; received {what_was_received(path)}"
        ) from None
    with container:
        names = set(container.format.name.split(","))
        if not names & VIDEO_FORMATS:
            raise MediaFormat(
                f"{label}: container is {container.format.name!r}; MP4 or MOV is required"
            )
        if not container.streams.video:
            raise MediaFormat(f"{label}: the file has no video stream")
        stream = container.streams.video[0]
        width, height = stream.codec_context.width, stream.codec_context.height
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        fps = float(rate) if rate else 0.0
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / av.time_base
        else:
            duration = 0.0
        has_audio = bool(container.streams.audio)
        if width and height:  # declared: refused before a frame is decoded
            _check_video_limits(width, height, fps, duration, settings, label)
        stream.codec_context.options = bounded
        try:
            frame = next(container.decode(stream), None)
        except av.FFmpegError as exc:
            log.info("%s: FFmpeg cannot decode the video stream: %s", label, _reason(exc))
            raise MediaCorrupt(
                f"{label}: the video stream cannot be decoded (the file is damaged or cut "
                f"short); received {what_was_received(path)}"
            ) from None
        if frame is None:
            raise MediaCorrupt(f"{label}: the video stream has no decodable frame")
        width, height = width or frame.width, height or frame.height
    _check_video_limits(width, height, fps, duration, settings, label)
    return VideoInfo(width, height, fps, duration, has_audio)


def _check_video_limits(
    width: int, height: int, fps: float, duration: float, settings: Settings, label: str
) -> None:
    """The size first (what a decode would cost), then the duration and the frame rate."""
    s = settings
    short, long = sorted((width, height))
    if short < s.video_min_short_side:
        raise MediaResolution(
            f"{label}: size is {width}x{height}; the short side must be at least "
            f"{s.video_min_short_side} px"
        )
    if long > s.video_max_long_side:
        raise MediaResolution(
            f"{label}: size is {width}x{height}; the long side must be at most "
            f"{s.video_max_long_side} px"
        )
    if long / short > s.video_max_aspect:
        raise MediaAspectRatio(
            f"{label}: aspect ratio is {width}:{height} ({long / short:.2f}:1); it must be within "
            f"1:{s.video_max_aspect:g} to {s.video_max_aspect:g}:1"
        )
    if not (s.video_min_duration_s <= duration <= s.video_max_duration_s):
        raise MediaDuration(
            f"{label}: duration is {duration:.2f} s; it must be within "
            f"{s.video_min_duration_s:g}-{s.video_max_duration_s:g} s"
        )
    if not fps > s.video_min_fps:
        raise MediaFrameRate(
            f"{label}: frame rate is {fps:.2f} fps; it must be above {s.video_min_fps:g} fps"
        )


def load_image(
    path: Path, settings: Settings, label: str = "media[1] (reference_image)"
) -> np.ndarray:
    """Check the reference image against the limits and decode it to an RGB array."""
    s = settings
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(path)
            img.format  # noqa: B018  (read the header now)
    except Image.DecompressionBombError:
        raise MediaResolution(
            f"{label}: the image declares over {2 * (Image.MAX_IMAGE_PIXELS or 0):,} pixels; "
            f"at most {s.image_max_pixels:,} pixels are accepted"
        ) from None
    except (OSError, ValueError):
        raise MediaFormat(
            f"{label}: not an image of an accepted format (JPEG, PNG, BMP, WEBP); received "
            f"{what_was_received(path)}"
        ) from None
    with img:
        if img.format not in IMAGE_FORMATS:
            raise MediaFormat(
                f"{label}: format is {img.format}; JPEG, PNG, BMP or WEBP is required"
            )
        width, height = img.size
        if width * height > s.image_max_pixels:
            raise MediaResolution(
                f"{label}: size is {width}x{height} ({width * height:,} pixels); at most "
                f"{s.image_max_pixels:,} pixels are accepted"
            )
        if min(width, height) < s.image_min_side:
            raise MediaResolution(
                f"{label}: size is {width}x{height}; width and height must be at least "
                f"{s.image_min_side} px"
            )
        ratio = max(width, height) / min(width, height)
        if ratio > s.image_max_aspect + 1e-9:
            raise MediaAspectRatio(
                f"{label}: aspect ratio is {width}:{height} ({ratio:.2f}:1); it must be within "
                f"1:{s.image_max_aspect:g} to {s.image_max_aspect:g}:1"
            )
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                rgb = ImageOps.exif_transpose(img).convert("RGB")
                return np.asarray(rgb, dtype=np.uint8).copy()
        except (OSError, ValueError, SyntaxError) as exc:
            log.info("%s: Pillow cannot decode the image: %s", label, _reason(exc))
            raise MediaCorrupt(
                f"{label}: the image cannot be decoded (the file is damaged or cut short); "
                f"received {what_was_received(path)}"
            ) from None


@dataclass(frozen=True)
class ResultInfo:
    """What the check of a finished video measured."""

    width: int
    height: int
    fps: float
    frames: int
    duration_s: float
    has_audio: bool


def check_result(
    path: Path, *, width: int, height: int, duration_s: float, label: str
) -> ResultInfo:
    """Check a video made elsewhere (the relay's upstream) against the output contract:
    an H.264 MP4 that decodes to the end, within 0.5 s of ``duration_s``, of about the
    tier's area (±15 %) and the planned shape (±5 %). Raises :class:`EngineFailed`."""
    try:
        with av.open(str(path), metadata_errors="ignore") as c:
            if not c.streams.video:
                raise EngineFailed(f"{label}: no video stream")
            v = c.streams.video[0]
            codec, w, h = v.codec_context.name, v.codec_context.width, v.codec_context.height
            has_audio = bool(c.streams.audio)
            frames, last = 0, 0.0
            for frame in c.decode(video=0):
                frames += 1
                if frame.time is not None:
                    last = float(frame.time)
            rate = float(v.average_rate or 0) or (frames / last if last else 0.0)
    except av.FFmpegError as exc:
        log.info("%s: FFmpeg cannot decode the result: %s", label, _reason(exc))
        raise EngineFailed(f"{label}: not a video that decodes to the end") from None
    if codec != "h264":
        raise EngineFailed(f"{label}: the video is {codec}, not H.264")
    duration = frames / rate if rate else 0.0
    if frames == 0 or abs(duration - duration_s) > 0.5:
        raise EngineFailed(
            f"{label}: the video lasts {duration:.2f} s ({frames} frames); "
            f"{duration_s:.2f} s were due"
        )
    if not 0.85 <= (w * h) / (width * height) <= 1.15 or abs(w / h - width / height) > 0.05 * (
        width / height
    ):
        raise EngineFailed(f"{label}: the video is {w}x{h}; about {width}x{height} was due")
    return ResultInfo(w, h, rate, frames, duration, has_audio)


def aspect_ratio_name(width: int, height: int) -> str:
    """``16:9`` for 1280x720; near-standard sizes snap to the standard ratio."""
    standard = ["16:9", "9:16", "1:1", "4:3", "3:4", "21:9", "9:21", "3:2", "2:3"]
    value = width / height
    for name in standard:
        a, b = (int(x) for x in name.split(":"))
        if abs(value - a / b) / (a / b) < 0.02:
            return name
    g = math.gcd(width, height)
    return f"{width // g}:{height // g}"
