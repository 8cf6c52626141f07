"""What an engine is: it turns the request's media into edited frames, nothing else.

Engines never see HTTP requests or the database. An engine receives what it
needs in an :class:`EditJob` and returns one of two things:

- a :class:`PreparedEdit` (engine ``classic``): the
  :class:`~vedit.media.video.FrameEditor` that the output stage (``media/video.py``)
  calls for every output frame;
- a :class:`PreparedClip` (engine ``vace``, a generative model that works on
  windows of frames): a :class:`ClipEditor` that receives the source frames at
  its own rate and size and yields the edited ones; ``engines/clip.py`` turns
  them into the output stage's frames.

Either carries the plan it carries out — the job's, or the engine's revision
of it after looking at the clip — and once every frame is edited, ``outcome()``
is the plan as carried out.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from vedit.engines.plan import EditPlan, carried_out
from vedit.media.frames import YuvFrame
from vedit.media.video import FrameEditor

if TYPE_CHECKING:
    pass


REFERENCE_COVER = 1.5
"""A reference image is kept at least this many times the output frame's width and height
(and :data:`REFERENCE_MIN_SIDE`): its largest use is the background edit's cover of the
frame plus a margin for the camera (1.24x, ``person/background.py``), made by engine vace
at a person-model size of up to 1.07x the output; the look (256 px), a style (256 px) and
the clothing's texture (512 px from the middle 60 %) take less. The worker decodes no
more of it than that (``probe.load_image``)."""
REFERENCE_MIN_SIDE = 1024


def reference_cover(width: int, height: int) -> tuple[int, int]:
    """The size a reference image must still cover for an output of ``width`` x ``height``."""
    return (
        max(REFERENCE_MIN_SIDE, math.ceil(width * REFERENCE_COVER)),
        max(REFERENCE_MIN_SIDE, math.ceil(height * REFERENCE_COVER)),
    )


@dataclass(frozen=True)
class EditJob:
    """One edit: the plan, the reference image(s), the seed and the output geometry."""

    prompt: str
    plan: EditPlan
    references: list[np.ndarray]
    seed: int
    width: int
    height: int
    fps: int
    frames: int
    models_dir: Path | None = None
    source: Path | None = None  # the source video, for an engine that looks at the clip first
    task_id: str = ""  # for the engine's log lines


@dataclass
class PersonTally:
    """A person edit's count, kept while it runs: the frames it edited, and in how many of
    them it found the person (and so edited them as the plan says)."""

    frames: int = 0
    with_person: int = 0

    def count(self, found: bool) -> None:
        self.frames += 1
        self.with_person += found

    def carried_out(self, plan: EditPlan) -> EditPlan:
        """``plan`` (a person edit) as carried out, by this count."""
        return carried_out(plan, self.frames, self.with_person)


class Unchanged:
    """The frames as they are (a plan with nothing to do): the output contract still holds."""

    pixel_format = "yuv420p"

    def __call__(self, frame: object, index: int) -> None:
        return None


@dataclass(frozen=True)
class PreparedEdit:
    """An edit ready to run: the per-frame ``editor`` and the ``plan`` it carries out;
    ``person`` is counted while a person edit runs."""

    editor: FrameEditor
    plan: EditPlan
    person: PersonTally | None = None

    def outcome(self) -> EditPlan:
        """The plan as carried out, once every frame went through ``editor``."""
        return self.person.carried_out(self.plan) if self.person else carried_out(self.plan)


@dataclass(frozen=True)
class ClipFrame:
    """One frame a clip editor made: ``rgb`` at the editor's size, and the ``region`` it
    regenerated (0..1, same size; None: the whole frame). Outside the region the output
    keeps the source's own pixels, at the output's full size."""

    rgb: np.ndarray
    region: np.ndarray | None


class ClipEditor(Protocol):
    """Edits a whole clip, window by window (a generative video model).

    It works at ``fps`` and ``width`` x ``height``: the source frames come at that rate and
    size (``media.video.clip_source``), and it yields exactly one :class:`ClipFrame` per
    source frame, in order. ``progress(fraction)`` is called as the work goes on (0..1);
    it raises to stop the edit (a cancel, a worker asked to stop), which the editor lets
    through.
    """

    fps: int
    width: int
    height: int

    def __call__(
        self, frames: Iterator[YuvFrame], count: int, progress: Callable[[float], None]
    ) -> Iterator[ClipFrame]: ...


@dataclass(frozen=True)
class PreparedClip:
    """A clip edit ready to run: the ``editor`` and the ``plan`` it carries out; ``person``
    is counted while a person edit runs."""

    editor: ClipEditor
    plan: EditPlan
    person: PersonTally | None = None

    def outcome(self) -> EditPlan:
        """The plan as carried out, once the whole clip went through ``editor``."""
        return self.person.carried_out(self.plan) if self.person else carried_out(self.plan)


class Engine(Protocol):
    """An engine that edits on this machine: frame by frame, or a clip at a time."""

    name: str
    kind: str  # "frame" or "clip" (edits here); the relay engine's kind is "relay"
    operations: frozenset[str]  # the plan operations it carries out (engines/plan.py)

    def why_not(self, operation: str) -> str:
        """Why this engine does not carry out ``operation`` here: the message of the task
        that asks for it, which is refused (shown to the client: no path of this server)."""
        ...

    def prepare(self, job: EditJob) -> PreparedEdit | PreparedClip:
        """Everything done once per task (reference analysis, models, a look at the clip);
        returns the edit and the plan it carries out."""
        ...
