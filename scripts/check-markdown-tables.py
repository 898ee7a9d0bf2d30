#!/usr/bin/env python3
"""Every Markdown table in docs/ and the README parses as one table: a header row, a separator row, and rows with
the header's number of cells. A stray line inside a table ends it, and the rows after it render as paragraphs (what
happened in docs/http-api.md); this finds that, a missing header and a row with a cell too many or too few.

Usage: scripts/check-markdown-tables.py [FILE...]   (default: README.md and docs/*.md); exit 1 naming each problem.
With --self-test, checks that it catches each kind of broken table."""
import glob
import re
import sys

SEPARATOR = re.compile(r"^\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?\s*$")


def cells(line):
    """The cells of a table row: pipes inside `code` or escaped (\\|) do not split."""
    out, cur, code, i = [], "", False, 0
    s = line.strip()
    if s.startswith("|"):
        s = s[1:]
    if s.endswith("|") and not s.endswith("\\|"):
        s = s[:-1]
    while i < len(s):
        c = s[i]
        if c == "\\" and i + 1 < len(s):
            cur += s[i : i + 2]
            i += 2
            continue
        if c == "`":
            code = not code
        if c == "|" and not code:
            out.append(cur)
            cur = ""
        else:
            cur += c
        i += 1
    out.append(cur)
    return out


def problems(text, name):
    found = []
    lines = text.split("\n")
    fence = False
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.lstrip().startswith("```"):
            fence = not fence
            i += 1
            continue
        if fence or not line.lstrip().startswith("|"):
            i += 1
            continue
        start = i
        block = []
        while i < len(lines) and lines[i].lstrip().startswith("|"):
            block.append(lines[i])
            i += 1
        if len(block) < 2 or not SEPARATOR.match(block[1].strip()):
            found.append(f"{name}:{start + 1}: table rows without a header and separator row (a line above broke the table?)")
            continue
        width = len(cells(block[0]))
        if len(cells(block[1])) != width:
            found.append(f"{name}:{start + 2}: the separator has {len(cells(block[1]))} cells, the header {width}")
        for k, row in enumerate(block[2:], start=start + 3):
            n = len(cells(row))
            if n != width:
                found.append(f"{name}:{k}: {n} cells where the header has {width}")
    return found


def self_test():
    good = "| a | b |\n|---|---|\n| 1 | `x|y` |\n"
    assert problems(good, "good") == [], problems(good, "good")
    broken = good + "A stray line.\n| 2 | 3 |\n"
    assert len(problems(broken, "broken")) == 1
    wide = "| a | b |\n|---|---|\n| 1 | 2 | 3 |\n"
    assert len(problems(wide, "wide")) == 1
    headless = "| a | b |\n| 1 | 2 |\n"
    assert len(problems(headless, "headless")) == 1
    fenced = "```\n| not | a table\n```\n"
    assert problems(fenced, "fenced") == []
    print("ok   the Markdown table check catches a broken, a too-wide and a headless table")


def main(argv):
    if argv[1:] == ["--self-test"]:
        self_test()
        return 0
    files = argv[1:] or ["README.md"] + sorted(glob.glob("docs/*.md"))
    found = []
    for f in files:
        with open(f, encoding="utf-8") as fh:
            found += problems(fh.read(), f)
    for p in found:
        print(p)
    if found:
        return 1
    print(f"ok   every Markdown table parses ({len(files)} files)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
