#!/usr/bin/env python3
"""Lists every public declaration in Sources/ without a doc comment (`///` or
`/** */` right above it, attributes allowed in between) and exits 1 if any.
Declarations inside a `#if` branch count like any other. Usage:
scripts/check-doc-comments.py [ROOT]"""
import os
import re
import sys

DECL = re.compile(
    r"^\s*(?:@\w+(?:\([^)]*\))?\s+)*(?:(?:nonisolated|final|override|static|class|mutating|nonmutating|"
    r"convenience|required|indirect|consuming|borrowing)\s+)*public\s+(?:(?:private\(set\)|internal\(set\)|"
    r"package\(set\)|final|static|class|mutating|nonmutating|convenience|required|override|indirect|lazy|"
    r"nonisolated|consuming|borrowing)\s+)*(?:func|var|let|init|struct|class|enum|protocol|typealias|"
    r"subscript|actor|extension|associatedtype|case)\b")
EXTENSION = re.compile(r"^\s*public\s+extension\b")


def undocumented(path):
    lines = open(path, encoding="utf-8").read().split("\n")
    for i, line in enumerate(lines):
        if not DECL.match(line) or EXTENSION.match(line):
            continue
        j = i - 1
        while j >= 0 and (lines[j].strip().startswith("@") or lines[j].strip().startswith("#if")
                          or lines[j].strip().startswith("#else") or lines[j].strip().startswith("#endif")):
            j -= 1
        above = lines[j].strip() if j >= 0 else ""
        if not (above.startswith("///") or above.endswith("*/")):
            yield i + 1, line.strip()


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..")
    missing = []
    for folder, _, files in os.walk(os.path.join(root, "Sources")):
        for name in sorted(files):
            if name.endswith(".swift"):
                path = os.path.join(folder, name)
                missing += [(os.path.relpath(path, root), n, text) for n, text in undocumented(path)]
    for path, n, text in sorted(missing):
        print(f"{path}:{n}: no doc comment: {text}")
    print(f"doc comments: {len(missing)} public declarations without one")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
