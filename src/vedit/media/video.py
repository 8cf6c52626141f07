"""The output contract, in the one place every engine goes through.

MP4 with faststart; H.264 yuv420p (BT.709) at a constant 24 fps; duration
min(input, 15 s); the 720P / 1080P tier sized by pixel area with the source's
aspect ratio; the input's audio kept and trimmed, as AAC; a visible
AI-generated mark when asked; metadata that says the video is AI-edited.

Decode, edit and encode stream frame by frame: memory does not grow with the
length of the video. ``sample_frames`` gives an engine a few frames of the
clip before the edit, exactly as the output stage will hand them to its
editor, for an engine that must look at the clip first. A clip engine, which
works at its model's own frame rate, gets the span that becomes the output
from ``clip_source``, and ``clip_index`` says which of its frames each output
frame shows.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Protocol

import av
import numpy as np

from vedit.media.frames import MATRIX_TAGS, YuvFrame, matrix_for
from vedit.media.limits import OutputPolicy
from vedit.media.probe import VideoInfo
from vedit.media.watermark import Watermark

TIER_AREA = {"720P": 1280 * 720}
TIER_SCALE = {"720P": Fraction(1), "1080P": Fraction(3, 2)}


class FrameEditor(Protocol):
    """Edits each output-sized frame; ``index`` is the output frame number.

    ``pixel_format`` says what it takes: ``"yuv420p"``, a :class:`YuvFrame` that it
    edits in place (no colour conversion: the cheapest way); ``"rgb24"``, an
    H x W x 3 uint8 array, returning the edited array.
    """

    pixel_format: str

    def __call__(self, frame: Any, index: int) -> np.ndarray | None: ...


@dataclass(frozen=True)
class OutputSpec:
    """Everything the output stage needs to know about one output video."""

    width: int
    height: int
    fps: int
    frames: int
    watermark: bool
    keep_audio: bool
    metadata: dict[str, str]

    @property
    def duration_s(self) -> float:
        return self.frames / self.fps


def output_size(width: int, height: int, resolution: str) -> tuple[int, int]:
    """The output size for a source of ``width`` x ``height`` at the ``720P`` / ``1080P`` tier.

    At 720P the short side is the multiple of 16 nearest to the side of an
    area-preserving rectangle of 1280x720 pixels, and the long side is the
    largest multiple of 32 that keeps the aspect ratio (never above it); 1080P
    is 1.5 times 720P. This reproduces the Wan family's published sizes:
    1280x720, 720x1280, 960x960, 1088x832 at 720P; 1920x1080, 1440x1440,
    1632x1248 at 1080P.
    """
    landscape = width >= height
    ratio = max(width, height) / min(width, height)
    short = max(16, round(math.sqrt(TIER_AREA["720P"] / ratio) / 16) * 16)
    long = max(short, math.floor(short * ratio / 32 + 1e-6) * 32)
    scale = TIER_SCALE[resolution]
    short, long = int(short * scale), int(long * scale)
    return (long, short) if landscape else (short, long)


def plan_output(
    info: VideoInfo,
    *,
    resolution: str,
    watermark: bool,
    audio_setting: str,
    policy: OutputPolicy,
    metadata: dict[str, str],
) -> OutputSpec:
    """The output for this input and these parameters."""
    width, height = output_size(info.width, info.height, resolution)
    duration = min(info.duration_s, policy.output_max_duration_s)
    frames = max(1, round(duration * policy.output_fps))
    # ``auto``: the engine makes no audio of its own, so the input's audio is kept too.
    keep_audio = info.has_audio and audio_setting in ("origin", "auto")
    return OutputSpec(
        width=width,
        height=height,
        fps=policy.output_fps,
        frames=frames,
        watermark=watermark,
        keep_audio=keep_audio,
        metadata=metadata,
    )


@dataclass(frozen=True)
class RenderStats:
    """What the render wrote."""

    frames: int
    source_frames_edited: int
    has_audio: bool


def render(
    src: Path,
    dest: Path,
    spec: OutputSpec,
    edit: FrameEditor | None,
    policy: OutputPolicy,
    on_progress: Callable[[float], None] = lambda _f: None,
) -> RenderStats:
    """Decode ``src``, edit each output frame with ``edit``, and write ``dest`` by the contract.

    ``on_progress(fraction)`` is called after each output frame; it may raise to abort
    (the partial file is removed).
    """
    try:
        return _render(src, dest, spec, edit, policy, on_progress)
    except BaseException:
        dest.unlink(missing_ok=True)
        raise


def _render(
    src: Path,
    dest: Path,
    spec: OutputSpec,
    edit: FrameEditor | None,
    policy: OutputPolicy,
    on_progress: Callable[[float], None],
) -> RenderStats:
    mark = Watermark(spec.width, spec.height) if spec.watermark else None
    with (
        av.open(str(src), metadata_errors="ignore") as inp,
        av.open(str(dest), "w", format="mp4", options={"movflags": "+faststart"}) as out,
    ):
        # 1. Streams: H.264 video at the contract's rate, AAC audio when it is kept.
        out.metadata.update(spec.metadata)
        v_in = inp.streams.video[0]
        v_in.thread_type = "AUTO"
        v_out = out.add_stream("libx264", rate=spec.fps)
        v_out.width, v_out.height, v_out.pix_fmt = spec.width, spec.height, "yuv420p"
        v_out.codec_context.time_base = Fraction(1, spec.fps)
        # Pixels keep the source's YUV matrix (no conversion); the output says which it is.
        matrix = matrix_for(v_in.codec_context.colorspace, v_in.codec_context.height)
        cc = v_out.codec_context
        cc.colorspace, cc.color_primaries, cc.color_trc = MATRIX_TAGS[matrix]
        sws_space = "ITU709" if matrix == "bt709" else "ITU601"
        v_out.options = {
            "crf": str(policy.x264_crf),
            "preset": policy.x264_preset,
            "threads": str(policy.x264_threads),
            **({"x264-params": policy.x264_params} if policy.x264_params else {}),
        }
        a_in = inp.streams.audio[0] if spec.keep_audio and inp.streams.audio else None
        audio = _AudioTrack(a_in, out, spec.duration_s) if a_in is not None else None

        # 2. Decode everything once, in file order; hold each source frame until the
        #    next one shows which 24 fps output frames it covers.
        streams = [v_in] + ([a_in] if a_in is not None else [])
        held: av.VideoFrame | None = None
        t0: float | None = None
        emitted = 0
        edited_count = 0
        cache: tuple[int, av.VideoFrame] | None = None
        source_index = -1

        def emit(frame: av.VideoFrame, index_of_source: int) -> None:
            nonlocal emitted, cache, edited_count
            if cache is None or cache[0] != index_of_source:
                if edit is not None and edit.pixel_format == "rgb24":
                    rgb = frame.reformat(
                        spec.width, spec.height, "rgb24", src_colorspace=sws_space
                    ).to_ndarray()
                    rgb = np.ascontiguousarray(edit(rgb, emitted))
                    edited_count += 1
                    if mark is not None:
                        mark.apply(rgb)
                    ready = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(
                        format="yuv420p", dst_colorspace=sws_space
                    )
                else:
                    ready = _output_frame(frame, spec.width, spec.height)
                    yuv = YuvFrame.of_video_frame(ready, matrix)
                    if edit is not None:
                        edit(yuv, emitted)
                        edited_count += 1
                    if mark is not None:
                        mark.apply_yuv(yuv)
                # The source's frame types mean nothing at 24 fps: x264 chooses its own.
                ready.pict_type = 0
                cache = (index_of_source, ready)
            out_frame = cache[1]
            out_frame.pts = emitted
            out_frame.time_base = Fraction(1, spec.fps)
            out.mux(v_out.encode(out_frame))
            emitted += 1
            on_progress(emitted / spec.frames)

        video_done = False
        for packet in inp.demux(streams):
            if packet.stream.type == "audio":
                if audio is not None:
                    audio.feed(packet)
                continue
            if video_done:
                if audio is None or audio.done:
                    break
                continue
            for frame in packet.decode():
                t = _frame_time(frame)
                if t0 is None:
                    t0 = t
                t -= t0
                if held is not None:
                    while emitted < spec.frames and emitted / spec.fps < t - 1e-9:
                        emit(held, source_index)
                held = frame
                source_index += 1
                if emitted >= spec.frames:
                    video_done = True
                    break
        if held is None:
            raise ValueError("the video stream has no decodable frame")
        while emitted < spec.frames:
            emit(held, source_index)

        # 3. Flush the encoders.
        out.mux(v_out.encode(None))
        if audio is not None:
            audio.flush()
    return RenderStats(emitted, edited_count, audio is not None)


def _output_frame(frame: av.VideoFrame, width: int, height: int) -> av.VideoFrame:
    """``frame`` at the output size in yuv420p, as a frame of our own that may be edited in
    place (never the decoder's)."""
    ready = frame.reformat(width, height, "yuv420p")
    if ready is frame:  # already the output's size: a copy
        ready = av.VideoFrame.from_ndarray(frame.to_ndarray(), format="yuv420p")
    return ready


def sample_frames(
    src: Path, *, width: int, height: int, fps: int, frames: int, count: int
) -> Iterator[tuple[int, YuvFrame]]:
    """Frames of ``src`` spread over the span that becomes the output (``frames`` at
    ``fps``): one from each of ``count`` equal parts of it, in order, each as the output
    stage hands frames to an editor (``width`` x ``height`` yuv420p planes in the source's
    YUV matrix), with the number of the output frame nearest to it.

    Lazy, and cheap where the file allows: a part's sample is its first keyframe when it
    has one (a seek and one decoded frame), else the part's first frame, decoded forward
    from the frame the decoder is at or from the keyframe before it. A caller that has seen
    enough stops iterating and nothing more is decoded. Fewer than ``count`` frames come
    when the video ends early or cannot be read further (the render reports that).
    """
    with av.open(str(src), metadata_errors="ignore") as inp:
        stream = inp.streams.video[0]
        stream.thread_type = "AUTO"
        time_base = stream.time_base
        if time_base is None:
            return
        span = int(Fraction(frames, fps) / time_base)
        # 1. Where the keyframes are, from the packets of the span alone (nothing decoded).
        keyframes: list[int] = []
        earliest: int | None = None
        for packet in inp.demux(stream):
            if packet.pts is None:
                continue
            if earliest is not None and packet.dts is not None and packet.dts > earliest + span:
                break
            earliest = packet.pts if earliest is None else min(earliest, packet.pts)
            if packet.is_keyframe:
                keyframes.append(packet.pts)
        if earliest is None or not keyframes:
            return
        first: int = earliest  # the first frame's time: output frame 0
        keyframes.sort()
        matrix = matrix_for(stream.codec_context.colorspace, stream.codec_context.height)

        # 2. One frame from each part: seek only when the part's keyframe lies ahead of
        #    the decoder (after step 1 the demuxer is past the span).
        def pts_of_output(index: int) -> int:
            return first + int(Fraction(index, fps) / time_base)

        decoded: Iterator[av.VideoFrame] = iter(())
        at: int | None = None  # pts of the last decoded frame; None before the first seek
        for part in range(count):
            start = pts_of_output(part * frames // count)
            end = pts_of_output((part + 1) * frames // count)
            inside = [k for k in keyframes if start <= k < end]
            target = inside[0] if inside else start
            before = max([k for k in keyframes if k <= target], default=keyframes[0])
            if at is None or at < before:
                try:
                    inp.seek(before, stream=stream)
                except av.FFmpegError:
                    return
                decoded = _decoded_frames(inp, stream)
            frame = next((f for f in decoded if f.pts is None or f.pts >= target), None)
            if frame is None:
                return
            at = frame.pts if frame.pts is not None else target
            index = min(frames - 1, round((at - first) * time_base * fps))
            yield index, YuvFrame.of_video_frame(_output_frame(frame, width, height), matrix)


def clip_length(frames: int, fps: int, clip_fps: int) -> int:
    """How many frames at ``clip_fps`` cover an output of ``frames`` at ``fps``: one for
    each output frame's time, the last included."""
    return clip_index(frames - 1, fps, clip_fps) + 1


def clip_index(index: int, fps: int, clip_fps: int) -> int:
    """The frame at ``clip_fps`` nearest in time to output frame ``index`` (at ``fps``)."""
    return int(Fraction(index * clip_fps, fps) + Fraction(1, 2))


def clip_source(src: Path, *, fps: int, count: int, width: int, height: int) -> Iterator[YuvFrame]:
    """The first ``count`` frames of ``src`` at ``fps``, each ``width`` x ``height``: frame
    ``j`` is the source frame shown at ``j / fps`` (as ``render`` picks them for its own
    rate), in the source's YUV matrix. A video that ends early holds its last frame.
    Each frame is a new one, the caller's to keep."""
    with av.open(str(src), metadata_errors="ignore") as inp:
        stream = inp.streams.video[0]
        stream.thread_type = "AUTO"
        matrix = matrix_for(stream.codec_context.colorspace, stream.codec_context.height)
        held: av.VideoFrame | None = None
        t0: float | None = None
        emitted = 0

        def sized(frame: av.VideoFrame) -> YuvFrame:
            return YuvFrame.of_video_frame(_output_frame(frame, width, height), matrix)

        for frame in inp.decode(stream):
            t = _frame_time(frame)
            t0 = t if t0 is None else t0
            while held is not None and emitted < count and emitted / fps < t - t0 - 1e-9:
                yield sized(held)
                emitted += 1
            if emitted >= count:
                return
            held = frame
        if held is None:
            raise ValueError("the video stream has no decodable frame")
        while emitted < count:
            yield sized(held)
            emitted += 1


def _decoded_frames(
    inp: av.container.InputContainer, stream: av.VideoStream
) -> Iterator[av.VideoFrame]:
    """The video frames from the demuxer's position on; a frame that cannot be decoded ends
    them."""
    try:
        for packet in inp.demux(stream):
            yield from packet.decode()
    except av.FFmpegError:
        return


def _frame_time(frame: av.VideoFrame) -> float:
    if frame.pts is not None and frame.time_base is not None:
        return float(frame.pts * frame.time_base)
    return float(frame.time or 0.0)


class _AudioTrack:
    """Decodes the input's audio, trims it to the output's duration, encodes AAC."""

    def __init__(
        self, stream: av.AudioStream, out: av.container.OutputContainer, duration_s: float
    ):
        rate = stream.codec_context.sample_rate or 48000
        if rate not in (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 88200, 96000):
            rate = 48000
        channels = stream.codec_context.channels or 2
        layout = "mono" if channels == 1 else "stereo"
        self.rate = rate
        self.out = out
        self.stream = out.add_stream("aac", rate=rate)
        self.stream.layout = layout
        self.stream.codec_context.time_base = Fraction(1, rate)
        self.resampler = av.AudioResampler(format="fltp", layout=layout, rate=rate)
        self.max_samples = round(duration_s * rate)
        self.written = 0

    @property
    def done(self) -> bool:
        return self.written >= self.max_samples

    def feed(self, packet: av.Packet) -> None:
        if self.done:
            return
        try:
            frames = packet.decode()
        except av.FFmpegError:
            return  # a damaged audio packet is dropped, not fatal
        for frame in frames:
            for chunk in self.resampler.resample(frame):
                self._write(chunk)

    def _write(self, chunk: av.AudioFrame) -> None:
        room = self.max_samples - self.written
        if room <= 0:
            return
        if chunk.samples > room:
            data = chunk.to_ndarray()[:, :room]
            trimmed = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(data), format="fltp", layout=chunk.layout.name
            )
            trimmed.sample_rate = self.rate
            chunk = trimmed
        chunk.pts = self.written
        chunk.time_base = Fraction(1, self.rate)
        self.written += chunk.samples
        self.out.mux(self.stream.encode(chunk))

    def flush(self) -> None:
        for chunk in self.resampler.resample(None):
            self._write(chunk)
        self.out.mux(self.stream.encode(None))
