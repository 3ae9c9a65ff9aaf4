#!/usr/bin/env python3
"""Lists every public declaration in Sources/ without a doc comment (`///` or
`/** */` right above it, attributes allowed in between, multi-line ones too)
and exits 1 if any. Public declarations are those spelled `public` or `open`,
the cases of a public enum, the requirements of a public protocol and the
members of a `public extension`. A comment above a `#if` does not count: the
compiler attaches it to nothing, so the declaration after `#if` needs its own.
Usage: scripts/check-doc-comments.py [ROOT]"""
import os
import re
import sys

MODIFIERS = (r"(?:@\w+(?:\([^)]*\))?\s+|(?:nonisolated(?:\(unsafe\))?|final|override|static|class|mutating|"
             r"nonmutating|convenience|required|indirect|lazy|consuming|borrowing|dynamic|weak|unowned|"
             r"(?:private|fileprivate|internal|package|public)\(set\))\s+)*")
KEYWORDS = r"(?:func|var|let|init|deinit|struct|class|enum|protocol|typealias|subscript|actor|extension|associatedtype|case|macro)\b"
PUBLIC = re.compile(r"^\s*" + MODIFIERS + r"(?:public|open)\s+" + MODIFIERS + KEYWORDS)
# A declaration with no access keyword (a case, a protocol requirement, an extension member).
PLAIN = re.compile(r"^\s*" + MODIFIERS + r"(?:func|var|let|init|subscript|typealias|associatedtype|case|struct|class|enum|actor)\b")
NON_PUBLIC = re.compile(r"^\s*" + MODIFIERS + r"(?:private|fileprivate|internal|package)\b")
CONTAINER = re.compile(r"^\s*" + MODIFIERS + r"(public|open)\s+" + MODIFIERS + r"(enum|protocol|extension)\b")


def code_only(line):
    """The line without string literals and `//` comments, for counting braces."""
    line = re.sub(r'"(?:\\.|[^"\\])*"', '""', line)
    return line.split("//", 1)[0]


def documented(lines, i):
    """Whether a doc comment ends right above line i, skipping attribute lines
    (an attribute may span lines: `@available(` ... `)`)."""
    j = i - 1
    while j >= 0:
        text = lines[j].strip()
        if text.startswith("@"):
            j -= 1
            continue
        if text.endswith(")") and text.count(")") > text.count("("):
            depth = text.count(")") - text.count("(")
            k = j - 1
            while k >= 0 and depth > 0:
                depth += lines[k].count(")") - lines[k].count("(")
                k -= 1
            if k + 1 < j and lines[k + 1].strip().startswith("@"):
                j = k
                continue
        break
    above = lines[j].strip() if j >= 0 else ""
    return above.startswith("///") or above.endswith("*/")


def undocumented(path):
    lines = open(path, encoding="utf-8").read().split("\n")
    depth = 0
    containers = []  # (kind, depth inside its braces) of the public enums, protocols and extensions
    in_multiline_string = False
    for i, line in enumerate(lines):
        if line.count('"""') % 2 == 1:
            in_multiline_string = not in_multiline_string
            continue
        if in_multiline_string:
            continue
        inside = containers[-1][0] if containers and containers[-1][1] == depth else None
        if PUBLIC.match(line):
            public = not re.match(r"^\s*public\s+extension\b", line)
        elif inside == "enum":
            public = re.match(r"^\s*(?:indirect\s+)?case\s+\w", line) is not None
        elif inside in ("protocol", "extension"):
            public = PLAIN.match(line) is not None and not NON_PUBLIC.match(line) \
                and not (inside == "protocol" and re.match(r"^\s*case\b", line))
        else:
            public = False
        if public and not documented(lines, i):
            yield i + 1, line.strip()
        container = CONTAINER.match(line)
        code = code_only(line)
        if container and "{" in code:
            containers.append((container.group(2), depth + 1))
        depth += code.count("{") - code.count("}")
        while containers and depth < containers[-1][1]:
            containers.pop()


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
