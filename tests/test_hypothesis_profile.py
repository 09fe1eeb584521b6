"""Every hypothesis test in the suite is reproducible when ``CI`` is set (tests/conftest.py),
whatever hypothesis version is installed, and random in a local run."""

from __future__ import annotations

import json
import os
import subprocess
import sys

MODULES = ["tests.test_fuzz_loaders", "tests.test_fuzz_uploads", "tests.test_metrics"]

PROBE = """
import importlib, json, sys
try:
    import tests.conftest  # what pytest loads before any test module
except ModuleNotFoundError:
    pass
out = {}
for name in sys.argv[1:]:
    mod = importlib.import_module(name)
    for attr, fn in vars(mod).items():
        if hasattr(fn, "hypothesis"):  # a @given test
            s = fn._hypothesis_internal_use_settings
            out[f"{name}.{attr}"] = [s.derandomize, s.database is None]
print(json.dumps(out))
"""


def _probe(env: dict) -> dict:
    """{test: [derandomized, no database]} under ``env`` (a None value unsets a variable)."""
    full = {k: v for k, v in {**os.environ, **env}.items() if v is not None}
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, *MODULES],
        env=full,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_hypothesis_tests_are_derandomized_in_ci():
    found = _probe({"CI": "true", "HYPOTHESIS_PROFILE": None})
    assert len(found) >= 5, found  # the loaders', uploads' and metrics' @given tests
    assert all(derandomized and no_db for derandomized, no_db in found.values()), found


def test_hypothesis_tests_are_random_locally():
    env = {"CI": None, "HYPOTHESIS_PROFILE": None}
    assert not any(derandomized for derandomized, _ in _probe(env).values())
