#!/usr/bin/env python3
"""The documentation stands alone (issue 12 point 7): README.md, docs/ and configs/ point at no
file outside the repository (../shared, shared/spec, ../seeds), every relative markdown link
resolves, and every docs/<page>.md they name exists.
  docs_links.py ROOT      exit 1 naming each problem as FILE:LINE"""
import os
import re
import sys

OUTSIDE = re.compile(r"\.\./shared|shared/spec|\.\./seeds")
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")
DOC_PAGE = re.compile(r"(?<![\w/.])docs/[\w.-]+\.md")


def files(root):
    yield os.path.join(root, "README.md")
    for top in ("docs", "configs"):
        for dirpath, _, names in os.walk(os.path.join(root, top)):
            for name in sorted(names):
                if name.endswith((".md", ".yaml")):
                    yield os.path.join(dirpath, name)


def main(root):
    problems, checked = [], 0
    for path in files(root):
        if not os.path.isfile(path):
            problems.append(f"{path}: missing")
            continue
        checked += 1
        rel = os.path.relpath(path, root)
        with open(path, encoding="utf-8") as f:
            for no, line in enumerate(f, 1):
                for m in OUTSIDE.finditer(line):
                    problems.append(f"{rel}:{no}: points outside the repository: {m.group(0)}")
                if path.endswith(".md"):
                    for m in LINK.finditer(line):
                        target = m.group(1)
                        if "://" in target or target.startswith("mailto:"):
                            continue
                        if not os.path.exists(os.path.join(os.path.dirname(path), target)):
                            problems.append(f"{rel}:{no}: link target {target} does not exist")
                for m in DOC_PAGE.finditer(line):
                    if not os.path.isfile(os.path.join(root, m.group(0))):
                        problems.append(f"{rel}:{no}: {m.group(0)} does not exist")
    for p in problems:
        print(p)
    print(f"{checked} files checked, {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
