"""Is there a person? Whether the person models run here, and a look at the clip first.

A person edit needs the person models (``segment.py``, ``pose.py``); where they are not
installed an engine does not offer those operations (a warning says so at start), and a
task that asks for one is refused with what is missing (:meth:`PersonModels.why_not`),
never made as another edit. Where they are, a person edit first looks for people in
frames sampled from the clip (:func:`look_in_clip`): the pose model, made for a person
filling much of the frame, and the person detector (``people.py``), which finds people
of any size. With nobody found, the plan falls back to the look and says so.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import cv2

from vedit.engines.person.people import SMALL, People
from vedit.engines.person.pose import DETECTOR, LANDMARKER, PoseTracker
from vedit.engines.person.segment import MODELS, ModelUnavailable, find_model
from vedit.media.frames import YuvFrame
from vedit.media.video import sample_frames

log = logging.getLogger("vedit.engines.person")

FRAME_OPERATIONS = frozenset({"color_grade", "stylize", "none"})
PERSON_OPERATIONS = frozenset({"replace_background", "restyle_clothing"})
PERSON_EDITS = {
    "replace_background": "replace the background",
    "restyle_clothing": "restyle the clothing",
}
PERSON_SAMPLES = 8  # frames sampled from the clip (one in each eighth of the edited span)
PERSON_SAMPLES_NEEDED = 2  # sampled frames with a person that settle it: the edit runs


class PersonModels:
    """Whether the person models run here for engine ``engine``, and so what it offers."""

    def __init__(self, engine: str, models_dir: Path | None) -> None:
        self.engine = engine
        self.missing = missing_person_models(models_dir)
        if self.missing:
            log.warning(
                "engine %s: background and clothing edits need the person models, and "
                "tasks that ask for them are refused: %s", engine, self.missing,
            )  # fmt: skip
        self.operations = FRAME_OPERATIONS | (frozenset() if self.missing else PERSON_OPERATIONS)

    def why_not(self, operation: str) -> str:
        """Why ``operation`` is refused here (for the client: no path of this server)."""
        if self.missing and operation in PERSON_OPERATIONS:
            return person_models_refusal(self.engine, operation)
        return f"engine {self.engine} cannot do {operation}"


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


def look_in_clip(
    source: Path,
    *,
    width: int,
    height: int,
    fps: int,
    frames: int,
    tracker: PoseTracker,
    people: People | None = None,
) -> PersonSightings:
    """:func:`look_for_person` in :data:`PERSON_SAMPLES` frames sampled from ``source`` at
    ``width`` x ``height`` (the frames the edit will see)."""
    samples = sample_frames(
        source, width=width, height=height, fps=fps, frames=frames, count=PERSON_SAMPLES
    )
    with closing(samples):
        return look_for_person((frame for _, frame in samples), tracker, people=people)


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
