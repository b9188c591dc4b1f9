#!/usr/bin/env python3
"""Checks that imports only point down a floor.

Between crates, Cargo already enforces it: perpetuo-types <- perpetuo-core <- app <- the binary.
Inside the core crate, each top-level module has a floor (below); an import (`crate::x`) of a
module on a higher floor is an upward arrow (the code only: unit tests may arrange what they need). Modules on
one floor may use each other only if they do not form a loop (checked too). Prints every arrow
that breaks the rule and exits 1; prints the floors and exits 0 when there is none.

    scripts/floors.py            # check
    scripts/floors.py --graph    # also print every module's imports
"""
import os
import re
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "core", "src")
# Ground first. A module may import any module on its own floor or below.
FLOORS = [
    ["platform"],
    ["workspaces"],
    ["usage"],
    ["protocols"],
    ["providers"],
    ["keys", "budgets", "captures", "limits"],
    ["accounts"],
    ["state"],
]
FLOOR = {m: i for i, ms in enumerate(FLOORS) for m in ms}


def modules():
    for d, _, files in os.walk(ROOT):
        for f in files:
            if f.endswith(".rs") and f != "lib.rs":
                path = os.path.join(d, f)
                rel = os.path.relpath(path, ROOT)
                yield rel.split(os.sep)[0].removesuffix(".rs"), rel, path


def code_without_tests(text):
    # Unit tests may reach anywhere they need to arrange a case: the rule is for the code.
    cut = re.search(r"^#\[cfg\(test\)\]\s*\nmod tests\b", text, re.M)
    return text[: cut.start()] if cut else text


def main():
    graph = "--graph" in sys.argv
    edges = {}
    bad = []
    for top, rel, path in modules():
        if top not in FLOOR:
            bad.append(f"{rel}: module `{top}` has no floor (add it to scripts/floors.py)")
            continue
        if rel.endswith("tests.rs"):
            continue
        text = code_without_tests(open(path, encoding="utf-8").read())
        for target in sorted(set(re.findall(r"\bcrate::([a-z_]+)", text))):
            if target == top:
                continue
            edges.setdefault(top, set()).add(target)
            if target not in FLOOR:
                bad.append(f"{rel}: imports `{target}`, which has no floor")
            elif FLOOR[target] > FLOOR[top]:
                bad.append(f"{rel}: `{top}` (floor {FLOOR[top]}) imports `{target}` (floor {FLOOR[target]}): an upward arrow")
    # Same-floor loops.
    for a, targets in edges.items():
        for b in targets:
            if FLOOR.get(a) == FLOOR.get(b) and a in edges.get(b, set()):
                bad.append(f"`{a}` and `{b}` import each other")
    if graph:
        for a in sorted(edges, key=lambda m: FLOOR.get(m, 99)):
            print(f"{a} -> {', '.join(sorted(edges[a]))}")
    if bad:
        print("\n".join(sorted(set(bad))))
        return 1
    print("floors, ground first: " + " | ".join(", ".join(ms) for ms in FLOORS) + ": no upward import")
    return 0


if __name__ == "__main__":
    sys.exit(main())
