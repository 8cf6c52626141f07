"""Engine ``vace``: Wan2.1 VACE, an open video model, on this machine's GPU (diffusers)."""

from vedit.engines.vace.engine import VaceEngine

__all__ = ["VaceEngine"]
