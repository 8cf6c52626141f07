"""Files the API refuses made into ones it takes, on this machine, with no ffmpeg command:
a video (AVI, MKV, WebM, FLV…, whatever PyAV's FFmpeg reads) into an H.264 MP4 with AAC
audio, an image (GIF, TIFF, HEIC where Pillow reads it…) into a PNG.

Nothing else changes: the frames, their size (rounded down to even sides, as H.264's
4:2:0 needs), their rate and the sound stay the source's, so a clip that is too short or
too small is still refused afterwards, with the limit.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

VIDEO_SUFFIXES = (".mp4", ".mov")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
AAC_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 88200, 96000)


class ConversionFailed(Exception):
    """The source cannot be read (or written) as asked; the message names it and why."""


@dataclass(frozen=True)
class Converted:
    path: Path
    frames: int  # 1 for an image
    width: int
    height: int
    has_audio: bool = False


def _even(n: int) -> int:
    return max(2, n - n % 2)


def convert_video(
    src: Path,
    dest: Path,
    *,
    container: str = "mp4",
    on_progress: Callable[[float], None] | None = None,
) -> Converted:
    """``src`` (any video PyAV reads) as H.264 (yuv420p, CRF 18) in an MP4 (faststart) or
    ``container`` ``mov`` at ``dest``, with its first audio stream as AAC; the frames keep
    their order and rate."""
    import av

    try:
        inp = av.open(str(src), metadata_errors="ignore")
    except (av.FFmpegError, OSError) as exc:
        raise ConversionFailed(f"{src}: cannot be read as a video ({_why(exc)})") from None
    with inp:
        if not inp.streams.video:
            raise ConversionFailed(f"{src}: the file has no video stream")
        v_in = inp.streams.video[0]
        v_in.thread_type = "AUTO"
        rate = v_in.average_rate or v_in.guessed_rate or v_in.base_rate or Fraction(25)
        rate = Fraction(rate).limit_denominator(1001)
        width, height = _even(v_in.codec_context.width), _even(v_in.codec_context.height)
        a_in = inp.streams.audio[0] if inp.streams.audio else None
        total = v_in.frames or (
            round(float(inp.duration / av.time_base) * rate) if inp.duration else 0
        )
        try:
            out = av.open(str(dest), "w", format=container, options={"movflags": "+faststart"})
        except (av.FFmpegError, OSError) as exc:
            raise ConversionFailed(f"{dest}: cannot be written ({_why(exc)})") from None
        with out:
            v_out = out.add_stream("libx264", rate=rate)
            v_out.width, v_out.height, v_out.pix_fmt = width, height, "yuv420p"
            v_out.codec_context.time_base = 1 / rate
            v_out.options = {"crf": "18", "preset": "veryfast"}
            audio = _Audio(a_in, out) if a_in is not None else None
            frames = 0
            try:
                for packet in inp.demux([v_in] + ([a_in] if a_in is not None else [])):
                    if packet.stream.type == "audio":
                        if audio is not None:
                            audio.feed(packet)
                        continue
                    for frame in packet.decode():
                        ready = frame.reformat(width, height, "yuv420p")
                        ready.pts, ready.time_base, ready.pict_type = frames, 1 / rate, 0
                        out.mux(v_out.encode(ready))
                        frames += 1
                        if on_progress is not None and total:
                            on_progress(min(1.0, frames / total))
            except av.FFmpegError as exc:
                if frames == 0:
                    raise ConversionFailed(
                        f"{src}: the video cannot be decoded ({_why(exc)})"
                    ) from None
                # A damaged tail: the frames decoded so far are kept.
            if frames == 0:
                raise ConversionFailed(f"{src}: the video stream has no decodable frame")
            out.mux(v_out.encode(None))
            if audio is not None:
                audio.flush()
    return Converted(dest, frames, width, height, audio is not None and audio.written > 0)


class _Audio:
    """The source's audio as AAC (fltp, mono or stereo, a rate AAC takes)."""

    def __init__(self, stream, out) -> None:  # noqa: ANN001  (PyAV's stream and container)
        import av

        rate = stream.codec_context.sample_rate or 48000
        rate = rate if rate in AAC_RATES else 48000
        layout = "mono" if (stream.codec_context.channels or 2) == 1 else "stereo"
        self.rate, self.out = rate, out
        self.stream = out.add_stream("aac", rate=rate)
        self.stream.layout = layout
        self.stream.codec_context.time_base = Fraction(1, rate)
        self.resampler = av.AudioResampler(format="fltp", layout=layout, rate=rate)
        self.written = 0

    def feed(self, packet) -> None:  # noqa: ANN001
        import av

        try:
            frames = packet.decode()
        except av.FFmpegError:
            return  # a damaged audio packet is dropped
        for frame in frames:
            for chunk in self.resampler.resample(frame):
                self._write(chunk)

    def _write(self, chunk) -> None:  # noqa: ANN001
        chunk.pts, chunk.time_base = self.written, Fraction(1, self.rate)
        self.written += chunk.samples
        self.out.mux(self.stream.encode(chunk))

    def flush(self) -> None:
        for chunk in self.resampler.resample(None):
            self._write(chunk)
        self.out.mux(self.stream.encode(None))


def convert_image(src: Path, dest: Path) -> Converted:
    """``src`` (any image Pillow reads; its first frame, turned as its EXIF says) as
    ``dest``, in the format its suffix names (PNG, JPEG, WEBP or BMP)."""
    from PIL import Image, ImageOps

    fmt = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".bmp": "BMP"}[
        dest.suffix.lower()
    ]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(src) as img:
                img.seek(0)
                pixels = ImageOps.exif_transpose(img)
                keep_alpha = fmt in ("PNG", "WEBP") and "A" in pixels.getbands()
                pixels = pixels.convert("RGBA" if keep_alpha else "RGB")
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise ConversionFailed(f"{src}: cannot be read as an image ({_why(exc)})") from None
    try:
        pixels.save(dest, fmt, **({"quality": 95} if fmt in ("JPEG", "WEBP") else {}))
    except OSError as exc:
        raise ConversionFailed(f"{dest}: cannot be written ({_why(exc)})") from None
    return Converted(dest, 1, pixels.width, pixels.height)


def _why(exc: Exception) -> str:
    """A library's error in a few words, without the path it repeats."""
    text = getattr(exc, "strerror", None) or str(exc)
    return str(text).split(": '")[0].strip() or type(exc).__name__
