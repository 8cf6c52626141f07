"""The clothing edit on real footage of people, by issue 20's garment measures (item 3).

Usage: python bench/garment_measures.py [--clips carphone_pristine,bikes] [--sheets DIR]

Each clip goes through the output stage at 720P twice, as the worker runs it: once
unedited (the source, through the same resize and encoder) and once edited by the
``classic`` engine from a clothing prompt, with each reference in turn: a picture of a
garment (``mediagen.striped_sweater``) and a photo of a person wearing one (scikit-image's
astronaut in her orange suit: her suit must be taken, never her skin or face). On each
sampled frame (``measures``):

- changed: the share of the frame whose colour the edit changed by over 30 RGB levels
  (:func:`measures.changed_region`; the issue: 2-35 % on a close shot, the garment);
- shading: the correlation of the source's and the output's luma, each blurred by a
  Gaussian of 1/60 of the short side, inside the changed region
  (:func:`measures.lowpass_luma_correlation`; the issue: >= 0.35);
- new skin: the share of the changed region that is skin-coloured in the output and was
  not in the source (:func:`measures.new_skin`; the issue: none from a person photo).

``--sheets DIR`` writes a source | output | changed-region PNG of each sampled frame there,
to look at: whether the changed region is the garment (not the face, hands, seat or window)
and whether the texture is shaded by the source.
"""

from __future__ import annotations

import argparse
import tempfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from _harness import machine
from skimage import data

from corpus import Exposure, clip, make_variant
from measures import changed_region, lowpass_luma_correlation, new_skin
from mediagen import classic_edit, edit_video, read_frames, striped_sweater
from vedit.config import Settings

# (name, prompt, reference): a garment picture and a photo of a person wearing the garment
REFERENCES = (
    ("sweater", "make him wear the striped sweater in the image", striped_sweater),
    ("astronaut", "make him wear the suit the woman in the photo wears", data.astronaut),
)
# The clips and the output frames (24 fps) measured: carphone's man talking in his car (4 s),
# bikes' rider passing the parked cars (its first 3.2 s; he is in view from about 1.6 s).
CLIP_FRAMES = {
    "carphone_pristine": [12, 30, 48, 66, 84],
    "bikes": [34, 38, 42, 46],
}
BIKES_SECONDS = 3.2


@dataclass(frozen=True)
class FrameMeasures:
    """One sampled frame's garment measures."""

    index: int
    changed: float
    shading: float
    new_skin: float


def source_of(name: str, folder: Path) -> Path:
    """The clip as a user would submit it: enlarged to the 360 lines the media limits ask
    for (as ``corpus.Corpus.accepted``), carphone whole, bikes' first seconds (the rider)."""
    seconds = BIKES_SECONDS if name == "bikes" else 10.0
    return make_variant(
        clip(name), folder / f"{name}.mp4", Exposure(1.0, 1.0), seconds=seconds, short_side=360
    )


def unedited(src: Path, dest: Path) -> Path:
    """``src`` through the output stage at 720P with no edit: the source to compare with."""
    edit_video(src, dest, lambda _spec: None)
    return dest


def dressed(src: Path, dest: Path, prompt: str, reference: np.ndarray) -> str:
    """``src`` edited by ``classic`` from ``prompt`` as the worker does it, at 720P; returns
    the plan as carried out, in words."""
    plan = classic_edit(src, dest, prompt, reference).outcome()
    return f"{plan.operation}, applied {plan.applied}: {plan.because}"


def measure(before: np.ndarray, after: np.ndarray, index: int) -> FrameMeasures:
    region = changed_region(before, after)
    return FrameMeasures(
        index,
        float(region.mean()),
        lowpass_luma_correlation(before, after, region),
        new_skin(before, after, region),
    )


def sheet(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """Source | output | the changed region (in red over the source, dimmed), side by side, RGB."""
    region = changed_region(before, after)
    marked = (before * 0.5).astype(np.uint8)
    marked[region] = (0.5 * marked[region] + (127, 0, 0)).astype(np.uint8)
    return np.hstack([before, after, marked])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clips", default=",".join(CLIP_FRAMES))
    ap.add_argument("--sheets", type=Path, help="write source | output | changed PNGs here")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="vedit-garment-"))
    print(f"machine: {machine()}")
    print(f"command: python bench/garment_measures.py --clips {args.clips}")
    print(f"render settings: {Settings().x264_preset}, crf {Settings().x264_crf}, 720P")
    print()
    print("| clip | reference | frame | changed | shading (low-pass luma r) | new skin |")
    print("|---|---|---|---|---|---|")
    notes = []
    for name in args.clips.split(","):
        src = source_of(name, tmp)
        plain = unedited(src, tmp / f"{name}-plain.mp4")
        frames = CLIP_FRAMES[name]
        sources = read_frames(plain, frames)
        for ref_name, prompt, make_reference in REFERENCES:
            out = tmp / f"{name}-{ref_name}.mp4"
            notes.append(f"{name} / {ref_name}: {dressed(src, out, prompt, make_reference())}")
            for index, before, after in zip(frames, sources, read_frames(out, frames), strict=True):
                m = measure(before, after, index)
                print(
                    f"| {name} | {ref_name} | {index} | {m.changed:.1%} | {m.shading:.2f} "
                    f"| {m.new_skin:.2%} |"
                )
                if args.sheets:
                    args.sheets.mkdir(parents=True, exist_ok=True)
                    path = args.sheets / f"{name}-{ref_name}-{index:03d}.png"
                    cv2.imwrite(str(path), cv2.cvtColor(sheet(before, after), cv2.COLOR_RGB2BGR))
    print()
    for note in notes:
        print(note)


if __name__ == "__main__":
    main()
