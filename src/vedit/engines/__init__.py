"""The engines, by name (``VEDIT_ENGINE``): a registry of factories, each imported only
when chosen, so that no engine module imports another and ``base`` imports none.

- ``classic``: frames on this machine's CPU (``classic/``);
- ``vace``: Wan2.1 VACE, an open video model, on a GPU (``vace/``, the ``vace`` extra);
- ``dashscope``: the real model, relayed to a DashScope-compatible upstream (``relay.py``).

Each engine class names its ``Options`` (a frozen struct of the settings it reads) and is
made from them: ``cls(cls.Options.of(settings))`` (``runtime/context.py``).
"""

from __future__ import annotations

import importlib
from typing import Any

from vedit.errors import EngineUnavailable

ENGINES = {
    "classic": "vedit.engines.classic.engine:ClassicEngine",
    "vace": "vedit.engines.vace.engine:VaceEngine",
    "dashscope": "vedit.engines.relay:RelayEngine",
}


def engine_class(name: str) -> Any:
    """The engine class of ``name``, imported now."""
    if name not in ENGINES:
        *others, last = ENGINES
        raise EngineUnavailable(
            f"VEDIT_ENGINE is {name!r}; it must be {', '.join(others)} or {last}"
        )
    module, _, attr = ENGINES[name].partition(":")
    return getattr(importlib.import_module(module), attr)


def load_engine(name: str, settings: Any) -> Any:
    """Engine ``name`` with its options taken from ``settings`` (at the edge)."""
    cls = engine_class(name)
    return cls(cls.Options.of(settings))
