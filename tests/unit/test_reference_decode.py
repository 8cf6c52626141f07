"""A reference image is decoded no larger than the output needs, with bounded memory
(issue 19): ``probe.load_image`` with ``cover``, as the worker calls it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageOps

from conftest import MediaServer, task_row
from hostile_media import bmp_rle_bomb, pillow_bomb, png_bomb
from vedit.config import Settings
from vedit.engines.base import REFERENCE_COVER, REFERENCE_MIN_SIDE, reference_cover
from vedit.errors import MediaCorrupt, MediaFormat
from vedit.media.limits import MediaLimits
from vedit.media.probe import load_image, reduction
from vedit.media.video import output_size

S = MediaLimits.of(Settings())
SRC = Path(__file__).resolve().parents[2] / "src"


def picture(width: int, height: int) -> np.ndarray:
    """Smooth gradients and a 40 px checker: structure in both directions, small files."""
    r = np.linspace(0, 255, width).astype(np.uint8)[None, :]
    g = np.linspace(0, 255, height).astype(np.uint8)[:, None]
    x, y = np.arange(width)[None, :] // 40, np.arange(height)[:, None] // 40
    b = (((x + y) % 2) * 180 + 40).astype(np.uint8)
    shape = (height, width)
    return np.dstack([np.broadcast_to(r, shape), np.broadcast_to(g, shape), b])


def save(rgb: np.ndarray, path: Path, fmt: str, **options: Any) -> Path:
    img = Image.fromarray(rgb)
    if fmt == "WEBP-alpha":
        img.putalpha(200)
        img.save(path, format="WEBP", lossless=True, method=0)
    else:
        img.save(path, format=fmt, **options)
    return path


FORMATS = {
    "png": ("PNG", {}),
    "jpeg": ("JPEG", {"quality": 92}),
    "progressive-jpeg": ("JPEG", {"quality": 92, "progressive": True, "subsampling": 0}),
    "webp": ("WEBP", {"quality": 90}),
    "webp-alpha": ("WEBP-alpha", {}),
    "bmp": ("BMP", {}),
}


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A 2400x1800 reference in each accepted format (and kind of JPEG and WEBP)."""
    d = tmp_path_factory.mktemp("references")
    rgb = picture(2400, 1800)
    return {name: save(rgb, d / f"ref-{name}", fmt, **o) for name, (fmt, o) in FORMATS.items()}


def test_the_reduction_is_the_largest_whole_factor_that_still_covers() -> None:
    assert reduction(6000, 6000, None) == 1
    assert reduction(6000, 6000, (2880, 1620)) == 2
    assert reduction(6000, 4000, (1920, 1080)) == 3
    assert reduction(2000, 1000, (2880, 1620)) == 1  # smaller than the cover: as it is
    assert reduction(9487, 3795, (6048, 1024)) == 1  # an 8:1 output needs its whole width


def test_the_cover_is_the_most_any_engine_uses_a_reference_at() -> None:
    from vedit.engines.person.background import MARGIN
    from vedit.engines.vace.conditions import PERSON_SHORT_SIDE

    # The background's cover of the frame and its margin, at engine vace's person-model
    # size, which is above the output's only for the narrowest output (8:1 at 720P).
    narrowest = min(output_size(8 * 400, 400, "720P"))
    needed = (1 + 2 * MARGIN) * max(1.0, PERSON_SHORT_SIDE / narrowest)
    assert needed <= REFERENCE_COVER
    assert reference_cover(1920, 1080) == (2880, 1620)
    assert reference_cover(4032, 504) == (6048, REFERENCE_MIN_SIDE)


@pytest.mark.parametrize("name", list(FORMATS))
def test_a_reference_is_decoded_at_the_smallest_size_that_covers(big, name) -> None:
    path = big[name]
    whole = load_image(path, S)
    assert whole.shape == (1800, 2400, 3) and whole.dtype == np.uint8
    small = load_image(path, S, cover=(600, 450))
    assert small.shape == (450, 600, 3) and small.dtype == np.uint8
    assert small.flags.c_contiguous and small.flags.writeable
    # The same picture: the whole one averaged over 4x4 blocks, within the codec's noise
    # (libjpeg's scaled decode is not an average of its full decode).
    averaged = whole.reshape(450, 4, 600, 4, 3).mean(axis=(1, 3))
    assert np.abs(small.astype(float) - averaged).mean() < 2.5
    # A cover one pixel larger than a quarter: a third is the most that still covers.
    assert load_image(path, S, cover=(601, 450)).shape == (600, 800, 3)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_as_pillow_does(tmp_path, orientation) -> None:
    exif = Image.Exif()
    exif[0x0112] = orientation
    rgb = picture(640, 400)
    for fmt in ("PNG", "JPEG"):
        path = tmp_path / f"o{orientation}.{fmt.lower()}"
        Image.fromarray(rgb).save(path, format=fmt, exif=exif.tobytes())
        with Image.open(path) as img:
            expected = np.asarray(ImageOps.exif_transpose(img).convert("RGB"))
        assert np.array_equal(load_image(path, S), expected), fmt


def test_the_cover_is_upright_for_a_picture_stored_on_its_side(tmp_path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # stored 2400x1800, shown 1800x2400
    path = tmp_path / "side.jpg"
    Image.fromarray(picture(2400, 1800)).save(path, exif=exif.tobytes())
    assert load_image(path, S, cover=(450, 600)).shape == (600, 450, 3)


@pytest.mark.parametrize("name", ["png", "progressive-jpeg", "bmp", "webp"])
def test_a_cut_reference_is_refused(big, tmp_path, name) -> None:
    """OpenCV alone decodes a cut-short PNG with its missing rows filled in, silently."""
    data = big[name].read_bytes()
    cut = tmp_path / f"cut-{name}"
    cut.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises((MediaCorrupt, MediaFormat), match=r"^media\[1\] \(reference_image\): "):
        load_image(cut, S, cover=(600, 450))


MEASURE = """
import json, re, sys
from pathlib import Path
from vedit.config import Settings
from vedit.media.limits import MediaLimits
from vedit.media.probe import load_image

def kib(field):
    status = Path("/proc/self/status").read_text()
    return int(re.search(field + r":\\s+(\\d+)", status).group(1))

import cv2, PIL.WebPImagePlugin  # loaded before the count, as in a worker
Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
before = kib("VmRSS")
rgb = load_image(Path(sys.argv[1]), MediaLimits.of(Settings()), cover=(2880, 1620))
print(json.dumps({"shape": list(rgb.shape), "peak_mb": (kib("VmHWM") - before) / 1024}))
"""


@pytest.fixture(scope="module")
def largest(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """References of the largest size allowed (36,000,000 pixels), each under 1 MB."""
    d = tmp_path_factory.mktemp("largest")
    return {
        "png": png_bomb(d / "bomb.png"),
        "webp": pillow_bomb(d / "bomb.webp", "WEBP", quality=50),
        "bmp": bmp_rle_bomb(d / "bomb.bmp"),
    }


@pytest.mark.parametrize(("name", "bound_mb"), [("png", 160), ("webp", 160), ("bmp", 130)])
def test_a_largest_reference_costs_a_bounded_peak(largest, name, bound_mb) -> None:
    """In a fresh process, as the worker decodes it for a 1080P 16:9 output; the code before
    held 481 MB (PNG), 756 MB (WEBP) and 378 MB (BMP) more at its peak."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError as exc:
        pytest.skip(f"the peak RSS cannot be reset here: {exc}")
    out = subprocess.run(
        [sys.executable, "-c", MEASURE, str(largest[name])],
        env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen["shape"] == [3000, 3000, 3]
    assert seen["peak_mb"] < bound_mb, seen


class _Lease:
    """The worker's lease, as ``obtain_inputs`` uses it."""

    def check(self) -> None:
        pass

    def progress(self, fraction: float) -> None:
        pass


def test_the_worker_decodes_a_reference_no_larger_than_its_output_needs(
    media_dir, tmp_path, store
) -> None:
    """A 720P 16:9 output (1280x720): a 4800x3600 reference is kept at 2400x1800."""
    from vedit.runtime.context import build_context
    from vedit.runtime.steps import obtain_inputs

    served = tmp_path / "served"
    served.mkdir()
    shutil.copy(media_dir / "wide.mp4", served / "v.mp4")
    Image.fromarray(picture(4800, 3600)).save(served / "i.png")
    srv = MediaServer(served)
    try:
        settings = Settings(data_dir=tmp_path / "data", media_allow=[srv.hostport])
        row = task_row()
        row["media"] = [
            {"type": "video", "url": srv.url("v.mp4")},
            {"type": "reference_image", "url": srv.url("i.png")},
        ]
        store.add_many([row])
        task = store.claim_next("w")
        assert task is not None
        ctx = build_context(settings, "worker", worker_id="w")
        ctx.store = store
        work = tmp_path / "work"
        work.mkdir()
        checked = obtain_inputs(task, ctx, _Lease(), work)  # type: ignore[arg-type]
    finally:
        srv.close()
    assert (checked.spec.width, checked.spec.height) == (1280, 720)
    assert [r.shape for r in checked.references] == [(1800, 2400, 3)]
