"""The ``classic`` engine: edits on the CPU, chosen by the edit plan.

- ``color_grade``: the reference's look (``look.py``), the default;
- ``stylize``: a whole-frame style: painted by a style network after a picture made for
  the style and tinted by the reference, or after the reference itself (``styles.py``);
- ``replace_background``: the person kept, the reference behind them (``person/background.py``);
- ``restyle_clothing``: the upper-body garment in the reference's colours and texture
  (``person/clothing.py``).

The last two are ``engines/person/``'s editors, offered where the person models run
(``person/check.py``); a person edit first looks for people in frames sampled from the
clip, and with nobody found the plan falls back to the look and says so (``applied``
false), and the look is what is made.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vedit.engines.base import EditJob, PersonTally, PreparedEdit, Unchanged
from vedit.engines.classic.look import LookEditor
from vedit.engines.classic.styles import StyleEditor
from vedit.engines.person.background import BackgroundEditor
from vedit.engines.person.check import (
    PERSON_OPERATIONS,
    PERSON_SAMPLES_NEEDED,
    PersonModels,
    look_in_clip,
)
from vedit.engines.person.clothing import ClothingEditor
from vedit.engines.person.people import DETECT_EVERY, WATCH_EVERY, People
from vedit.engines.plan import person_checked
from vedit.options import Options

log = logging.getLogger("vedit.engines.classic")


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
        self.person_models = PersonModels(self.name, options.models_dir)
        self.operations = self.person_models.operations
        self.why_not = self.person_models.why_not

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
        seen = look_in_clip(
            job.source, width=job.width, height=job.height, fps=job.fps, frames=job.frames,
            tracker=editor.tracker, people=people,
        )  # fmt: skip
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
