#!/usr/bin/env python3
"""Checks that every relative link in the repository's Markdown files resolves: the
file exists and, for a `#fragment`, the target has a heading with that GitHub anchor.
Links inside code (fenced blocks, inline spans) are not links and are skipped. Prints
each broken link with its file and line, and exits 1 if there is any."""

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# [text](target): the text may hold one level of brackets and span lines.
LINK = re.compile(r"(?<!!)\[(?:[^\[\]]|\[[^\]]*\])*\]\(([^()\s]+)\)")
FENCE = re.compile(r"^\s*(```|~~~)")
HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$")


def prose(path: Path) -> str:
    """The file with fenced blocks blanked and inline code spans emptied; line
    numbers stay where they were."""
    out, fenced = [], False
    for line in path.read_text(encoding="utf-8").splitlines():
        if FENCE.match(line):
            fenced = not fenced
            out.append("")
        elif fenced:
            out.append("")
        else:
            out.append(re.sub(r"`[^`]*`", lambda m: "`" + " " * (len(m[0]) - 2) + "`", line))
    return "\n".join(out)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip()).replace("`", "")
    text = re.sub(r"[^\w\- ]", "", text.lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set:
    seen, out = {}, set()
    fenced = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        match = None if fenced else HEADING.match(line)
        if match:
            base = slug(match.group(1))
            count = seen.get(base, 0)
            seen[base] = count + 1
            out.add(base if count == 0 else f"{base}-{count}")
    return out


def broken_links(path: Path, cache: dict):
    text = prose(path)
    for match in LINK.finditer(text):
        target = match.group(1)
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):
            continue
        line = text.count("\n", 0, match.start(1)) + 1
        file_part, _, fragment = target.partition("#")
        dest = (path.parent / file_part).resolve() if file_part else path
        if not dest.exists():
            yield line, target, "no such file"
        elif fragment and dest.suffix == ".md":
            if dest not in cache:
                cache[dest] = anchors(dest)
            if fragment not in cache[dest]:
                yield line, target, "no heading with that anchor"


def main() -> int:
    skip = {"target", ".git", "node_modules"}
    files = sorted(p for p in ROOT.rglob("*.md") if not skip & set(p.parts))
    cache, broken = {}, 0
    for path in files:
        for line, target, why in broken_links(path, cache):
            print(f"{path.relative_to(ROOT)}:{line}: {target}: {why}")
            broken += 1
    print(f"{broken} broken link(s) in {len(files)} files" if broken
          else f"every relative link in {len(files)} Markdown files resolves")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
