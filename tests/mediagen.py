"""Test media made on the spot: videos of moving shapes with a tone, and real photographs."""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np


def make_video(
    path: Path,
    *,
    width: int = 640,
    height: int = 360,
    fps: int = 25,
    seconds: float = 5.0,
    audio: bool = True,
    container: str = "mp4",
    codec: str = "libx264",
    background: str = "gradient",
    photo: str = "coffee",
    noise: float = 0.0,
    keyframe_every: int | None = None,
) -> Path:
    """A clip of moving coloured shapes, with a 440 Hz tone when ``audio``.

    ``background``: ``gradient`` (flat, cheap to encode) or ``photo`` (a real
    photograph, scikit-image's ``photo``, that the camera pans across, textured
    like real footage). ``noise``: the standard deviation of sensor-like noise,
    new in every frame. ``keyframe_every``: the GOP length (x264's default, 250
    frames, when None).
    """
    rng = np.random.default_rng(0)
    frames = round(seconds * fps)
    with av.open(str(path), "w", format=container) as out:
        v = out.add_stream(codec, rate=fps)
        v.width, v.height, v.pix_fmt = width, height, "yuv420p"
        v.options = {"preset": "ultrafast", "crf": "12" if noise else "23"}  # keep the noise
        if keyframe_every:
            v.options = {**v.options, "g": str(keyframe_every)}
        a = None
        if audio:
            a = out.add_stream("aac", rate=44100)
            a.layout = "stereo"
        yy, xx = np.mgrid[0:height, 0:width]
        base = np.dstack(
            [(xx * 200 // max(1, width)), (yy * 200 // max(1, height)), np.full_like(xx, 90)]
        ).astype(np.uint8)
        pan = None
        if background == "photo":
            from skimage import data

            pan = cv2.resize(
                getattr(data, photo)(),
                (width * 5 // 4, height * 5 // 4),
                interpolation=cv2.INTER_CUBIC,
            )
        for i in range(frames):
            t = i / fps
            if pan is not None:
                dx = int((width // 4) * (0.5 + 0.5 * np.sin(t * 0.7)))
                dy = int((height // 4) * (0.5 + 0.5 * np.cos(t * 0.5)))
                img = np.ascontiguousarray(pan[dy : dy + height, dx : dx + width])
            else:
                img = base.copy()
            cx = int((0.2 + 0.6 * (0.5 + 0.5 * np.sin(t * 1.3))) * width)
            cy = int((0.3 + 0.4 * (0.5 + 0.5 * np.cos(t * 0.9))) * height)
            r = max(8, min(width, height) // 8)
            cv2.circle(img, (cx, cy), r, (230, 40, 40), -1)
            x0 = int((i * 3) % max(1, width - r))
            cv2.rectangle(img, (x0, height // 6), (x0 + r, height // 6 + r), (40, 200, 60), -1)
            _encode(out, v, i, img, fps, noise, rng)
        for packet in v.encode(None):
            out.mux(packet)
        if a is not None:
            n = round(seconds * 44100)
            tt = np.arange(n) / 44100
            tone = (0.3 * np.sin(2 * np.pi * 440 * tt)).astype(np.float32)
            pcm = np.vstack([tone, tone])
            step = 1024
            for start in range(0, n, step):
                chunk = np.ascontiguousarray(pcm[:, start : start + step])
                af = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="stereo")
                af.sample_rate = 44100
                af.pts = start
                af.time_base = Fraction(1, 44100)
                for packet in a.encode(af):
                    out.mux(packet)
            for packet in a.encode(None):
                out.mux(packet)
    return path


# The astronaut's outline in scikit-image's 512x512 photo (hair, face, suit; not the helmet
# she holds, not the flag or the wall): the ground truth of the person scenes.
ASTRONAUT_OUTLINE = np.array(
    [(225, 14), (265, 20), (292, 45), (300, 85), (297, 120), (292, 150), (305, 200), (300, 250),
     (290, 280), (330, 290), (350, 305), (360, 330), (362, 345), (330, 345), (300, 372),
     (283, 410), (278, 512), (20, 512), (22, 420), (25, 330), (45, 280), (80, 250), (115, 230),
     (112, 190), (125, 160), (158, 145), (155, 110), (152, 70), (170, 35), (200, 18)],
    np.int32,
)  # fmt: skip
# Boxes inside the outline, in the same photo's pixels (x0, y0, x1, y1).
ASTRONAUT_FACE = (180, 60, 280, 170)
ASTRONAUT_CHEST = (60, 300, 250, 420)  # the orange suit between the neck ring and the waist


def camera_offset(
    width: int, height: int, index: int, fps: int = 24, camera: str = "pan"
) -> tuple[int, int]:
    """Where :func:`person_scene`'s camera looks at frame ``index``: the top-left corner of the
    frame in the room's photograph (which is 5/4 the frame's size)."""
    if camera != "pan":
        return width // 8, height // 8
    t = index / fps
    return (
        int((width // 4) * (0.5 + 0.5 * np.sin(t * 0.7))),
        int((height // 4) * (0.5 + 0.5 * np.cos(t * 0.5))),
    )


def room_photo(width: int, height: int, *, room: str = "coffee", table: bool = False) -> np.ndarray:
    """The room of :func:`person_scene`, ``width`` x ``height`` RGB (see there)."""
    from skimage import data

    photo = cv2.resize(data.coffee(), (width, height), interpolation=cv2.INTER_AREA)
    if table:
        # A table top and its front, from the middle of the room to its right side.
        top, front = int(height * 0.62), int(height * 0.68)
        cv2.rectangle(photo, (width * 9 // 20, top), (width, front), (196, 140, 88), -1)
        cv2.rectangle(photo, (width * 9 // 20, front), (width, height), (120, 78, 44), -1)
    if room == "dark":
        photo = (photo.astype(np.float32) * 0.2).astype(np.uint8)
    return photo


def person_scene(
    width: int,
    height: int,
    index: int,
    fps: int = 24,
    *,
    camera: str = "pan",
    walk: bool = True,
    present: tuple[float, float] = (0.0, float("inf")),
    room: str = "coffee",
    table: bool = False,
) -> tuple[np.ndarray, np.ndarray, tuple[int, int, float]]:
    """Frame ``index`` of a person walking across a room: the astronaut, cut out along her
    outline, slides left and right over a photograph (scikit-image's coffee).

    ``camera``: ``pan`` (the background moves too) or ``static``; ``walk``: False keeps the
    person still (then nothing moves but the camera, if it pans); ``present``: the seconds
    (from, until) the person is in the shot — outside them the room is empty; ``room``:
    ``coffee`` (the photo as it is) or ``dark`` (the photo at a fifth of its light, as in a
    graded night scene); ``table``: a wooden table in the room, at her waist and to her
    right, that she walks along (its top touches her outline). Returns the RGB frame, the
    person's true mask, and where the photo was put (x0, y0, scale of its 512 px).
    """
    t = index / fps
    backdrop = room_photo(width * 5 // 4, height * 5 // 4, room=room, table=table)
    dx, dy = camera_offset(width, height, index, fps, camera)
    frame = np.ascontiguousarray(backdrop[dy : dy + height, dx : dx + width])
    truth = np.zeros((height, width), bool)
    if not present[0] <= t < present[1]:
        return frame, truth, (0, 0, 0.0)
    from skimage import data

    side = int(height * 0.9)
    person = cv2.resize(data.astronaut(), (side, side), interpolation=cv2.INTER_AREA)
    outline = np.zeros((512, 512), np.uint8)
    cv2.fillPoly(outline, [ASTRONAUT_OUTLINE], 1)
    inside = cv2.resize(outline, (side, side), interpolation=cv2.INTER_NEAREST) > 0
    x0 = int((width - side) * (0.3 + 0.4 * (0.5 + 0.5 * np.sin(t * 0.8 if walk else 0.0))))
    y0 = height - side
    frame[y0 : y0 + side, x0 : x0 + side][inside] = person[inside]
    truth[y0 : y0 + side, x0 : x0 + side] = inside
    return frame, truth, (x0, y0, side / 512)


def make_person_video(
    path: Path,
    *,
    width: int = 1280,
    height: int = 720,
    fps: int = 24,
    seconds: float = 3.0,
    camera: str = "pan",
    walk: bool = True,
    noise: float = 0.0,
    present: tuple[float, float] = (0.0, float("inf")),
    room: str = "coffee",
    table: bool = False,
) -> Path:
    """A silent clip of :func:`person_scene` frames (``noise``: sensor-like, new every frame;
    ``present``: the seconds the person is in the shot; ``room``, ``table``: see there)."""
    rng = np.random.default_rng(0)
    with av.open(str(path), "w", format="mp4") as out:
        v = out.add_stream("libx264", rate=fps)
        v.width, v.height, v.pix_fmt = width, height, "yuv420p"
        v.options = {"preset": "ultrafast", "crf": "12"}
        for i in range(round(seconds * fps)):
            img, _, _ = person_scene(
                width, height, i, fps, camera=camera, walk=walk, present=present, room=room,
                table=table,
            )  # fmt: skip
            _encode(out, v, i, img, fps, noise, rng)
        for packet in v.encode(None):
            out.mux(packet)
    return path


def make_counting_video(
    path: Path, *, frames: int, fps: int = 25, keyframe_every: int = 250, size: int = 480
) -> Path:
    """A silent clip whose frame ``i`` is a flat grey of level ``16 + 2 i`` (so a decoded
    frame tells which one it is: :func:`frame_number`); a keyframe every ``keyframe_every``
    frames and nowhere else."""
    with av.open(str(path), "w", format="mp4") as out:
        v = out.add_stream("libx264", rate=fps)
        v.width, v.height, v.pix_fmt = size, size, "yuv420p"
        v.options = {"preset": "ultrafast", "g": str(keyframe_every), "sc_threshold": "0"}
        for i in range(frames):
            grey = np.full((size, size, 3), 16 + 2 * i, np.uint8)
            _encode(out, v, i, grey, fps, 0.0, np.random.default_rng(0))
        for packet in v.encode(None):
            out.mux(packet)
    return path


def frame_number(luma: np.ndarray) -> int:
    """Which frame of :func:`make_counting_video` a decoded frame's luma plane is."""
    grey = (float(luma.mean()) - 16) * 255 / 219  # limited-range luma back to the RGB level
    return round((grey - 16) / 2)


def striped_sweater() -> np.ndarray:
    """A garment reference: navy and cream stripes, like nothing in the person scene."""
    img = np.zeros((400, 400, 3), np.uint8)
    for row in range(0, 400, 50):
        img[row : row + 25] = (30, 60, 160)
        img[row + 25 : row + 50] = (235, 235, 220)
    return img


def bright_wall(width: int = 640, height: int = 360) -> np.ndarray:
    """A new background brighter than any person: a pale wall lit from the top left, with a
    faint texture (the opposite of the dark room)."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    light = 236 - 14 * (xx / width + yy / height) / 2
    grain = cv2.GaussianBlur(np.random.default_rng(1).normal(0, 6, (height, width)), (0, 0), 3)
    wall = np.dstack([light + grain, light + grain + 2, light + grain - 6])
    return np.clip(wall, 0, 255).astype(np.uint8)


def _encode(
    out: av.container.OutputContainer,
    stream: av.VideoStream,
    index: int,
    rgb: np.ndarray,
    fps: int,
    noise: float,
    rng: np.random.Generator,
) -> None:
    """Frame ``index`` of a clip, with sensor-like ``noise`` added when asked."""
    if noise:
        rgb = np.clip(rgb + rng.normal(0, noise, rgb.shape), 0, 255).astype(np.uint8)
    frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
    frame.pts = index
    frame.time_base = Fraction(1, fps)
    for packet in stream.encode(frame):
        out.mux(packet)


def edit_video(
    src: Path, dest: Path, editor_of: Callable[[Any], Any], *, watermark: bool = False
) -> Any:
    """``src`` through the real output stage at 720P, edited by ``editor_of(spec)``;
    returns the output spec."""
    from vedit.config import Settings
    from vedit.media.limits import MediaLimits, OutputPolicy
    from vedit.media.probe import probe_video
    from vedit.media.video import plan_output, render

    s, policy = Settings(), OutputPolicy.of(Settings())
    spec = plan_output(
        probe_video(src, MediaLimits.of(s)),
        resolution="720P",
        watermark=watermark,
        audio_setting="auto",
        policy=policy,
        metadata={},
    )
    render(src, dest, spec, editor_of(spec), policy)
    return spec


def classic_edit(src: Path, dest: Path, prompt: str, reference: np.ndarray) -> Any:
    """``prompt`` carried out on ``src`` by engine ``classic`` as the worker does it (the
    engine looks at the clip first), through the output stage at 720P into ``dest``;
    returns the prepared edit (``.editor``, and ``.outcome()``: the plan as carried out)."""
    from vedit.engines.base import EditJob
    from vedit.engines.classic import ClassicEngine
    from vedit.engines.plan import plan_edit

    prepared: list[Any] = []

    def editor_of(spec: Any) -> Any:
        job = EditJob(prompt, plan_edit(prompt), [reference], 0, spec.width, spec.height,
                      spec.fps, spec.frames, source=src)  # fmt: skip
        prepared.append(ClassicEngine().prepare(job))
        return prepared[0].editor

    edit_video(src, dest, editor_of)
    return prepared[0]


def make_image(
    path: Path,
    *,
    kind: str = "astronaut",
    size: tuple[int, int] | None = None,
    fmt: str | None = None,
) -> Path:
    """A real photograph from scikit-image (``astronaut``, ``coffee``, ``chelsea``...) saved to ``path``."""
    from PIL import Image
    from skimage import data

    img = Image.fromarray(getattr(data, kind)())
    if size is not None:
        img = img.resize(size)
    img.convert("RGB").save(path, format=fmt)
    return path


def top_level_atoms(path: Path) -> list[str]:
    """The MP4's top-level box types in file order (``moov`` before ``mdat`` means faststart)."""
    import struct

    atoms = []
    with path.open("rb") as f:
        while True:
            head = f.read(8)
            if len(head) < 8:
                break
            size, kind = struct.unpack(">I4s", head)
            if size == 1:
                size = struct.unpack(">Q", f.read(8))[0]
                f.seek(size - 16, 1)
            else:
                f.seek(size - 8, 1)
            atoms.append(kind.decode("latin-1"))
            if size == 0:
                break
    return atoms


def probe_output(path: Path) -> dict:
    """Every property of an output file the contract speaks of, measured by decoding it."""
    info: dict = {"atoms": top_level_atoms(path)}
    with av.open(str(path)) as c:
        info["format"] = c.format.name
        info["metadata"] = dict(c.metadata)
        v = c.streams.video[0]
        info["codec"] = v.codec_context.name
        info["pix_fmt"] = v.codec_context.pix_fmt
        info["width"], info["height"] = v.codec_context.width, v.codec_context.height
        info["fps"] = float(v.average_rate)
        info["duration"] = float(v.duration * v.time_base)
        info["audio"] = None
        if c.streams.audio:
            a = c.streams.audio[0]
            info["audio"] = {
                "codec": a.codec_context.name,
                "duration": float(a.duration * a.time_base),
            }
        pts = [f.pts for f in c.decode(video=0)]
        info["frames"] = len(pts)
        info["pts_steps"] = sorted({b - a for a, b in zip(pts, pts[1:], strict=False)})
    return info


def read_frames(path: Path, indices: list[int]) -> list[np.ndarray]:
    """RGB frames at the given indices."""
    want = set(indices)
    out: dict[int, np.ndarray] = {}
    with av.open(str(path)) as c:
        for i, f in enumerate(c.decode(video=0)):
            if i in want:
                out[i] = f.to_ndarray(format="rgb24")
            if len(out) == len(want):
                break
    return [out[i] for i in indices]
