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
from PIL import ExifTags, Image

from vedit.errors import (
    EngineFailed,
    MediaAspectRatio,
    MediaCorrupt,
    MediaDuration,
    MediaFormat,
    MediaFrameRate,
    MediaResolution,
)
from vedit.media.bounded import ImageHeader, check_image_size, read_header, verify_image
from vedit.media.limits import MediaLimits

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


def probe_video(path: Path, limits: MediaLimits, label: str = "media[0] (video)") -> VideoInfo:
    """Check the video against the limits; returns what was measured.

    The limits are checked on what the container declares before a frame is decoded; then
    the first frame is decoded on one thread, and FFmpeg refuses any picture (while opening
    the file too) over ``video_max_long_side`` squared: a file declaring or holding a huge
    picture costs at most about 4 bytes a pixel of that bound (``media/bounded.py``)."""
    bounded = {"threads": "1", "max_pixels": str(limits.video_max_long_side**2)}
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
            check_video_limits(width, height, fps, duration, limits, label)
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
    check_video_limits(width, height, fps, duration, limits, label)
    return VideoInfo(width, height, fps, duration, has_audio)


def check_video_limits(
    width: int, height: int, fps: float, duration: float, s: MediaLimits, label: str
) -> None:
    """The size first (what a decode would cost), then the duration and the frame rate; raises
    the :class:`TaskFailure` of the first limit passed (also for local files: ``local_files.py``)."""
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


# EXIF orientation -> the transposition that shows the picture upright (ImageOps.exif_transpose's).
_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
STRIP_PIXELS = 1 << 20  # Pillow's picture is converted to RGB and reduced this much at a time


def load_image(
    path: Path,
    limits: MediaLimits,
    label: str = "media[1] (reference_image)",
    cover: tuple[int, int] | None = None,
) -> np.ndarray:
    """Check the reference image against the limits and decode it to an upright RGB array.

    The size is checked on the header (``media/bounded.py``) before a pixel is decoded.
    With ``cover`` (width, height, upright) the image is reduced by the largest whole
    factor that leaves it covering that size (:func:`reduction`), and memory stays bounded
    whatever the factor: a JPEG is decoded at the scale ``Image.draft`` offers (libjpeg's
    scaled decode), a BMP by Pillow (a 36-megapixel BMP under ``image_max_bytes`` is held at
    1 byte a pixel), each converted and reduced a strip at a time; a PNG (read through as a
    stream first) or a WEBP is decoded by OpenCV straight into one array of 3 bytes a pixel
    (4 for a WEBP with alpha), then reduced."""
    s = limits
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
        header = read_header(path)
        if header is None or (header.width, header.height) != img.size:
            raise MediaCorrupt(
                f"{label}: the image's header cannot be read (the file is damaged); received "
                f"{what_was_received(path)}"
            )
        check_image_size(header.width, header.height, s, label)
        orientation = _orientation(img, label)
        if cover is not None and orientation in (5, 6, 7, 8):  # stored on its side
            cover = (cover[1], cover[0])
        factor = reduction(header.width, header.height, cover)
        alpha = header.format == "WEBP" and "A" in img.mode
        rgb: np.ndarray | None = None
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if header.format in ("JPEG", "BMP"):
                    rgb = _pillow_rgb(img, factor, cover)
                else:
                    img.close()
                    rgb = _opencv_rgb(path, header, factor, alpha, label)
        except (OSError, ValueError, SyntaxError) as exc:
            log.info("%s: the image cannot be decoded: %s", label, _reason(exc))
        if rgb is None:
            raise MediaCorrupt(
                f"{label}: the image cannot be decoded (the file is damaged or cut short); "
                f"received {what_was_received(path)}"
            )
    if orientation in _UPRIGHT:
        rgb = np.asarray(Image.fromarray(rgb).transpose(_UPRIGHT[orientation])).copy()
    return rgb


def reduction(width: int, height: int, cover: tuple[int, int] | None) -> int:
    """The largest whole factor ``width`` x ``height`` can be divided by and still cover
    ``cover``: 1 when there is no ``cover``, or nothing to spare."""
    if cover is None:
        return 1
    return max(1, min(width // max(1, cover[0]), height // max(1, cover[1])))


def _orientation(img: Image.Image, label: str) -> int:
    """The EXIF orientation (1: upright) from the metadata read with the header. (The
    base class's ``getexif``: a PNG's own decodes the whole image to look for ``eXIf``.)"""
    try:
        value = Image.Image.getexif(img).get(ExifTags.Base.Orientation, 1)
    except Exception as exc:  # a damaged EXIF block: the picture is taken as it is stored
        log.info("%s: the EXIF data cannot be read: %s", label, _reason(exc))
        return 1
    return value if isinstance(value, int) else 1


def _pillow_rgb(img: Image.Image, factor: int, cover: tuple[int, int] | None) -> np.ndarray:
    """A JPEG or BMP through Pillow: a JPEG decoded at the smallest scale ``draft`` offers
    (1/2, 1/4, 1/8) not below 1/``factor``; converted to RGB and reduced by what remains of
    the factor, :data:`STRIP_PIXELS` at a time; the rest of the factor (a JPEG's 1/2 of a
    1/3) by an area average."""
    target = (-(-img.width // factor), -(-img.height // factor))
    if img.format == "JPEG" and factor > 1:
        img.draft("RGB", target)
    img.load()
    width, height = img.size
    left = reduction(width, height, cover)  # what the draft left of the factor
    out = np.empty((-(-height // left), -(-width // left), 3), np.uint8)
    rows = left * max(1, STRIP_PIXELS // (width * left))
    for top in range(0, height, rows):
        strip = img.crop((0, top, width, min(height, top + rows)))
        if strip.mode != "RGB":
            strip = strip.convert("RGB")
        if left > 1:
            strip = strip.reduce(left)
        out[top // left : top // left + strip.height] = np.asarray(strip)
    if out.shape[1::-1] != target:
        import cv2

        out = cv2.resize(out, target, interpolation=cv2.INTER_AREA)
    return out


def _opencv_rgb(
    path: Path, header: ImageHeader, factor: int, alpha: bool, label: str
) -> np.ndarray | None:
    """A PNG or WEBP decoded by OpenCV into one array of the picture's size, then reduced by
    ``factor`` (area average); None when it does not decode. A PNG is read through as a
    stream first (``bounded.verify_image``): libpng leaves a cut-short file's rows unread
    without an error."""
    import cv2

    if header.format == "PNG":
        verify_image(path, header, label, what_was_received(path))
    # A WEBP with ``alpha``: B, G, R, A as stored (OpenCV's RGB would convert a copy).
    flags = cv2.IMREAD_UNCHANGED if alpha else cv2.IMREAD_COLOR_RGB
    full = np.empty((header.height, header.width, 4 if alpha else 3), np.uint8)
    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    try:
        decoded = cv2.imread(str(path), full, flags | cv2.IMREAD_IGNORE_ORIENTATION)
    finally:
        cv2.utils.logging.setLogLevel(level)
    del full
    if decoded is None or decoded.ndim != 3 or decoded.shape[:2] != (header.height, header.width):
        return None
    if factor > 1:
        size = (-(-header.width // factor), -(-header.height // factor))
        decoded = cv2.resize(decoded, size, interpolation=cv2.INTER_AREA)
    if flags == cv2.IMREAD_UNCHANGED:
        to_rgb = cv2.COLOR_BGRA2RGB if decoded.shape[2] == 4 else cv2.COLOR_BGR2RGB
        decoded = cv2.cvtColor(decoded, to_rgb)
    return decoded


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
