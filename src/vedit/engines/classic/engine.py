"""The ``classic`` engine: edits on the CPU, chosen by the edit plan.

- ``color_grade``: the reference's look (``look.py``), the default;
- ``stylize``: a whole-frame style tinted by the reference (``styles.py``);
- ``replace_background``: the person kept, the reference behind them (``background.py``);
- ``restyle_clothing``: the upper-body garment in the reference's colours and texture
  (``clothing.py``).

The last two need the person models (``segment.py``, ``pose.py``); where they are
not installed the engine does not offer those operations, and the plan falls
back to the look and says why.
"""

from __future__ import annotations

from pathlib import Path

from vedit.engines.base import EditJob
from vedit.engines.classic.background import BackgroundEditor
from vedit.engines.classic.clothing import ClothingEditor
from vedit.engines.classic.look import LookEditor
from vedit.engines.classic.pose import DETECTOR, LANDMARKER
from vedit.engines.classic.segment import MODELS, ModelUnavailable, find_model
from vedit.engines.classic.styles import StyleEditor
from vedit.media.video import FrameEditor

PERSON_OPERATIONS = frozenset({"replace_background", "restyle_clothing"})


class ClassicEngine:
    """The reference's look (luma histogram matching, chroma Monge-Kantorovich transfer),
    whole-frame styles tinted by the reference, and — where the person models are
    installed — background replacement and clothing from the reference."""

    name = "classic"
    kind = "frame"

    def __init__(self, models_dir: Path | None = None) -> None:
        self.missing = _missing_models(models_dir)
        frame_ops = frozenset({"color_grade", "stylize", "none"})
        self.operations = frame_ops if self.missing else frame_ops | PERSON_OPERATIONS

    def why_not(self, operation: str) -> str:
        if self.missing and operation in PERSON_OPERATIONS:
            return f"engine classic needs the person models for {operation}: {self.missing}"
        return f"engine classic cannot do {operation}"

    def prepare(self, job: EditJob) -> FrameEditor:
        plan = job.plan
        if plan.operation == "stylize" and plan.style:
            tint = job.references[0] if job.references else None
            return StyleEditor(plan.style, tint, job.width, job.height, job.seed)
        if plan.operation == "none" or not job.references:
            return Unchanged()
        ref = job.references[0]  # the first reference image; classic uses one
        if plan.operation == "replace_background":
            return BackgroundEditor(ref, job.width, job.height, models_dir=job.models_dir)
        if plan.operation == "restyle_clothing":
            return ClothingEditor(ref, job.width, job.height, models_dir=job.models_dir)
        return LookEditor(ref)


class Unchanged:
    """The frames as they are (a plan with nothing to do): the output contract still holds."""

    pixel_format = "yuv420p"

    def __call__(self, frame: object, index: int) -> None:
        return None


def _missing_models(models_dir: Path | None) -> str:
    """Why the person models cannot run here, or "" when they can."""
    try:
        import ai_edge_litert.interpreter  # noqa: F401
    except ImportError as exc:
        return f"ai-edge-litert is not installed ({exc})"
    try:
        for model in (*MODELS.values(), DETECTOR, LANDMARKER):
            find_model(model, models_dir)
    except ModelUnavailable as exc:
        return str(exc)
    return ""
