#!/usr/bin/env python3
"""Print the README's Quickstart command N (1: install and serve, 2: install and test).

The README is the one place these commands are written; CI reads them from it,
so a command a newcomer copies is the command CI ran. Standard library only.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def quickstart_command(number: int, readme: Path = README) -> str:
    """The shell line under ``# <number>.`` in the Quickstart's fenced bash blocks."""
    text = readme.read_text(encoding="utf-8")
    section = text.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    for block in re.findall(r"```bash\n(.*?)```", section, flags=re.S):
        lines = [line for line in block.splitlines() if line.strip()]
        if lines and lines[0].startswith(f"# {number}."):
            commands = [line for line in lines[1:] if not line.startswith("#")]
            if len(commands) != 1:
                raise SystemExit(f"Quickstart command {number} must be one line, got {commands}")
            return commands[0]
    raise SystemExit(f"README.md's Quickstart has no command '# {number}.'")


if __name__ == "__main__":
    print(quickstart_command(int(sys.argv[1])))
