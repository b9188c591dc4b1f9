"""Sums a `perf report --sort dso,symbol` listing by crate: the first path segment of a Rust
symbol (generic impls `<a::B as c::D>` count for the crate of the type), `[kernel]` for the kernel,
the library's name otherwise."""
import re
import sys
from collections import defaultdict

totals = defaultdict(float)
for line in sys.stdin:
    m = re.match(r"\s+([\d.]+)%\s+(\S+)\s+\[(.)\]\s+(.*)$", line)
    if not m:
        continue
    pct, dso, kind, sym = float(m.group(1)), m.group(2), m.group(3), m.group(4).strip()
    if kind == "k":
        key = "[kernel]"
    elif dso not in ("perpetuo", "floor_proxy", "mock_upstream"):
        key = dso
    else:
        s = sym.lstrip("<&*")
        if s.startswith(("mi_", "_mi_")):
            totals["mimalloc"] += pct
            continue
        s = re.sub(r"^(dyn |mut )", "", s)
        key = re.split(r"::|<| ", s, maxsplit=1)[0] or sym
        if key in ("core", "alloc", "std"):
            # Generic std code is charged to the crate it was instantiated for, when the symbol says.
            inner = re.search(r"<([a-z_][a-z0-9_]*)::", sym)
            key = f"{key} (for {inner.group(1)})" if inner and inner.group(1) not in ("core", "alloc", "std") else key
    totals[key] += pct
for key, pct in sorted(totals.items(), key=lambda kv: -kv[1]):
    print(f"{pct:6.2f}%  {key}")
