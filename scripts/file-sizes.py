#!/usr/bin/env python3
"""Fails when a Rust source file holds more than 500 lines of code: its unit tests (a trailing
`#[cfg(test)] mod tests`) and blank lines aside. Prints the largest files either way."""
import os
import re
import sys

LIMIT = 500
ROOTS = ["src", "types/src", "core/src", "app/src", "frontend/src"]


def code_lines(text):
    cut = re.search(r"^#\[cfg\(test\)\]\s*\nmod tests\b", text, re.M)
    if cut:
        text = text[: cut.start()]
    return sum(1 for line in text.splitlines() if line.strip())


def main():
    base = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    sizes = []
    for root in ROOTS:
        for d, _, files in os.walk(os.path.join(base, root)):
            for f in files:
                if f.endswith(".rs") and f != "tests.rs":
                    path = os.path.join(d, f)
                    sizes.append((code_lines(open(path, encoding="utf-8").read()), os.path.relpath(path, base)))
    sizes.sort(reverse=True)
    over = [(n, p) for n, p in sizes if n > LIMIT]
    for n, p in sizes[:5]:
        print(f"{n:5} {p}")
    if over:
        print(f"over {LIMIT} lines of code: " + ", ".join(p for _, p in over))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
