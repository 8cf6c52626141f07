"""The model itself: ``WanVACEPipeline`` (diffusers) loaded from the folder, and the clip
editor that runs it window by window.

torch and diffusers are imported here only, when engine vace is chosen; nothing is
downloaded (``HF_HUB_OFFLINE``, ``local_files_only``): the weights are the folder's.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vedit.engines.base import ClipFrame
from vedit.engines.vace.conditions import NEGATIVE, Condition, Conditioner
from vedit.engines.vace.windows import Window, crossfade, plan_windows
from vedit.errors import EngineFailed, EngineUnavailable
from vedit.media.frames import YuvFrame

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before huggingface_hub is imported
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")

from PIL import Image  # noqa: E402

try:  # the vace extra: this module is imported only when VEDIT_ENGINE=vace
    import diffusers  # noqa: F401
    import ftfy  # noqa: F401  (the pipeline cleans prompts with it)
    import torch
    import transformers  # noqa: F401
except ImportError as exc:
    raise EngineUnavailable(
        f"engine vace needs the vace extra ({exc}): install it with pip install -e '.[vace]' "
        "(torch, diffusers, transformers, ftfy, accelerate)"
    ) from None

log = logging.getLogger("vedit.engines.vace")

DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}
MODEL_FPS = 16  # Wan2.1's frame rate


def pick_device(asked: str) -> str:
    """``asked`` (``VEDIT_VACE_DEVICE``), or ``cuda`` when torch sees a GPU, else ``cpu``;
    a device torch cannot use raises ``RuntimeError`` naming the setting."""
    device = asked or ("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(
            f"VEDIT_VACE_DEVICE is {device!r} but torch {torch.__version__} sees no CUDA "
            "device (a CPU build, or no driver); set VEDIT_VACE_DEVICE=cpu to run on the CPU"
        )
    try:
        torch.empty(1, device=device)
    except Exception as exc:  # an unknown device name, cuda:3 on a 1-GPU host
        raise RuntimeError(
            f"VEDIT_VACE_DEVICE is {device!r}: torch cannot use it ({exc})"
        ) from None
    return device


def pick_dtype(asked: str, device: str) -> torch.dtype:
    """``asked`` (``VEDIT_VACE_DTYPE``); ``auto``: bfloat16 on a GPU, float32 on the CPU."""
    if asked == "auto":
        return torch.float32 if device == "cpu" else torch.bfloat16
    return DTYPES[asked]


def load_pipeline(
    folder: Path, device: str, dtype: torch.dtype, offload: str, flow_shift: float
) -> Any:
    """The pipeline from ``folder``, on ``device`` (or offloaded to the CPU between uses),
    its scheduler's flow shift set; the autoencoder stays in float32 (Wan's own advice)."""
    from diffusers import AutoencoderKLWan, WanVACEPipeline
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    diffusers_logging.disable_progress_bar()
    transformers_logging.disable_progress_bar()
    began = time.monotonic()
    vae = AutoencoderKLWan.from_pretrained(
        folder, subfolder="vae", dtype=torch.float32, local_files_only=True
    )
    pipe = WanVACEPipeline.from_pretrained(folder, vae=vae, dtype=dtype, local_files_only=True)
    config = pipe.scheduler.config
    for key in ("flow_shift", "shift"):
        if key in config:
            pipe.scheduler = type(pipe.scheduler).from_config(config, **{key: flow_shift})
            break
    if offload == "model":
        pipe.enable_model_cpu_offload(device=device)
    elif offload == "sequential":
        pipe.enable_sequential_cpu_offload(device=device)
    else:
        pipe.to(device)
    pipe.set_progress_bar_config(disable=True)
    log.info(
        "engine vace: %s loaded on %s (%s, offload %s) in %.1f s",
        folder, device, str(dtype).removeprefix("torch."), offload, time.monotonic() - began,
    )  # fmt: skip
    return pipe


@dataclass
class Sampling:
    """How the model is run for one task."""

    task_id: str
    prompt: str
    references: list[np.ndarray]
    seed: int
    steps: int
    guidance: float
    window: int
    overlap: int


class VaceClip:
    """A :class:`~vedit.engines.base.ClipEditor`: the clip, window by window, through
    the pipeline (see ``windows.py`` for how windows are cut and joined)."""

    fps = MODEL_FPS

    def __init__(self, pipe: Any, conditioner: Conditioner, sampling: Sampling) -> None:
        self.pipe, self.conditioner, self.sampling = pipe, conditioner, sampling
        # The frames it takes are the conditioner's (the person models' size); the model
        # works at the conditioner's width x height.
        self.width, self.height = conditioner.frame_size
        self.size = (conditioner.width, conditioner.height)

    def __call__(
        self, frames: Iterator[YuvFrame], count: int, progress: Callable[[float], None]
    ) -> Iterator[ClipFrame]:
        s = self.sampling
        windows = plan_windows(count, s.window, s.overlap)
        embeds = self._encode_prompt()
        generator = torch.Generator("cpu").manual_seed(s.seed)  # the same noise on any device
        references = [Image.fromarray(ref) for ref in s.references] or None
        log.info(
            "engine vace: task %s: %d frames at %d fps, %dx%d, in %d window(s) of up to %d "
            "(%d shared), %d step(s), %d reference image(s); prompt: %s",
            s.task_id, count, self.fps, *self.size, len(windows), s.window, s.overlap,
            s.steps, len(s.references), s.prompt,
        )  # fmt: skip
        source = enumerate(frames)
        conditions: dict[int, Condition] = {}
        made: dict[int, np.ndarray] = {}  # frames of the last window that the next one shares
        total_steps = len(windows) * s.steps
        for number, window in enumerate(windows):
            while len(conditions) + window.start < window.stop:  # the window's new frames
                index, frame = next(source)
                conditions[index] = self.conditioner(frame, index)
            log.info(
                "engine vace: task %s: window %d/%d: frames %d-%d (%d shared, %d run)",
                s.task_id, number + 1, len(windows), window.start, window.stop - 1, window.shared,
                window.length,
            )  # fmt: skip
            out = self._run(window, conditions, made, embeds, references, generator,
                            lambda step, n=number: progress((n * s.steps + step) / total_steps))  # fmt: skip
            upto = windows[number + 1].start if number + 1 < len(windows) else window.stop
            for j in range(window.start, upto):
                rgb = out[j - window.start]
                if j - window.start < window.shared:
                    rgb = crossfade(made[j], rgb, j - window.start, window.shared)
                yield ClipFrame(rgb, conditions.pop(j).region)
            made = {j: out[j - window.start] for j in range(upto, window.stop)}

    def _encode_prompt(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The prompt's embeddings, once for every window."""
        with torch.no_grad():
            return self.pipe.encode_prompt(
                prompt=self.sampling.prompt,
                negative_prompt=NEGATIVE,
                do_classifier_free_guidance=self.sampling.guidance > 1.0,
                device=self.pipe._execution_device,
            )

    def _run(
        self,
        window: Window,
        conditions: dict[int, Condition],
        made: dict[int, np.ndarray],
        embeds: tuple[torch.Tensor, torch.Tensor | None],
        references: list[Image.Image] | None,
        generator: torch.Generator,
        on_step: Callable[[int], None],
    ) -> np.ndarray:
        """One window through the pipeline: its frames as uint8 RGB (``window.length``)."""
        video: list[Image.Image] = []
        masks: list[Image.Image] = []
        keep = Image.new("L", self.size, 0)
        everything = Image.new("L", self.size, 255)
        for j in range(window.start, window.stop):
            if j - window.start < window.shared:  # already made: the model goes on from it
                video.append(Image.fromarray(made[j]))
                masks.append(keep)
                continue
            condition = conditions[j]
            video.append(Image.fromarray(condition.control))
            if condition.region is None:
                masks.append(everything)
            else:
                masks.append(Image.fromarray(((condition.region > 0.5) * 255).astype(np.uint8)))
        video += video[-1:] * (window.length - len(video))
        masks += masks[-1:] * (window.length - len(masks))

        def step_end(_pipe: Any, step: int, _t: Any, _kwargs: dict[str, Any]) -> dict[str, Any]:
            on_step(step + 1)  # raises to stop: a cancel, or the worker stopping
            return {}

        try:
            result = self.pipe(
                video=video,
                mask=masks,
                reference_images=references,
                prompt_embeds=embeds[0],
                negative_prompt_embeds=embeds[1],
                height=self.size[1],
                width=self.size[0],
                num_frames=window.length,
                num_inference_steps=self.sampling.steps,
                guidance_scale=self.sampling.guidance,
                generator=generator,
                output_type="np",
                callback_on_step_end=step_end,
            )
        except torch.cuda.OutOfMemoryError:
            torch.cuda.empty_cache()
            raise EngineFailed(
                f"engine vace ran out of GPU memory making {window.length} frames of "
                f"{self.size[0]}x{self.size[1]}: set VEDIT_VACE_OFFLOAD=model, or a smaller "
                "VEDIT_VACE_SIZE or VEDIT_VACE_WINDOW"
            ) from None
        frames = np.asarray(result.frames[0], dtype=np.float32)
        return np.clip(frames * 255.0 + 0.5, 0, 255).astype(np.uint8)
