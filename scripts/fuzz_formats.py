#!/usr/bin/env python
"""Offline fuzz campaign over the format parsers (issue 11).

Runs N seeded cases per parser with the generators and mutations of
``tests/fuzz_mutations.py`` and prints, per parser, the outcome counts:
clear errors (FormatError naming the file), counted skips/warnings, clean
parses, and failures (crashes, unclear errors, NaN/inf stored, silent
drops), with the most frequent failure messages.

Usage::

    python scripts/fuzz_formats.py --cases 5000 [--json out.json] [--only "HRSC XML"]

To measure an older version, put its package first on ``PYTHONPATH`` (e.g.
``git archive <commit> fiftyone_samrs | tar -x -C /tmp/old`` and
``PYTHONPATH=/tmp/old``): the cases only pass the keyword arguments a
parser accepts.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))

import fuzz_mutations as fm


def run(cases: int, only=None, seed0: int = 0) -> dict:
    out = {}
    for name, case in fm.CASES.items():
        if only and name not in only:
            continue
        counts: collections.Counter = collections.Counter()
        failures: collections.Counter = collections.Counter()
        first_seed = {}
        t = time.perf_counter()
        for i in range(seed0, seed0 + cases):
            with tempfile.TemporaryDirectory() as tmp:
                outcome, detail = case(random.Random(i), tmp, True)
            counts[outcome] += 1
            if outcome not in fm.ACCEPTED:
                key = "%s: %s" % (outcome, detail[:100])
                failures[key] += 1
                first_seed.setdefault(key, i)
        out[name] = {
            "cases": cases,
            "clear error": counts["error"],
            "counted": counts["counted"],
            "parsed": counts["parsed"],
            "failures": sum(n for k, n in counts.items() if k not in fm.ACCEPTED),
            "by outcome": dict(counts),
            "top failures": [(k, n, first_seed[k]) for k, n in failures.most_common(8)],
            "seconds": round(time.perf_counter() - t, 1),
        }
        print("%-18s %s" % (name, dict(counts)), file=sys.stderr, flush=True)
    return out


def table(results: dict) -> str:
    lines = ["| parser | cases | clear error | counted skip/warning | parsed clean | "
             "crash / bad data |", "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for name, r in results.items():
        lines.append("| %s | %d | %d | %d | %d | %d |" % (
            name, r["cases"], r["clear error"], r["counted"], r["parsed"], r["failures"]))
    for name, r in results.items():
        for key, n, seed in r["top failures"]:
            lines.append("  %s: %d x %s (first seed %d)" % (name, n, key, seed))
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", type=int, default=5000, help="cases per parser")
    ap.add_argument("--seed", type=int, default=0, help="first seed")
    ap.add_argument("--only", action="append", help="parser name (repeatable)")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args(argv)
    import fiftyone_samrs

    print("package: %s" % os.path.dirname(fiftyone_samrs.__file__), file=sys.stderr)
    results = run(args.cases, args.only, args.seed)
    print(table(results))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 1 if any(r["failures"] for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
