"""Local files checked before anything is sent (``vedit submit``, ``vedit edit``).

Only headers are read — the container's and the stream's for a video (PyAV, no frame
decoded), the image's header (Pillow, no pixel decoded) — and compared with the media
limits of CONTRACT.md §4 (the ``VEDIT_*`` media settings): the kind (a video first, then
an image), the container or format, the bytes, the duration, the frame rate, the size and
the aspect ratio. The server checks every upload again, in full (``media/probe.py``).
A file in a format the API refuses but PyAV or Pillow reads is :class:`NeedsConversion`:
``media/convert.py`` makes an accepted one of it.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

from vedit.errors import TaskFailure
from vedit.media.limits import MediaLimits
from vedit.media.sniff import sniff

SNIFF_BYTES = 64
ACCEPTED = {"video": "MP4 or MOV (H.264 recommended)", "image": "JPEG, PNG, BMP or WEBP"}
BYTE_SETTINGS = {"video": "VEDIT_VIDEO_MAX_BYTES", "image": "VEDIT_IMAGE_MAX_BYTES"}


class LocalFileRefused(Exception):
    """A local file the API would refuse; the message names the file, the limit and the
    value seen."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NeedsConversion(LocalFileRefused):
    """A file of the right kind in a format the API refuses, which vedit can convert."""

    def __init__(self, message: str, kind: str, what: str) -> None:
        super().__init__(message)
        self.kind, self.what = kind, what


@dataclass(frozen=True)
class LocalMedia:
    """A local file that passed the header checks."""

    path: Path
    kind: str  # "video" | "image"
    bytes: int
    width: int
    height: int
    duration_s: float | None = None  # videos only
    fps: float | None = None

    def summary(self) -> str:
        """``5.00 s, 1280x720, 30 fps`` or ``1024x768``."""
        size = f"{self.width}x{self.height}"
        if self.kind == "video":
            return f"{self.duration_s:.2f} s, {size}, {self.fps:.3g} fps"
        return size


def _a(words: str) -> str:
    """``words`` with their article: ``an image``, ``a video``, ``an AVI video``."""
    first = words.split()[0]
    acronym = first.isupper()  # read letter by letter: "an FLV", "a GIF"
    vowel = first[0] in "AEFHILMNORSX" if acronym else first[0].lower() in "aeiou"
    return f"{'an' if vowel else 'a'} {words}"


def check_local(path: Path, kind: str, limits: MediaLimits, label: str | None = None) -> LocalMedia:
    """Check the local file ``path`` as the ``kind`` it must be (``video``, ``image``)
    against the media limits, from its headers only; raises :class:`LocalFileRefused` (or
    :class:`NeedsConversion`) saying what is wrong, with the limit and the value seen."""
    label = label or str(path)
    if not path.is_file():
        raise LocalFileRefused(f"{label}: no such file")
    with path.open("rb") as f:
        found = sniff(f.read(SNIFF_BYTES))
    if found is not None and found.kind != kind:
        raise LocalFileRefused(
            f"{label} is {_a(found.kind)} ({found.content_type}), not {_a(kind)}: the clip "
            "comes first, then the reference image"
        )
    if found is None:
        what = identify(path, kind)
        if what is not None:
            raise NeedsConversion(
                f"{label} is {what}; {_a(kind)} must be {ACCEPTED[kind]}", kind, what
            )
        other = "image" if kind == "video" else "video"
        if (what := identify(path, other)) is not None:
            raise LocalFileRefused(
                f"{label} is {what}, not {_a(kind)}: the clip comes first, then the reference image"
            )
        raise LocalFileRefused(
            f"{label} is not {_a(kind)} vedit can read ({ACCEPTED[kind]}); it holds "
            f"{_received(path)}"
        )
    size = path.stat().st_size
    limit = limits.video_max_bytes if kind == "video" else limits.image_max_bytes
    if size > limit:
        raise LocalFileRefused(
            f"{label}: the file is {size:,} bytes; {_a(kind)} is at most {limit:,} bytes "
            f"({BYTE_SETTINGS[kind]})"
        )
    if kind == "video":
        return _video(path, size, limits, label)
    return _image(path, size, limits, label)


def _received(path: Path) -> str:
    from vedit.media.probe import what_was_received

    return what_was_received(path)


def identify(path: Path, kind: str) -> str | None:
    """What a file the API refuses is, when PyAV (a video) or Pillow (an image) can read it
    — ``an AVI video (avi)``, ``a GIF image`` — else None. Headers only."""
    if kind == "video":
        import av

        try:
            with av.open(str(path), metadata_errors="ignore") as c:
                if not c.streams.video:
                    return None
                name = (c.format.long_name or c.format.name).split(" (")[0]
                return _a(f"{name} video ({c.format.name})")
        except (av.FFmpegError, OSError, ValueError):
            return None
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path) as img:
                fmt = img.format or "unknown"
    except (OSError, ValueError, Image.DecompressionBombError):
        return None
    return _a(f"{fmt} image")


def _video(path: Path, size: int, s: MediaLimits, label: str) -> LocalMedia:
    import av

    from vedit.media.probe import VIDEO_FORMATS

    try:
        container = av.open(str(path), metadata_errors="ignore")
    except (av.FFmpegError, OSError) as exc:
        raise LocalFileRefused(
            f"{label}: the file cannot be opened as a video ({type(exc).__name__}); it holds "
            f"{_received(path)}"
        ) from None
    with container:
        names = set(container.format.name.split(","))
        if not names & VIDEO_FORMATS:
            raise NeedsConversion(
                f"{label}: container is {container.format.name!r}; {ACCEPTED['video']} is required",
                "video",
                _a(f"{container.format.name} video"),
            )
        if not container.streams.video:
            raise LocalFileRefused(f"{label}: the file has no video stream")
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
    if not width or not height:
        raise LocalFileRefused(f"{label}: the video stream declares no size")
    from vedit.media.probe import check_video_limits  # the API's own limits, in its words

    try:
        check_video_limits(width, height, fps, duration, s, label)
    except TaskFailure as exc:
        raise LocalFileRefused(exc.message) from None
    return LocalMedia(path, "video", size, width, height, duration, fps)


def _image(path: Path, size: int, s: MediaLimits, label: str) -> LocalMedia:
    from PIL import Image

    from vedit.media.probe import IMAGE_FORMATS

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as img:  # the header only: no pixel is decoded
                fmt, (width, height) = img.format, img.size
    except Image.DecompressionBombError:
        raise LocalFileRefused(
            f"{label}: the image declares too many pixels; at most {s.image_max_pixels:,} "
            "are accepted"
        ) from None
    except (OSError, ValueError):
        raise LocalFileRefused(
            f"{label}: the image's header cannot be read; it holds {_received(path)}"
        ) from None
    if fmt not in IMAGE_FORMATS:
        raise NeedsConversion(
            f"{label}: format is {fmt}; {ACCEPTED['image']} is required",
            "image",
            _a(f"{fmt} image"),
        )
    from vedit.media.bounded import check_image_size  # the API's own limits, in its words

    try:
        check_image_size(width, height, s, label)
    except TaskFailure as exc:
        raise LocalFileRefused(exc.message) from None
    return LocalMedia(path, "image", size, width, height)
