"""Mutation check: plant one-line faults in the algorithm's code and see which test catches each.

Each mutant replaces one exact snippet (it must occur exactly once in its file) in a copy of
the repository, then runs the chosen tests there, stopping at the first failure. A mutant
that no test catches *survives*; the script lists it and exits 1 unless it is marked
equivalent (with the reason) in ``MUTANTS``.

    .venv/bin/python scripts/mutation_check.py              # all mutants, default tests
    .venv/bin/python scripts/mutation_check.py --only 3 7   # some of them
    .venv/bin/python scripts/mutation_check.py --list       # what would be planted

The working tree is never modified: every mutant runs in its own temporary copy.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

from mutants import MUTANTS, TESTS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COPIED = ("refine", "demo", "tests", "examples", "pyproject.toml", "app.py")


@dataclass(frozen=True)
class Outcome:
    number: int
    caught_by: str | None  # first failing test, None if the mutant survived
    seconds: float


def plant(tree: str, path: str, old: str, new: str) -> None:
    """Replace the single occurrence of ``old`` in ``tree/path`` by ``new``."""
    full = os.path.join(tree, path)
    with open(full, encoding="utf-8") as f:
        text = f.read()
    count = text.count(old)
    if count != 1:
        raise SystemExit(f"{path}: snippet {old!r} occurs {count} times (need exactly 1)")
    with open(full, "w", encoding="utf-8") as f:
        f.write(text.replace(old, new))


def copy_tree(dest: str) -> None:
    for name in COPIED:
        src = os.path.join(ROOT, name)
        if os.path.isdir(src):
            shutil.copytree(
                src, os.path.join(dest, name), ignore=shutil.ignore_patterns("__pycache__")
            )
        elif os.path.isfile(src):
            shutil.copy2(src, dest)


def run_mutant(number: int, timeout: float) -> Outcome:
    m = MUTANTS[number]
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=f"mutant{number}-") as tree:
        copy_tree(tree)
        plant(tree, m.path, m.old, m.new)
        env = {**os.environ, "PYTHONPATH": tree, "CI": "true"}
        cmd = [
            sys.executable,
            "-m",
            "pytest",
            "-x",
            "-q",
            "-p",
            "no:cacheprovider",
            *(m.tests or TESTS),
        ]
        try:
            proc = subprocess.run(
                cmd, cwd=tree, env=env, capture_output=True, text=True, timeout=timeout
            )
            output = proc.stdout + proc.stderr
            failed = re.findall(r"^(?:FAILED|ERROR) (\S+)", output, re.MULTILINE)
            if failed:
                caught = failed[0]
            else:
                caught = f"(pytest exit {proc.returncode})" if proc.returncode else None
        except subprocess.TimeoutExpired:
            caught = f"(timeout after {timeout:.0f} s)"
    return Outcome(number, caught, time.monotonic() - start)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", nargs="+", type=int, metavar="N", help="mutant numbers")
    parser.add_argument("--list", action="store_true", help="list the mutants and stop")
    parser.add_argument(
        "--check", action="store_true", help="check that every snippet occurs once, and stop"
    )
    parser.add_argument("--timeout", type=float, default=600, help="seconds per mutant")
    args = parser.parse_args(argv)
    numbers = args.only or list(range(len(MUTANTS)))
    if args.check:
        with tempfile.TemporaryDirectory(prefix="mutants-") as tree:
            copy_tree(tree)
            for n in numbers:
                m = MUTANTS[n]
                shutil.copy2(os.path.join(ROOT, m.path), os.path.join(tree, m.path))
                plant(tree, m.path, m.old, m.new)
        print(f"{len(numbers)} snippets found once each")
        return 0
    if args.list:
        for n in numbers:
            m = MUTANTS[n]
            print(f"{n:2d} {m.path}: {m.what}  [{' '.join(m.tests or TESTS)}]")
        return 0
    survivors = []
    print(f"{'#':>2}  {'caught by':<70} {'s':>5}  fault")
    for n in numbers:
        out = run_mutant(n, args.timeout)
        m = MUTANTS[n]
        caught = out.caught_by or ("EQUIVALENT: " + m.equivalent if m.equivalent else "SURVIVED")
        print(f"{n:2d}  {caught:<70} {out.seconds:5.0f}  {m.path}: {m.what}", flush=True)
        if out.caught_by is None and not m.equivalent:
            survivors.append(n)
    print(f"{len(numbers) - len(survivors)} caught, {len(survivors)} survived: {survivors}")
    return 1 if survivors else 0


if __name__ == "__main__":
    sys.exit(main())
