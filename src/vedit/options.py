"""``Options``: the base of the small frozen structs that leaf modules take instead of
``Settings`` (media limits, the output policy, storage, an engine's options).

Settings enter at the edge: ``runtime.context.build_context`` (and the CLI and the API
for what they check themselves) makes each struct with ``Struct.of(settings)``, which
takes the settings of the same names; nothing under ``media/``, ``engines/``,
``storage/`` or ``tasks/`` imports ``vedit.config``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Self


class Options:
    """Mixed into a frozen dataclass whose fields are named as settings are."""

    @classmethod
    def of(cls, source: Any) -> Self:
        """The struct of ``source``'s attributes of the same names (``Settings``)."""
        fields = dataclasses.fields(cls)  # type: ignore[arg-type]
        return cls(**{f.name: getattr(source, f.name) for f in fields})
