"""Quality sheet: each clip of the corpus edited by each operation, as contact sheets to look at.

Usage: python bench/quality_sheet.py [--out quality-sheet] [--clips ...] [--ops ...] [--stills]

For each clip (real footage of people from tests/corpus.py: a man talking in a
car, ``carphone``; a man riding through a dark street, ``bikes``; pedestrians
seen from above, ``vtest``; Big Buck Bunny as it is and darkened, flat and
over-exposed; the person scene of tests/mediagen.py) and each operation (the
look, each style, "in the style of the image", background and clothing), the
clip is edited as a user's
would be — ``vedit.local_edit.edit_files``: the service's own task path, engine
and output stage, at 720P — and one PNG is written, ``<clip>--<op>.png``: the
source and the output side by side at three times (a tenth, half and nine
tenths of the clip), labelled. ``--stills`` also writes the README's stills
(docs/stills/, 640x360 JPEGs of frame 40) from the person scene's and the dark
clip's edits, with the reference images, and the gallery of painted styles on
real footage (docs/stills/gallery-*.jpg).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import av
import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from corpus import Corpus  # noqa: E402
from mediagen import make_person_video, striped_sweater  # noqa: E402
from vedit.config import Settings  # noqa: E402
from vedit.local_edit import edit_files  # noqa: E402

# operation name -> (prompt, reference image)
OPERATIONS = {
    "look": ("make it look like the reference photo", "rocket"),
    "watercolor": ("把整个画面转换为水彩风格", "coffee"),
    "oil_painting": ("turn it into an oil painting", "coffee"),
    "pencil_sketch": ("make it a pencil sketch", "coffee"),
    "cartoon": ("make it a cartoon", "coffee"),
    "black_and_white": ("black and white", "coffee"),
    "vintage_film": ("vintage film look", "coffee"),
    "style_of_image": ("paint it in the style of the image", "chelsea"),
    "background": ("replace the background with the scene in the image", "rocket"),
    "clothing": ("make the character wear the striped sweater in the image", "stripes"),
}
CLIPS = (
    "carphone",
    "bikes",
    "vtest",
    "bunny",
    "bunny-dark",
    "bunny-flat",
    "bunny-bright",
    "person",
)
REAL = {"carphone": "carphone_pristine", "bikes": "bikes", "vtest": "vtest"}  # corpus names
TIMES = (0.1, 0.5, 0.9)  # where in the clip the rows are taken, as shares of its length
CELL = (480, 270)
# The README's stills: (clip, operation) -> the file's name in docs/stills/.
STILLS = {
    ("person", "background"): "background",
    ("person", "clothing"): "clothing",
    ("person", "watercolor"): "watercolor",
    ("person", "look"): "look",
    ("bunny-dark", "look"): "bunny-dark-look",
    ("bunny-dark", "watercolor"): "bunny-dark-watercolor",
    ("bunny-dark", "cartoon"): "bunny-dark-cartoon",
}
# The gallery of painted styles on real footage of people: (clip, operation) -> file name.
GALLERY = {
    (clip_name, op): f"gallery-{clip_name}-{op}"
    for clip_name in ("carphone", "bikes", "vtest")
    for op in ("watercolor", "oil_painting", "pencil_sketch", "cartoon", "style_of_image")
}
STILL_SOURCES = {
    "person": "before",
    "bunny-dark": "bunny-dark",
    "carphone": "gallery-carphone",
    "bikes": "gallery-bikes",
    "vtest": "gallery-vtest",
}
STILL_SHARE = 40 / 71  # frame 40 of the 72 of a 3 s clip at 24 fps (the person scene's)
SHARE_OF = {"bikes": 0.4}  # bikes.mp4 is a montage: the rider is in its shot at 1.6 s


def reference_image(kind: str, folder: Path) -> Path:
    path = folder / f"{kind}.png"
    if not path.exists():
        from PIL import Image
        from skimage import data

        rgb = striped_sweater() if kind == "stripes" else getattr(data, kind)()
        Image.fromarray(rgb).convert("RGB").save(path)
    return path


def source_clip(name: str, corpus: Corpus, folder: Path) -> Path:
    if name == "person":
        path = folder / "person.mp4"
        return path if path.exists() else make_person_video(path)
    if name in REAL:
        return corpus.accepted(REAL[name], seconds=4.0)
    _, _, exposure = name.partition("-")
    return corpus.variant("bigbuckbunny", exposure or "as_is")


def frames_at(path: Path, shares: tuple[float, ...]) -> list[np.ndarray]:
    """RGB frames of ``path`` at the given shares of its length (the last frame at or before)."""
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        frames = [
            (float(f.pts * f.time_base), f.to_ndarray(format="rgb24")) for f in c.decode(stream)
        ]
    end = frames[-1][0]
    out = []
    for share in shares:
        t = share * end
        out.append(max((f for f in frames if f[0] <= t + 1e-6), key=lambda f: f[0])[1])
    return out


def labelled(rgb: np.ndarray, label: str) -> np.ndarray:
    cell = cv2.resize(rgb, CELL, interpolation=cv2.INTER_AREA)
    bar = np.full((22, CELL[0], 3), 24, np.uint8)
    cv2.putText(bar, label, (6, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (235, 235, 235), 1, cv2.LINE_AA)
    return np.vstack([bar, cell])


def contact_sheet(src: Path, out: Path, title: str) -> np.ndarray:
    """Source and output side by side at :data:`TIMES`, one row each, under a title."""
    rows = []
    for share, a, b in zip(TIMES, frames_at(src, TIMES), frames_at(out, TIMES), strict=True):
        rows.append(
            np.hstack([labelled(a, f"source @ {share:.0%}"), labelled(b, f"output @ {share:.0%}")])
        )
    sheet = np.vstack(rows)
    head = np.full((30, sheet.shape[1], 3), 0, np.uint8)
    cv2.putText(
        head, title, (8, 21), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 1, cv2.LINE_AA
    )
    return np.vstack([head, sheet])


def save_still(rgb: np.ndarray, path: Path) -> None:
    """A JPEG 360 px high (640x360 for a 16:9 frame), the aspect kept."""
    h, w = rgb.shape[:2]
    small = cv2.resize(rgb, (round(w * 360 / h), 360), interpolation=cv2.INTER_AREA)
    cv2.imwrite(str(path), cv2.cvtColor(small, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 82])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument(
        "--out", type=Path, default=Path("quality-sheet"), help="folder for the PNGs (%(default)s)"
    )
    ap.add_argument(
        "--clips", nargs="*", default=list(CLIPS), choices=CLIPS, help="clips (default: all)"
    )
    ap.add_argument(
        "--ops",
        nargs="*",
        default=list(OPERATIONS),
        choices=list(OPERATIONS),
        help="operations (default: all)",
    )
    ap.add_argument(
        "--stills",
        action="store_true",
        help="also rewrite the README's stills in docs/stills/ (person scene, dark clip, the "
        "gallery of painted styles on real footage)",
    )
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="vedit-sheet-"))
    corpus = Corpus(tmp)
    settings = Settings()
    stills = ROOT / "docs" / "stills"
    for clip_name in args.clips:
        src = source_clip(clip_name, corpus, tmp)
        if args.stills and clip_name in STILL_SOURCES:
            save_still(
                frames_at(src, (SHARE_OF.get(clip_name, STILL_SHARE),))[0],
                stills / f"{STILL_SOURCES[clip_name]}.jpg",
            )
        for op in args.ops:
            prompt, ref = OPERATIONS[op]
            dest = tmp / f"{clip_name}--{op}.mp4"
            t = time.perf_counter()
            task = edit_files(
                src, [reference_image(ref, tmp)], prompt, dest, settings=settings, seed=7
            )
            took = time.perf_counter() - t
            if not dest.exists():
                print(f"{clip_name} {op}: FAILED {task.error_code}: {task.error_message}")
                continue
            plan = (task.edit_plan or {}).get("operation", "?")
            title = f"{clip_name} - {op} ({plan}; reference: {ref}) - {took:.1f} s"
            sheet = contact_sheet(src, dest, title)
            png = args.out / f"{clip_name}--{op}.png"
            cv2.imwrite(str(png), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
            print(f"{png}  ({took:.1f} s)")
            still = STILLS.get((clip_name, op), GALLERY.get((clip_name, op)))
            still = still if args.stills else None
            if still is not None:
                share = SHARE_OF.get(clip_name, STILL_SHARE)
                save_still(frames_at(dest, (share,))[0], stills / f"{still}.jpg")
                if clip_name == "person":
                    ref_rgb = cv2.imread(str(reference_image(ref, tmp)))[..., ::-1]
                    save_still(ref_rgb, stills / f"{op}-reference.jpg")


if __name__ == "__main__":
    main()
