"""From the edit plan to what the model is given: for each frame, the control frame and
the region to regenerate; for the task, a prompt that describes the video to make.

- ``restyle_clothing``: the garment (``classic``'s clothing mask, grown so a new garment
  may have its own outline) is regenerated; the reference images show the garment;
- ``replace_background``: all but the person (``classic``'s person mask, its outermost
  edge included, so hair and edges are redrawn against the new scene) is regenerated;
  the reference images show the scene;
- ``stylize`` and ``color_grade``: the whole frame, from the clip in grey (VACE's
  colourisation task: the model keeps every shape and movement and paints it anew), in
  the style the prompt names or in the reference's colours and light.

Inside a region the control frame is flat grey, so the model does not copy what was
there. The prompt is a description (VACE follows descriptions of the video, not
commands), in Chinese for a Chinese prompt, followed by the user's own words.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from vedit.engines.base import PersonTally
from vedit.engines.person.background import BackgroundEditor
from vedit.engines.person.clothing import ClothingEditor
from vedit.engines.person.pose import PoseTracker
from vedit.engines.plan import EditPlan
from vedit.media.frames import YuvFrame

GREY = 127  # a region's control pixels: nothing for the model to copy
GARMENT_GROWTH = 0.03  # the garment's region grows by this share of the short side
EDGE = 0.01  # the person's outermost edge (this share of the short side) is redrawn too
PERSON_SHORT_SIDE = 360  # the person models see frames at least this tall (or wide)

# (English, Chinese) descriptions of the video to make, per operation.
DESCRIPTIONS = {
    "restyle_clothing": (
        "The person wears the garment shown in the reference image, with its colours, "
        "pattern and fabric; their face, hair, body, pose and movements and everything "
        "around them stay the same.",
        "人物穿着参考图中的服装，颜色、图案和面料与参考图一致；人物的面部、发型、身体、姿势、动作以及周围的一切保持不变。",
    ),
    "replace_background": (
        "The same person, with the same pose and movements, in front of the scene shown "
        "in the reference image, which fills the whole background.",
        "同一个人物，姿势和动作不变，身后是参考图中的场景，场景铺满整个背景。",
    ),
    "stylize": (
        "The same scene, people and movements, drawn as {style}.",
        "同样的场景、人物和动作，画成{style}。",
    ),
    "color_grade": (
        "The same scene, people and movements, in the colours, light and mood of the "
        "reference image.",
        "同样的场景、人物和动作，色彩、光线和氛围与参考图一致。",
    ),
}
STYLE_WORDS = {
    "watercolor": ("a watercolour painting with soft washes of colour", "柔和的水彩画"),
    "oil_painting": ("an oil painting with visible brush strokes", "笔触明显的油画"),
    "pencil_sketch": ("a pencil sketch in grey lines on white paper", "白纸上的铅笔素描"),
    "cartoon": ("a cartoon with clean outlines and flat colours", "线条干净、色块平涂的卡通动画"),
    "black_and_white": ("a black-and-white film", "黑白电影"),
    "reference": (
        "a painting in the style of the reference image, with its brushwork and colours",
        "与参考图风格一致的画作，笔触和色彩与参考图相同",
    ),
    "vintage_film": (
        "a vintage film with warm, faded colours and grain",
        "色彩温暖褪色、带颗粒感的复古胶片电影",
    ),
}
TINTED = (" in the colours of the reference image", "，使用参考图的色彩")
NEGATIVE = (
    "blurry, low quality, worst quality, jpeg artifacts, distorted, deformed hands, extra "
    "fingers, extra limbs, disfigured face, flicker, subtitles, watermark, text, still frame"
)
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uf900-\ufaff]")


def describe(plan: EditPlan, prompt: str) -> str:
    """The prompt the model is given: a description of the video ``plan`` makes, then the
    user's ``prompt`` as written."""
    chinese = bool(_CJK.search(prompt))
    operation = plan.operation if plan.operation in DESCRIPTIONS else "color_grade"
    text = DESCRIPTIONS[operation][chinese]
    if operation == "stylize":
        style = STYLE_WORDS.get(plan.style or "", (plan.style or "a painting",) * 2)
        text = text.format(style=style[chinese])
        if plan.reference_role == "style_tint":
            text = text[:-1] + TINTED[chinese] + text[-1]
    return f"{text}{'' if chinese else ' '}{prompt.strip()}".strip()


@dataclass(frozen=True)
class Condition:
    """One frame as the model gets it: ``control`` (RGB) and the ``region`` to regenerate
    (0..1; None: the whole frame)."""

    control: np.ndarray
    region: np.ndarray | None


class Conditioner:
    """Makes each frame's :class:`Condition` for ``plan``, in order (the person models
    follow the person from frame to frame); ``tally`` counts the frames with a person."""

    def __init__(
        self,
        plan: EditPlan,
        references: list[np.ndarray],
        width: int,
        height: int,
        *,
        frame_size: tuple[int, int] | None = None,
        models_dir: Path | None = None,
        tally: PersonTally | None = None,
    ) -> None:
        """Conditions of ``width`` x ``height`` (the model's size) from frames of
        ``frame_size`` (the person models' size: see :func:`person_frame_size`)."""
        self.width, self.height = width, height
        self.frame_size = frame_size or (width, height)
        self.tally = tally if tally is not None else PersonTally()
        short = min(width, height)
        self._grow = _disc(max(1, round(short * GARMENT_GROWTH)))
        self._edge = _disc(max(1, round(short * EDGE)))
        self._background: BackgroundEditor | None = None
        self._clothing: ClothingEditor | None = None
        fw, fh = self.frame_size
        if plan.operation == "replace_background":
            self._background = BackgroundEditor(references[0], fw, fh, models_dir=models_dir)
        elif plan.operation == "restyle_clothing":
            self._clothing = ClothingEditor(references[0], fw, fh, models_dir=models_dir)

    @property
    def tracker(self) -> PoseTracker | None:
        """The pose model of a person edit (to look for a person before the edit)."""
        editor = self._background or self._clothing
        return editor.tracker if editor is not None else None

    def __call__(self, frame: YuvFrame, index: int) -> Condition:
        rgb = frame.small_rgb(self.width, self.height)
        size = (self.width, self.height)
        if self._background is not None:
            person = cv2.resize(self._background.person(frame, index), size) > 0.5
            self.tally.count(bool(person.any()))
            kept = cv2.erode(person.view(np.uint8), self._edge)
            return _region_condition(rgb, 1.0 - kept.astype(np.float32))
        if self._clothing is not None:
            garment = self._clothing.garment(frame, index)
            self.tally.count(garment is not None)
            if garment is None:
                return Condition(rgb, np.zeros((self.height, self.width), np.float32))
            inside = (cv2.resize(garment, size) > 0.5).view(np.uint8)
            return _region_condition(rgb, cv2.dilate(inside, self._grow).astype(np.float32))
        grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        return Condition(cv2.merge([grey, grey, grey]), None)


def person_frame_size(width: int, height: int) -> tuple[int, int]:
    """The size the person models look at frames of the model's ``width`` x ``height``: the
    same, or, for a small model size, scaled up to a short side of ``PERSON_SHORT_SIDE``
    (their masks are scaled down to the model's size after)."""
    short = min(width, height)
    if short >= PERSON_SHORT_SIDE:
        return width, height
    scale = PERSON_SHORT_SIDE / short
    return 2 * round(width * scale / 2), 2 * round(height * scale / 2)


def _region_condition(rgb: np.ndarray, region: np.ndarray) -> Condition:
    control = rgb.copy()
    control[region > 0.5] = GREY
    return Condition(control, region)


def _disc(radius: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
