"""Is a folder a usable Wan2.1-VACE model? Answered from its files alone (no torch), so
``vedit serve`` and ``vedit worker`` refuse a wrong ``VEDIT_VACE_MODEL_DIR`` at once,
naming the folder and everything missing from it.

A diffusers-format folder (``Wan-AI/Wan2.1-VACE-1.3B-diffusers`` or ``-14B-diffusers``)
holds ``model_index.json`` naming ``WanVACEPipeline`` and one sub-folder per component.
"""

from __future__ import annotations

import json
from pathlib import Path

from vedit.errors import EngineUnavailable

PIPELINE = "WanVACEPipeline"
MODELS = ("transformer", "vae", "text_encoder")  # each: config.json and weights
WEIGHTS = ("*.safetensors", "*.bin")
TOKENIZER_FILES = ("tokenizer.json", "spiece.model")  # either one
LFS_POINTER = b"version https://git-lfs"  # a clone without git-lfs leaves these for weights


class ModelFolderUnusable(EngineUnavailable):
    """``VEDIT_VACE_MODEL_DIR`` is unset, absent or not a Wan2.1-VACE model; says why."""


def check_model_dir(folder: Path | None) -> Path:
    """``folder``, resolved, when it holds a whole diffusers-format Wan2.1-VACE model; else
    :class:`ModelFolderUnusable` naming the folder and every file missing from it."""
    if folder is None:
        raise ModelFolderUnusable(
            "engine vace needs VEDIT_VACE_MODEL_DIR: a folder with a diffusers-format "
            "Wan2.1-VACE model (e.g. Wan-AI/Wan2.1-VACE-1.3B-diffusers; see docs/vace.md)"
        )
    folder = folder.expanduser().resolve()
    where = f"VEDIT_VACE_MODEL_DIR={folder}"
    if not folder.is_dir():
        raise ModelFolderUnusable(f"{where}: no such folder")
    index_file = folder / "model_index.json"
    try:
        index = json.loads(index_file.read_text())
    except FileNotFoundError:
        raise ModelFolderUnusable(
            f"{where}: no model_index.json (not a diffusers-format model folder)"
        ) from None
    except (OSError, ValueError) as exc:
        raise ModelFolderUnusable(f"{where}: model_index.json cannot be read: {exc}") from None
    if not isinstance(index, dict) or index.get("_class_name") != PIPELINE:
        name = index.get("_class_name") if isinstance(index, dict) else None
        raise ModelFolderUnusable(
            f"{where}: model_index.json names {name!r}, not {PIPELINE} "
            "(a Wan2.1-VACE model is needed, not the plain Wan2.1 one)"
        )
    missing = [*_missing_models(folder), *_missing_others(folder)]
    if missing:
        raise ModelFolderUnusable(f"{where}: missing {', '.join(missing)}")
    return folder


def _missing_models(folder: Path) -> list[str]:
    missing = []
    for name in MODELS:
        part = folder / name
        if not (part / "config.json").is_file():
            missing.append(f"{name}/config.json")
        weights = [p for pattern in WEIGHTS for p in part.glob(pattern)]
        if not weights:
            missing.append(f"{name}/ weights (*.safetensors)")
        pointers = [p.name for p in weights if _is_lfs_pointer(p)]
        if pointers:
            missing.append(
                f"{name}/{pointers[0]}'s contents (a git-lfs pointer: fetch the real file "
                "with `git lfs pull` or `hf download`)"
            )
    return missing


def _missing_others(folder: Path) -> list[str]:
    missing = []
    if not (folder / "scheduler" / "scheduler_config.json").is_file():
        missing.append("scheduler/scheduler_config.json")
    if not any((folder / "tokenizer" / name).is_file() for name in TOKENIZER_FILES):
        missing.append("tokenizer/ (tokenizer.json or spiece.model)")
    return missing


def _is_lfs_pointer(path: Path) -> bool:
    try:
        if path.stat().st_size > 1024:
            return False
        with path.open("rb") as f:
            return f.read(len(LFS_POINTER)) == LFS_POINTER
    except OSError:
        return False
