"""Hypothesis profiles: reproducible in CI, random locally.

``ci`` (chosen when the ``CI`` environment variable is set, as CI services do): the
examples are derived from each test's name (``derandomize``), so a run gives the same
examples every time and a failure reproduces; no example database is written.
``dev`` (otherwise): random examples, failures kept in the local example database and
replayed first. ``HYPOTHESIS_PROFILE=ci`` or ``=dev`` chooses one explicitly.
"""

from __future__ import annotations

import os

from hypothesis import settings

_BASE = settings.get_profile("default")  # not whatever profile hypothesis chose by itself
settings.register_profile("ci", _BASE, derandomize=True, database=None, print_blob=True)
settings.register_profile("dev", _BASE, print_blob=True)
settings.load_profile(
    os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev")
)
