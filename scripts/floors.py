#!/usr/bin/env python3
"""Checks that imports only point down a floor.

Between crates, Cargo already enforces it: perpetuo-types <- perpetuo-core <- app <- the binary.
Inside the core crate, each top-level module has a floor (below); an import (`crate::x`) of a
module on a higher floor is an upward arrow (the code only: unit tests may arrange what they need). Modules on
one floor may use each other only if they do not form a loop (checked too). Then, in every crate
(types, core, app, the binary), no two files import each other, directly or round a circle (a
file using its own parent module, the module's face, is not counted). Prints every arrow or
circle that breaks the rule and exits 1; prints the floors and exits 0 when there is none.

    scripts/floors.py            # check
    scripts/floors.py --graph    # also print every module's imports
"""
import os
import re
import sys

HOUSE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
ROOT = os.path.join(HOUSE, "core", "src")
CRATES = ["types/src", "core/src", "app/src", "src"]
# Ground first. A module may import any module on its own floor or below.
FLOORS = [
    ["platform"],
    ["workspaces"],
    ["usage", "limits"],
    ["protocols"],
    ["providers"],
    ["keys", "budgets", "captures"],
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


def module_file(root, parts):
    """The file that holds module `parts` (a list of names) under a crate root, or None."""
    if not parts:
        return os.path.join(root, "lib.rs")
    base = os.path.join(root, *parts)
    for candidate in (base + ".rs", os.path.join(base, "mod.rs")):
        if os.path.isfile(candidate):
            return candidate
    return None


def module_of(root, path):
    rel = os.path.relpath(path, root)[: -len(".rs")].split(os.sep)
    if rel[-1] in ("mod", "lib", "main"):
        rel = rel[:-1]
    return rel


def file_circles(crate):
    """Circles of files importing each other inside one crate."""
    root = os.path.join(HOUSE, crate)
    edges = {}
    for d, _, files in os.walk(root):
        for f in files:
            if not f.endswith(".rs") or f == "tests.rs":
                continue
            path = os.path.join(d, f)
            here = module_of(root, path)
            text = code_without_tests(open(path, encoding="utf-8").read())
            # Comments name modules without importing them.
            text = re.sub(r"//.*", "", text)
            for head, tail in re.findall(r"\b(crate|super|self)((?:::[a-z_][a-z0-9_]*)+)", text):
                names = tail.strip(":").split("::")
                base = {"crate": [], "self": list(here), "super": here[:-1]}[head]
                # The deepest module the path names that has a file of its own.
                target = None
                for n in range(len(names), -1, -1):
                    target = module_file(root, base + names[:n])
                    if target:
                        break
                if not target or target == path:
                    continue
                target_mod = module_of(root, target)
                # A file using an ancestor module (its face) is not an arrow between rooms.
                if os.path.basename(target) in ("mod.rs", "lib.rs") and here[: len(target_mod)] == target_mod:
                    continue
                edges.setdefault(path, set()).add(target)
    # Tarjan's strongly connected components.
    index, low, stack, on, found, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(os.path.relpath(c, HOUSE) for c in component))

    sys.setrecursionlimit(10000)
    for v in list(edges):
        if v not in index:
            visit(v)
    return found


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
    for crate in CRATES:
        for circle in file_circles(crate):
            bad.append("files importing each other round a circle: " + ", ".join(circle))
    if graph:
        for a in sorted(edges, key=lambda m: FLOOR.get(m, 99)):
            print(f"{a} -> {', '.join(sorted(edges[a]))}")
    if bad:
        print("\n".join(sorted(set(bad))))
        return 1
    print("floors, ground first: " + " | ".join(", ".join(ms) for ms in FLOORS) + ": no upward import, no circle of files")
    return 0


if __name__ == "__main__":
    sys.exit(main())
