"""The ``classic`` engine: edits on the CPU, chosen by the edit plan.

- ``color_grade``: the reference's look (``look.py``), the default;
- ``stylize``: a whole-frame style: painted by a style network after a picture made for
  the style and tinted by the reference, or after the reference itself (``styles.py``);
- ``replace_background``: the person kept, the reference behind them (``background.py``);
- ``restyle_clothing``: the upper-body garment in the reference's colours and texture
  (``clothing.py``).

The last two need the person models (``segment.py``, ``pose.py``); where they are
not installed the engine does not offer those operations (a warning says so at
start), and a task that asks for one is refused with what is missing
(:func:`person_models_refusal`), never made as another edit. Where they are, a
person edit first looks for people in frames sampled from the clip
(``look_for_person``): the pose model, made for a person filling much of the frame,
and the person detector (``people.py``), which finds people of any size, each then
segmented on a crop. With nobody found, the plan falls back to the look and says so
(``applied`` false), and the look is what is made.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from vedit.engines.base import EditJob, PersonTally, PreparedEdit
from vedit.engines.classic.background import BackgroundEditor
from vedit.engines.classic.clothing import ClothingEditor
from vedit.engines.classic.look import LookEditor
from vedit.engines.classic.people import DETECT_EVERY, SMALL, WATCH_EVERY, People
from vedit.engines.classic.pose import DETECTOR, LANDMARKER, PoseTracker
from vedit.engines.classic.segment import MODELS, ModelUnavailable, find_model
from vedit.engines.classic.styles import StyleEditor
from vedit.engines.plan import person_checked
from vedit.media.frames import YuvFrame
from vedit.media.video import sample_frames
from vedit.options import Options

log = logging.getLogger("vedit.engines.classic")

PERSON_OPERATIONS = frozenset({"replace_background", "restyle_clothing"})
PERSON_EDITS = {
    "replace_background": "replace the background",
    "restyle_clothing": "restyle the clothing",
}
PERSON_SAMPLES = 8  # frames sampled from the clip (one in each eighth of the edited span)
PERSON_SAMPLES_NEEDED = 2  # sampled frames with a person that settle it: the edit runs


@dataclass(frozen=True)
class ClassicOptions(Options):
    """Where the person models are (``VEDIT_MODELS_DIR``; None: the mediapipe wheel's)."""

    models_dir: Path | None = None


class ClassicEngine:
    """The reference's look (luma histogram matching, chroma Monge-Kantorovich transfer),
    whole-frame styles tinted by the reference, and — where the person models are
    installed — background replacement and clothing from the reference."""

    name = "classic"
    kind = "frame"

    Options = ClassicOptions

    def __init__(self, options: ClassicOptions = ClassicOptions()) -> None:
        self.missing = missing_person_models(options.models_dir)
        if self.missing:
            log.warning(
                "engine classic: background and clothing edits need the person models, and "
                "tasks that ask for them are refused: %s", self.missing,
            )  # fmt: skip
        frame_ops = frozenset({"color_grade", "stylize", "none"})
        self.operations = frame_ops if self.missing else frame_ops | PERSON_OPERATIONS

    def why_not(self, operation: str) -> str:
        if self.missing and operation in PERSON_OPERATIONS:
            return person_models_refusal(self.name, operation)
        return f"engine classic cannot do {operation}"

    def prepare(self, job: EditJob) -> PreparedEdit:
        plan = job.plan
        if plan.operation == "stylize" and plan.style:
            tint = job.references[0] if job.references else None
            editor = StyleEditor(
                plan.style, tint, job.width, job.height, job.seed, plan.style_strength,
                job.models_dir,
            )  # fmt: skip
            return PreparedEdit(editor, plan)
        if plan.operation == "none" or not job.references:
            return PreparedEdit(Unchanged(), plan)
        ref = job.references[0]  # the first reference image; classic uses one
        if plan.operation in PERSON_OPERATIONS:
            return self._person_edit(job, ref)
        return PreparedEdit(LookEditor(ref), plan)

    def _person_edit(self, job: EditJob, ref: np.ndarray) -> PreparedEdit:
        """Background or clothing — when the clip has people to edit. The pose model and the
        person detector look at frames sampled from the clip first; with someone in too few of
        them the plan falls back to the reference's look, and the look is what is made. What
        they saw sets the edit up: the whole-frame models where the pose model found its
        person, the detector (on tiles where people are small) and crops for the people it
        missed. Without a ``source`` to look at, the edit runs unchecked with the whole-frame
        models alone (its count still says what it found)."""
        tally = PersonTally()
        kind = BackgroundEditor if job.plan.operation == "replace_background" else ClothingEditor
        editor = kind(ref, job.width, job.height, models_dir=job.models_dir, tally=tally)
        if job.source is None:
            return PreparedEdit(editor, job.plan, tally)
        people = People(job.width, job.height, models_dir=job.models_dir)
        samples = sample_frames(
            job.source,
            width=job.width,
            height=job.height,
            fps=job.fps,
            frames=job.frames,
            count=PERSON_SAMPLES,
        )
        with closing(samples):
            seen = look_for_person((frame for _, frame in samples), editor.tracker, people=people)
        plan = person_checked(
            job.plan,
            seen.sampled,
            seen.with_person,
            PERSON_SAMPLES_NEEDED,
            posed=seen.posed,
            detected=seen.detected,
        )
        if plan.operation != job.plan.operation:
            return PreparedEdit(LookEditor(ref), plan)
        # People the pose model missed: followed from the start, looked for often, on tiles
        # where they are small. Else the detector only watches for newcomers, now and then.
        people.tiles = seen.small
        people.detect_every = DETECT_EVERY if seen.detected else WATCH_EVERY
        people.group = kind is BackgroundEditor  # a garment is placed on each person alone
        editor.people = people
        editor.whole_frame = seen.posed > 0
        log.info(
            "engine classic: task %s: people found in %d of %d sampled frames (pose model %d, "
            "detector beside it %d, small: %s)", job.task_id, seen.with_person, seen.sampled,
            seen.posed, seen.detected, seen.small,
        )  # fmt: skip
        return PreparedEdit(editor, plan, tally)


@dataclass(frozen=True)
class PersonSightings:
    """What the person models saw in frames sampled from a clip: ``with_person`` frames had
    someone; in ``posed`` of them the pose model found its person, in ``detected`` the person
    detector found people it did not; ``small``: someone was small (under :data:`SMALL` of
    the frame's height)."""

    sampled: int
    with_person: int
    posed: int = 0
    detected: int = 0
    small: bool = False


def look_for_person(
    frames: Iterable[YuvFrame],
    tracker: PoseTracker,
    enough: int = PERSON_SAMPLES_NEEDED,
    people: People | None = None,
) -> PersonSightings:
    """Runs the pose model (the same one the edit uses, at its working size) on each frame
    afresh, and ``people``'s detector (whole frame and tiles, each box confirmed on its crop)
    for those the pose model misses; stops once ``enough`` frames had someone. ``tracker``
    is left reset, ready for the edit."""
    sampled = with_person = posed = detected = 0
    small = False
    for frame in frames:
        tracker.reset()  # samples are far apart: nothing carries over from one to the next
        sampled += 1
        pose = tracker(frame.small_rgb(tracker.width, tracker.height))
        others = []
        if people is not None:
            half = (frame.width // 2, frame.height // 2)
            covered = None if pose is None else cv2.resize(pose.mask, half)
            others = people.sightings(frame, covered)
        posed += pose is not None
        detected += bool(others)
        small = small or any(box.height < SMALL * frame.height for box in others)
        with_person += pose is not None or bool(others)
        if with_person >= enough:
            break
    tracker.reset()
    return PersonSightings(sampled, with_person, posed, detected, small)


class Unchanged:
    """The frames as they are (a plan with nothing to do): the output contract still holds."""

    pixel_format = "yuv420p"

    def __call__(self, frame: object, index: int) -> None:
        return None


def person_models_refusal(engine: str, operation: str) -> str:
    """Why a task asking for the person edit ``operation`` is refused where the person models
    are missing: for the client, so no path of this server (the log has those)."""
    return (
        f"engine {engine} cannot {PERSON_EDITS[operation]} on this server: the person models "
        "it needs are not installed (its operator installs them with pip install --no-deps "
        "mediapipe==0.10.21, or sets VEDIT_MODELS_DIR); a look or a style can be made"
    )


def missing_person_models(models_dir: Path | None) -> str:
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
