"""How a clip is cut into the windows the model makes at once, and how they are joined.

The model makes ``4k+1`` frames at a time (its video autoencoder packs four frames in
one latent frame, after the first). A clip longer than one window is cut into windows
of ``window`` frames, each starting ``overlap`` frames before the one before ends; the
last one is as short as the clip's end allows (the next ``4k+1`` length, its last frame
repeated, the repeats dropped).
A window's shared frames are given to the model as already made (the frames the window
before made, not to be regenerated), so it goes on from them; where two windows share
frames, the output crossfades from the earlier window's frames to the later's. A clip
shorter than a window is one such short window.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TEMPORAL = 4  # frames per latent frame of Wan's video autoencoder (after the first)


class WindowSettingInvalid(ValueError):
    """``VEDIT_VACE_WINDOW`` / ``VEDIT_VACE_OVERLAP`` that cannot work; says which and why."""


@dataclass(frozen=True)
class Window:
    """Frames ``start`` to ``stop`` (exclusive) of the clip, the first ``shared`` of them
    made by the window before; ``length`` frames are run (the clip's, then the last one
    repeated up to a length the model takes)."""

    start: int
    stop: int
    shared: int
    length: int


def check_window(window: int, overlap: int) -> None:
    """Raise :class:`WindowSettingInvalid` unless ``window`` is ``4k+1`` and ``overlap``
    leaves each window at least one latent frame of its own."""
    if window < 1 or (window - 1) % TEMPORAL:
        raise WindowSettingInvalid(
            f"VEDIT_VACE_WINDOW is {window}; it must be 4k+1 frames (e.g. 81, 49, 33, 17)"
        )
    if overlap < 0 or overlap > window - 1 - TEMPORAL:
        raise WindowSettingInvalid(
            f"VEDIT_VACE_OVERLAP is {overlap}; with VEDIT_VACE_WINDOW={window} it must be "
            f"0 to {max(0, window - 1 - TEMPORAL)}"
        )


def runnable(frames: int) -> int:
    """The shortest length the model takes (``4k+1``) that holds ``frames``."""
    return (max(frames, 1) + TEMPORAL - 2) // TEMPORAL * TEMPORAL + 1


def plan_windows(count: int, window: int, overlap: int) -> list[Window]:
    """The windows that cover ``count`` frames (see the module's docstring)."""
    check_window(window, overlap)
    windows = [Window(0, min(count, window), 0, runnable(min(count, window)))]
    while windows[-1].stop < count:
        start = windows[-1].stop - overlap
        stop = min(count, start + window)
        windows.append(Window(start, stop, overlap, runnable(stop - start)))
    return windows


def crossfade(earlier: np.ndarray, later: np.ndarray, position: int, shared: int) -> np.ndarray:
    """Frame ``position`` (0-based) of ``shared`` frames two windows share: from all of
    the earlier window's at the first toward all of the later's after the last."""
    weight = (position + 1) / (shared + 1)
    mixed = earlier.astype(np.float32) * (1.0 - weight) + later.astype(np.float32) * weight
    return np.clip(mixed + 0.5, 0, 255).astype(np.uint8)
