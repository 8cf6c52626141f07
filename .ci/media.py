"""Media for the CI smoke run, with nothing but the plain install (PyAV, NumPy, Pillow).

python media.py make DIR        writes DIR/clip.mp4 (640x360, 25 fps, 4 s, AAC tone) and
                                DIR/look.png (a 640x480 picture)
python media.py probe FILE      prints the MP4's facts as JSON
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import av
import numpy as np
from PIL import Image


def make(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    width, height, fps, seconds = 640, 360, 25, 4
    yy, xx = np.mgrid[0:height, 0:width]
    with av.open(str(folder / "clip.mp4"), "w") as out:
        video = out.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        audio = out.add_stream("aac", rate=44100)
        audio.layout = "stereo"
        for i in range(fps * seconds):
            rgb = np.dstack(
                [(xx + 4 * i) % 256, (yy * 255 // height), np.full_like(xx, 60 + i)]
            ).astype(np.uint8)
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = i
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        t = np.arange(44100 * seconds) / 44100
        tone = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
        pcm = np.vstack([tone, tone])
        for start in range(0, pcm.shape[1], 1024):
            chunk = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(pcm[:, start : start + 1024]), format="fltp", layout="stereo"
            )
            chunk.sample_rate, chunk.pts = 44100, start
            out.mux(audio.encode(chunk))
        out.mux(audio.encode(None))
    yy, xx = np.mgrid[0:480, 0:640]
    warm = np.dstack([200 + xx % 50, 120 + yy % 60, 40 + (xx + yy) % 30]).astype(np.uint8)
    Image.fromarray(warm).save(folder / "look.png")


def probe(path: Path) -> dict[str, object]:
    with av.open(str(path)) as f:
        video = f.streams.video[0]
        frames = sum(1 for _ in f.decode(video=0))
        return {
            "format": f.format.name,
            "codec": video.codec_context.name,
            "width": video.codec_context.width,
            "height": video.codec_context.height,
            "fps": float(video.average_rate or 0),
            "frames": frames,
            "audio": len(f.streams.audio) > 0,
        }


if __name__ == "__main__":
    if sys.argv[1] == "make":
        make(Path(sys.argv[2]))
    else:
        print(json.dumps(probe(Path(sys.argv[2]))))
