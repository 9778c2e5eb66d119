"""README.rst from the readme/*.md fragments (OCA layout), without network.

usage: python scripts/gen_readme_rst.py [--check]
"""

import ast
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SECTIONS = [
    ("DESCRIPTION.md", None),
    ("CONFIGURE.md", "Configuration"),
    ("USAGE.md", "Usage"),
]


def inline(text):
    text = re.sub(r"\*\*(.+?)\*\*", r"**\1**", text)
    text = re.sub(r"(?<![*\w])_(.+?)_(?![\w])", r"*\1*", text)
    return re.sub(r"(?<!`)`([^`]+)`(?!`)", r"``\1``", text)


def convert(markdown):
    lines = []
    for line in markdown.splitlines():
        heading = re.match(r"^(#+)\s+(.*)", line)
        if heading:
            title = heading.group(2)
            lines += [title, "~" * len(title)]
        else:
            lines.append(inline(line))
    return "\n".join(lines).strip() + "\n"


def build():
    manifest = ast.literal_eval((ROOT / "__manifest__.py").read_text())
    title = manifest["name"]
    parts = [
        "=" * len(title),
        title,
        "=" * len(title),
        "",
        "..  Generated from readme/*.md by scripts/gen_readme_rst.py: do not edit.",
        "",
        (
            f"**{manifest['summary']}** — version {manifest['version']}, "
            f"license {manifest['license']}."
        ),
        "",
    ]
    for filename, heading in SECTIONS:
        path = ROOT / "readme" / filename
        if not path.exists():
            continue
        if heading:
            parts += [heading, "=" * len(heading), ""]
        parts.append(convert(path.read_text()))
    return "\n".join(parts)


if __name__ == "__main__":
    text = build()
    target = ROOT / "README.rst"
    if "--check" in sys.argv:
        if not target.exists() or target.read_text() != text:
            sys.exit("README.rst is out of date: run python scripts/gen_readme_rst.py")
    else:
        target.write_text(text)
