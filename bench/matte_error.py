"""The background edit's matte against a composited ground truth (issue 20, item 4's measure).

Usage: python bench/matte_error.py [--frames 48] [--sheets DIR]

``mediagen.person_scene`` composites scikit-image's astronaut, cut out along a known
outline, over a room photo, so each frame's true alpha is known. Each scene's frames
(1280x720, made as yuv420p planes, not encoded) go through ``BackgroundEditor`` as the
engine runs it, and from frame 6 on (the running masks settled):

- alpha error: the mean absolute error of the editor's own alpha (its ``last_alpha``) within
  8 px of the true outline (``measures.matte_edge_error``: 0 is perfect, an edge 1 px off
  about 0.06);
- halo: the output's mean colour distance (RGB levels) from the new background, as the
  editor placed it, 1-5 px outside the true outline (``measures.halo``: what is left of
  the old room there);
- ms: the editor's median time a frame (all of it: the models, the matte, the blend;
  the median, as other work on a shared machine lengthens some frames).

Each row is run with the edge refined at full resolution (the default) and without
(``EdgeMatte.refine = False``: the matte at chroma size, as before the refinement),
alternating frame by frame in one process, so both see the same machine.
``--sheets DIR`` writes source | output PNGs of a few frames and full-resolution crops of
the edge there.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np
from _harness import machine
from skimage import data

from measures import halo, matte_edge_error
from mediagen import bright_wall, person_scene
from vedit.engines.person.background import BackgroundEditor
from vedit.media.frames import YuvFrame, yuv_planes, yuv_to_rgb

W, H, FPS = 1280, 720, 24
MATRIX = "bt709"
SETTLE = 6  # frames before the running masks have settled: not measured
# (name, person_scene's keywords, the new background)
SCENES = (
    ("coffee room, panning -> rocket", {}, data.rocket),
    ("dark room, still -> bright wall", {"camera": "static", "room": "dark"}, bright_wall),
    ("coffee room, panning -> bright wall", {}, bright_wall),
)


def rgb_of(y: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """RGB of yuv420p planes (chroma upsampled linearly)."""
    size = (y.shape[1], y.shape[0])
    up = [cv2.resize(p, size, interpolation=cv2.INTER_LINEAR) for p in (u, v)]
    return yuv_to_rgb(cv2.merge([y, *up]), MATRIX)


def new_background(editor: BackgroundEditor) -> np.ndarray:
    """The new background as the editor placed it in the last frame (RGB)."""
    x, y = (2 * round(v / 2) for v in editor.offset)
    sy, su, sv = editor.scene(MATRIX)
    return rgb_of(
        sy[y : y + H, x : x + W],
        su[y // 2 : (y + H) // 2, x // 2 : (x + W) // 2],
        sv[y // 2 : (y + H) // 2, x // 2 : (x + W) // 2],
    )


def alpha_of(editor: BackgroundEditor) -> np.ndarray:
    """The editor's alpha of the last frame, frame-sized."""
    alpha = np.zeros((H, W), np.float32)
    if editor.last_alpha is not None:
        box, a = editor.last_alpha
        alpha[box] = a
    return alpha


def sheet(source: np.ndarray, output: np.ndarray, truth: np.ndarray, path: Path) -> None:
    """source | output at half size, and below a full-resolution crop of each around the
    top of the head (hair against the room) and the shoulder."""
    half = (W // 2, H // 2)
    top = np.hstack([cv2.resize(im, half, interpolation=cv2.INTER_AREA) for im in (source, output)])
    rows, cols = np.nonzero(truth)
    cx = int(np.median(cols[rows < rows.min() + 40]))
    crops = []
    for x, y in ((cx - 80, rows.min() - 40), (cols.min() + 40, rows.min() + 230)):
        x, y = int(np.clip(x, 0, W - 320)), int(np.clip(y, 0, H - 180))
        crops.append(np.hstack([im[y : y + 180, x : x + 320] for im in (source, output)]))
    bottom = np.hstack([crops[0], crops[1]])
    picture = np.vstack([top, cv2.resize(bottom, (top.shape[1], top.shape[1] * 180 // 1280))])
    cv2.imwrite(str(path), cv2.cvtColor(picture, cv2.COLOR_RGB2BGR))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=48)
    ap.add_argument("--sheets", type=Path)
    args = ap.parse_args()
    print(f"machine: {machine()}")
    print(f"command: python bench/matte_error.py --frames {args.frames}")
    print("| scene | matte | alpha error (8 px band) | halo (1-5 px out, levels) | ms a frame |")
    print("| --- | --- | --- | --- | --- |")
    for number, (name, scene, reference) in enumerate(SCENES, 1):
        editors = {}
        for refine in (False, True):
            editors[refine] = BackgroundEditor(reference(), W, H)
            editors[refine].matte.refine = refine
        errors: dict[bool, list[float]] = {False: [], True: []}
        halos: dict[bool, list[float]] = {False: [], True: []}
        spent: dict[bool, list[float]] = {False: [], True: []}
        for i in range(args.frames):
            source, truth, _ = person_scene(W, H, i, FPS, **scene)
            for refine in (i % 2 == 0, i % 2 == 1):  # alternating which runs first
                editor = editors[refine]
                frame = YuvFrame(*yuv_planes(source, MATRIX), MATRIX)
                start = time.perf_counter()
                editor(frame, i)
                spent[refine].append(time.perf_counter() - start)
                if i < SETTLE:
                    continue
                output = rgb_of(frame.y, frame.u, frame.v)
                errors[refine].append(matte_edge_error(alpha_of(editor), truth))
                halos[refine].append(halo(output, new_background(editor), truth))
                if args.sheets and i in (SETTLE, args.frames // 2, args.frames - 1):
                    args.sheets.mkdir(parents=True, exist_ok=True)
                    tag = "refined" if refine else "chroma"
                    sheet(source, output, truth, args.sheets / f"scene{number}-{i:02d}-{tag}.png")
        for refine in (False, True):
            label = "refined at full size" if refine else "chroma size (before)"
            print(
                f"| {name} | {label} | {np.mean(errors[refine]):.3f} | "
                f"{np.mean(halos[refine]):.1f} | {np.median(spent[refine]) * 1000:.1f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
