#!/usr/bin/env python3
"""Print the fenced code blocks of one language from a Markdown file, in order.

    python3 scripts/doc_blocks.py docs/python.md python > example.py

CI runs docs/python.md's example this way (.ci/run).
"""

import sys


def blocks(text, lang):
    out, inside = [], False
    for line in text.splitlines():
        stripped = line.strip()
        if not inside and stripped == "```" + lang:
            inside = True
        elif inside and stripped == "```":
            inside = False
            out.append("")
        elif inside:
            out.append(line)
    return "\n".join(out)


if __name__ == "__main__":
    path, lang = sys.argv[1], sys.argv[2]
    with open(path, encoding="utf-8") as f:
        sys.stdout.write(blocks(f.read(), lang))
