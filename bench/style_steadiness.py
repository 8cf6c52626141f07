"""How steady the painted styles are on real footage, and what they change (issue 20's measures).

Usage: python bench/style_steadiness.py [--frames 24] [--styles watercolor,cartoon]

For each clip of the real-footage corpus (tests/corpus.py) and each painted style,
``--frames`` frames from frame 20 on, at 360 lines, through ``StyleEditor`` as the
engine runs it, and again each frame painted on its own (a fresh editor per frame):

- flicker: the mean frame-to-frame change of the output over the source's (the
  issue's measure: <= 1.3);
- frame by frame: the same, every frame painted on its own (what coherence saves);
- detail: the output's mean luma gradient over the source's (strokes added where
  the source was smooth move visibly with the camera: a flicker near this figure
  is motion, not shimmer);
- changed: the share of pixels whose mean channel change is 20 levels or more
  (the issue's "strongly changed": >= 40 %), on the middle frame;
- structure: the correlation of the output's gradient magnitude with the
  source's (the issue's >= 0.2), on the middle frame;
- ms: the editor's time a frame at 360 lines (painting at its working size).
"""

from __future__ import annotations

import argparse
import time

import cv2
import numpy as np
from _harness import machine
from skimage import data

from corpus import clip
from measures import detail, flicker, gradient
from mediagen import read_frames
from vedit.engines.classic.styles import PAINTED, StyleEditor

CLIPS = ("carphone_pristine", "bikes", "vtest", "bigbuckbunny")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=24)
    ap.add_argument("--styles", default=",".join(PAINTED))
    args = ap.parse_args()
    reference = data.coffee()
    print(f"machine: {machine()}")
    print(
        f"command: python bench/style_steadiness.py --frames {args.frames} --styles {args.styles}"
    )
    print("| clip | style | flicker | frame by frame | detail | changed | structure | ms a frame |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for name in CLIPS:
        source = read_frames(clip(name), list(range(20, 20 + args.frames)))
        h, w = source[0].shape[:2]
        size = (round(w * 360 / h / 4) * 4, 360)
        source = [cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in source]
        for style in args.styles.split(","):
            editor = StyleEditor(style, reference, *size, 3)
            painted = [editor(source[0], 0)]  # the first painting: part of the set-up, not timed
            start = time.perf_counter()
            painted += [editor(f, i) for i, f in enumerate(source[1:], 1)]
            ms = (time.perf_counter() - start) / (len(painted) - 1) * 1000
            each = [StyleEditor(style, reference, *size, 3)(f, 0) for f in source]
            mid = len(source) // 2
            changed = (np.abs(painted[mid].astype(int) - source[mid]).mean(axis=2) >= 20).mean()
            corr = np.corrcoef(gradient(painted[mid]).ravel(), gradient(source[mid]).ravel())[0, 1]
            print(
                f"| {name} | {style} | {flicker(painted) / flicker(source):.2f} | "
                f"{flicker(each) / flicker(source):.2f} | {detail(painted) / detail(source):.2f} | "
                f"{changed:.0%} | {corr:.2f} | {ms:.0f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
