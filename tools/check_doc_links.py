#!/usr/bin/env python3
"""Check the relative links of README.md, BENCHMARKS.md and docs/*.md: every file they name
exists, and every ``#anchor`` is a heading of its page (as GitHub makes anchors from headings).

Links to other sites are not fetched. Prints one line per broken link and exits 1 if any;
standard library only.

    python3 tools/check_doc_links.py
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from urllib.parse import unquote

ROOT = Path(__file__).resolve().parent.parent
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
AUTOLINK_OR_EXTERNAL = re.compile(r"^[a-z][a-z0-9+.-]*:", re.I)


def pages() -> list[Path]:
    return [ROOT / "README.md", ROOT / "BENCHMARKS.md", *sorted((ROOT / "docs").glob("*.md"))]


def prose(text: str) -> str:
    """``text`` without fenced code blocks and inline code (links there are not links)."""
    kept, fence = [], False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fence = not fence
            kept.append("")
            continue
        kept.append("" if fence else re.sub(r"`[^`]*`", "", line))
    return "\n".join(kept)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, markup and punctuation dropped, spaces to
    hyphens (letters of any script, digits, ``_`` and ``-`` kept)."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link keeps its text
    text = text.replace("`", "").strip().lower()
    text = "".join(c for c in text if c.isalnum() or c in "_- ")
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    found: set[str] = set()
    seen: dict[str, int] = {}
    fence = False
    for line in page.read_text(encoding="utf-8").splitlines():
        if line.lstrip().startswith("```"):
            fence = not fence
            continue
        heading = re.match(r"#{1,6} +(.*?)\s*#*\s*$", line)
        if heading and not fence:
            base = slug(heading[1])
            n = seen.get(base, 0)
            seen[base] = n + 1
            found.add(base if n == 0 else f"{base}-{n}")
    return found


def broken_links() -> list[str]:
    problems = []
    for page in pages():
        if not page.exists():
            continue
        text = prose(page.read_text(encoding="utf-8"))
        for link in LINK.finditer(text):  # over the whole text: a link's words may wrap
            target, number = link[1], text.count("\n", 0, link.start()) + 1
            if AUTOLINK_OR_EXTERNAL.match(target):
                continue
            path, _, anchor = target.partition("#")
            dest = (page.parent / unquote(path)).resolve() if path else page
            where = f"{page.relative_to(ROOT)}:{number}: ({target})"
            if not dest.exists():
                problems.append(f"{where}: no file {dest.relative_to(ROOT)}")
            elif anchor and dest.suffix == ".md" and unquote(anchor) not in anchors(dest):
                problems.append(f"{where}: {dest.relative_to(ROOT)} has no heading #{anchor}")
    return problems


def main() -> int:
    problems = broken_links()
    for problem in problems:
        print(problem)
    if problems:
        print(f"check_doc_links: {len(problems)} broken link(s)", file=sys.stderr)
        return 1
    print(f"check_doc_links: every relative link of {len(pages())} pages resolves")
    return 0


if __name__ == "__main__":
    sys.exit(main())
