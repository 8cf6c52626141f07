"""The README's before/after stills: the test scene edited by each operation of ``classic``.

Usage: python docs/stills/make_stills.py
Renders tests/mediagen.py's person scene (the astronaut walking across a panned
room, 3 s, 1280x720) through the real output stage for each prompt below, and
writes one frame of each result next to this file as a 640x360 JPEG.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1] / "tests"))

from mediagen import edit_video, make_person_video, read_frames, striped_sweater  # noqa: E402
from vedit.engines.base import EditJob  # noqa: E402
from vedit.engines.classic import ClassicEngine  # noqa: E402
from vedit.engines.plan import plan_edit  # noqa: E402

FRAME = 40
PROMPTS = {
    "background": ("replace the background with the scene in the image", "rocket"),
    "clothing": ("make the character wear the striped sweater in the image", "stripes"),
    "watercolor": ("把整个画面转换为水彩风格", "coffee"),
    "look": ("make it look like the reference photo", "rocket"),
}


def reference(kind: str) -> np.ndarray:
    if kind == "stripes":
        return striped_sweater()
    from skimage import data

    return getattr(data, kind)()


def save(rgb: np.ndarray, name: str) -> None:
    small = cv2.resize(rgb, (640, 360), interpolation=cv2.INTER_AREA)
    cv2.imwrite(
        str(HERE / f"{name}.jpg"),
        cv2.cvtColor(small, cv2.COLOR_RGB2BGR),
        [cv2.IMWRITE_JPEG_QUALITY, 82],
    )


def classic_editor(prompt: str, ref: str, src: Path) -> Callable[[Any], Any]:
    """What the worker would do for ``prompt`` on ``src``: the plan, carried out by ``classic``."""
    plan = plan_edit(prompt)

    def editor_of(spec: Any) -> Any:
        job = EditJob(
            prompt, plan, [reference(ref)], 0, spec.width, spec.height, spec.fps, spec.frames,
            source=src,
        )  # fmt: skip
        return ClassicEngine().prepare(job).editor

    return editor_of


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="vedit-stills-"))
    src = make_person_video(tmp / "scene.mp4")
    save(read_frames(src, [FRAME])[0], "before")
    for name, (prompt, ref) in PROMPTS.items():
        edit_video(src, tmp / f"{name}.mp4", classic_editor(prompt, ref, src), watermark=True)
        save(read_frames(tmp / f"{name}.mp4", [FRAME])[0], name)
        save(reference(ref), f"{name}-reference")
        print(f"{name}: {plan_edit(prompt).operation} -> docs/stills/{name}.jpg")


if __name__ == "__main__":
    main()
