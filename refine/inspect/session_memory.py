"""What one session holds in the process-wide :class:`~refine.inspect.budget.MemoryBudget`:
a charge per case, per cached SAM2 run and per SAM2 feature cache, taken before the memory
is allocated and returned when the session lets it go. When the budget takes a charge
back (another case needs the room, or the session sat idle), the session drops the
objects and says why."""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING

from refine.feature_cache import estimated_cache_bytes
from refine.inspect.budget import Charge, MemoryBudget
from refine.inspect.cases import Case
from refine.inspect.runs import CaseRun, RunKey
from refine.models import ModelSpec

if TYPE_CHECKING:
    from refine.inspect.session import Loader, Session

RUN_BYTES_PER_PIXEL = 2  # while SAM2 runs: its stage-1 and SAM2 unions, bool [T, H, W] each


class SessionMemory:
    """The charges of one :class:`~refine.inspect.session.Session` (``owner`` = a random
    id) on ``budget``; SAM2 feature caches are bounded by ``feature_cache_mb`` per video
    and model."""

    def __init__(self, session: Session, budget: MemoryBudget, feature_cache_mb: float) -> None:
        self.session, self.budget = session, budget
        self.feature_cache_mb = feature_cache_mb
        self.owner = uuid.uuid4().hex
        self._runs: dict[RunKey, Charge] = {}
        self._features: dict[tuple[str, ModelSpec], Charge] = {}
        self._lock = threading.Lock()

    # ---- cases -----------------------------------------------------------------------------
    def load(self, loader: Loader) -> Case:
        """``loader(charge)``'s case, charged before it is read (ServerBusy when the budget
        cannot make room). A loader that ignores the charge is charged what it made."""
        holder: list[Case] = []

        def release(reason: str) -> None:
            if holder:
                self.session.release_case(holder[0], reason)

        charge = self.budget.charge(self.owner, "the new case", 0, "host", release)
        try:
            case = loader(charge)
            if case.charge is None:
                case.charge = charge
            elif case.charge is not charge:  # a case charged elsewhere: this one is unused
                charge.close()
            case.settle_charge()
        except BaseException:
            charge.close()
            raise
        holder.append(case)
        return case

    def use(self, case: Case) -> None:
        if case.charge is not None:
            self.budget.use(case.charge)

    def drop_case(self, case: Case) -> None:
        """The session let ``case`` go: return its memory and its feature caches'."""
        if case.charge is not None:
            case.charge.close()
        with self._lock:
            gone = [k for k in self._features if k[0] == case.key]
            charges = [self._features.pop(k) for k in gone]
        for c in charges:
            c.close()

    # ---- SAM2 runs -------------------------------------------------------------------------
    @contextlib.contextmanager
    def tracking(self, case: Case, key: RunKey, spec: ModelSpec) -> Iterator[None]:
        """Around one SAM2 run of ``key`` on ``case``: charge its feature cache (once per
        case and model) and its masks before it starts, keep the case and the cache while
        it runs, and return the masks' charge if it fails."""
        features = self._feature_charge(case, spec)
        t, (h, w) = case.num_frames, case.size
        label = f"the SAM2 run of {case.video}/{key[1]}"
        run = self.budget.charge(
            self.owner, label, RUN_BYTES_PER_PIXEL * t * h * w, "host", self._run_released(key)
        )
        with self._lock:
            old = self._runs.pop(key, None)
            self._runs[key] = run
        if old is not None:
            old.close()
        pins = [self.budget.pin(c) for c in (case.charge, features) if c is not None]
        try:
            with contextlib.ExitStack() as stack:
                for pin in pins:
                    stack.enter_context(pin)
                yield
        except BaseException:
            self.drop_run(key)
            raise

    def settle_run(self, run: CaseRun) -> None:
        """``run`` is cached: its charge becomes what it holds."""
        with self._lock:
            charge = self._runs.get(run.key)
        if charge is not None:
            charge.settle(run.nbytes)

    def drop_run(self, key: RunKey) -> None:
        """The session let the run of ``key`` go: return its memory."""
        with self._lock:
            charge = self._runs.pop(key, None)
        if charge is not None:
            charge.close()

    def _run_released(self, key: RunKey):
        def release(reason: str) -> None:
            with self._lock:
                self._runs.pop(key, None)
            self.session.release_run(key, reason)

        return release

    def _feature_charge(self, case: Case, spec: ModelSpec) -> Charge | None:
        if not self.feature_cache_mb:
            return None
        k = (case.key, spec)
        with self._lock:
            found = self._features.get(k)
        if found is not None:
            return found
        nbytes = estimated_cache_bytes(case.num_frames, spec.input_size, self.feature_cache_mb)
        pool = "device" if spec.device.startswith(("cuda", "mps")) else "host"
        frames = case.frames

        def release(reason: str) -> None:
            with self._lock:
                self._features.pop(k, None)
            frames.caches.clear()

        charge = self.budget.charge(
            self.owner, f"SAM2's feature cache of {case.video}", nbytes, pool, release
        )
        with self._lock:
            self._features[k] = charge
        return charge

    # ---- the session -----------------------------------------------------------------------
    def touch(self) -> None:
        self.budget.touch(self.owner)

    def close(self) -> None:
        """The session ended: return everything (no callbacks)."""
        with self._lock:
            self._runs.clear()
            self._features.clear()
        self.budget.forget(self.owner)
