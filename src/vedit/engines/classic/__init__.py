"""The CPU engine ``classic``."""

from vedit.engines.classic.engine import ClassicEngine

__all__ = ["ClassicEngine"]
