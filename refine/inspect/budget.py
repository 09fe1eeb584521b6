"""One process-wide memory budget for everything the app's sessions hold.

Every case (frames, stage-1 results, ground truth, preview), cached SAM2 run and SAM2
feature cache is a :class:`Charge` on a :class:`MemoryBudget`, in the pool where its
memory lives: ``"host"`` (RAM) or ``"device"`` (GPU memory). A charge is taken *before*
the memory is allocated (from file headers and directories, or frame by frame while
decoding); when a pool cannot fit it, the least recently used charges are released first —
the requesting session's own, and those of other sessions unused for ``protect_s`` seconds —
and only then is the request refused with :class:`ServerBusy`. Charges of sessions idle for
``idle_s`` are released by :meth:`MemoryBudget.release_idle` (run periodically by the app).
Releasing a charge calls its ``release`` callback, which drops the objects (the session
then tells its user why the case is gone).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from refine.errors import InputError
from refine.limits import format_bytes

POOLS = ("host", "device")
DEFAULT_PROTECT_S = 30.0


class ServerBusy(InputError):
    """A new case or run cannot fit in the memory budget right now (others are using it)."""


@dataclass(eq=False)
class Charge:
    """``nbytes`` of ``pool`` held by ``owner`` (a session's id) for ``what`` (a label for
    messages and logs). ``release`` drops the memory's objects when the budget takes the
    charge back (not when the owner releases it)."""

    budget: MemoryBudget
    owner: str
    what: str
    pool: str
    nbytes: int = 0
    release: Callable[[str], None] | None = None
    pins: int = 0
    last_used: float = 0.0
    live: bool = True

    def grow(self, nbytes: int, what: str | None = None) -> None:
        """Add ``nbytes`` to this charge before allocating them (ServerBusy when they don't
        fit); ``what`` names the new memory in the message."""
        self.budget.grow(self, nbytes, what)

    def settle(self, nbytes: int) -> None:
        """The memory is now exactly ``nbytes``: return what is over, or :meth:`grow`."""
        self.budget.settle(self, nbytes)

    def close(self) -> None:
        """The owner let the memory go: return it to the budget (no callback)."""
        self.budget.close(self)


class MemoryBudget:
    """Bytes that a process's sessions may hold, per pool (None: unbounded; for library
    use and tests). Thread-safe; callbacks run outside the lock."""

    def __init__(
        self,
        host_bytes: int | None = None,
        device_bytes: int | None = None,
        idle_s: float | None = None,
        protect_s: float = DEFAULT_PROTECT_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        for name, value in (("host", host_bytes), ("device", device_bytes)):
            if value is not None and value <= 0:
                raise InputError(f"the {name} memory budget must be positive, got {value}")
        if idle_s is not None and idle_s <= 0:
            raise InputError(f"the idle time before release must be positive, got {idle_s}")
        self.limits = {"host": host_bytes, "device": device_bytes}
        self.idle_s, self.protect_s, self.clock = idle_s, protect_s, clock
        self._charges: list[Charge] = []
        self._active: dict[str, float] = {}  # owner → last activity
        self._lock = threading.Lock()

    # ---- taking and returning memory -----------------------------------------------------
    def charge(
        self,
        owner: str,
        what: str,
        nbytes: int = 0,
        pool: str = "host",
        release: Callable[[str], None] | None = None,
    ) -> Charge:
        """A new charge of ``nbytes`` (more can be added with :meth:`Charge.grow`).
        ``release(reason)`` is called if the budget takes it back."""
        if pool not in POOLS:
            raise ValueError(f"unknown memory pool {pool!r}; use one of {POOLS}")
        c = Charge(self, owner, what, pool, 0, release)
        with self._lock:
            self._charges.append(c)  # holding 0 bytes, it is nobody's victim yet
        try:
            self.grow(c, nbytes)
        except BaseException:
            self.close(c)
            raise
        return c

    def grow(self, c: Charge, nbytes: int, what: str | None = None) -> None:
        """Add ``nbytes`` to ``c``, releasing least recently used charges to make room;
        ServerBusy when even that does not make room."""
        if nbytes < 0:
            raise ValueError(f"cannot grow a charge by {nbytes} bytes")
        victims = []
        with self._lock:
            if not c.live:
                raise ServerBusy(f"{c.what} was released to free memory; open it again")
            now = self.clock()
            self._active[c.owner] = now
            c.last_used = now
            limit = self.limits[c.pool]
            if limit is not None:
                need = self._used(c.pool) + nbytes - limit
                if need > 0:
                    victims = self._victims(c, need, now)
                    if victims is None:
                        raise ServerBusy(self._busy_message(c, nbytes, what))
                    for v in victims:
                        self._drop(v)
            c.nbytes += nbytes
        for v in victims:
            _call_release(v, "to make room for another case")

    def settle(self, c: Charge, nbytes: int) -> None:
        """Set ``c`` to ``nbytes`` (growing it as :meth:`grow` does)."""
        with self._lock:
            if nbytes <= c.nbytes:
                c.nbytes = nbytes
                return
            more = nbytes - c.nbytes
        self.grow(c, more)

    def close(self, c: Charge) -> None:
        with self._lock:
            self._drop(c)

    def pin(self, c: Charge) -> _Pin:
        """``with budget.pin(c):`` — ``c`` is not released while the block runs (a case
        being tracked by SAM2)."""
        return _Pin(self, c)

    # ---- activity and idle sessions ------------------------------------------------------
    def touch(self, owner: str) -> None:
        """``owner`` is active now: its charges become the most recently used."""
        with self._lock:
            now = self.clock()
            self._active[owner] = now
            for c in self._charges:
                if c.owner == owner:
                    c.last_used = now

    def use(self, c: Charge) -> None:
        """``c`` was used now (its owner too)."""
        with self._lock:
            c.last_used = self._active[c.owner] = self.clock()

    def release_idle(self) -> int:
        """Release every charge of owners idle for :attr:`idle_s` (none without it);
        returns the bytes released."""
        if self.idle_s is None:
            return 0
        with self._lock:
            now = self.clock()
            idle = {o for o, t in self._active.items() if now - t >= self.idle_s}
            victims = [c for c in self._charges if c.owner in idle and not c.pins]
            for v in victims:
                self._drop(v)
            for o in idle:
                if not any(c.owner == o for c in self._charges):
                    del self._active[o]
        span = f"{self.idle_s / 60:g} minutes" if self.idle_s >= 60 else f"{self.idle_s:g} s"
        for v in victims:
            _call_release(v, f"after {span} without use")
        return sum(v.nbytes for v in victims)

    def forget(self, owner: str) -> None:
        """``owner`` ended: drop its charges (no callbacks) and its activity."""
        with self._lock:
            for c in [c for c in self._charges if c.owner == owner]:
                self._drop(c)
            self._active.pop(owner, None)

    # ---- figures ---------------------------------------------------------------------------
    def used(self, pool: str = "host") -> int:
        with self._lock:
            return self._used(pool)

    def held_by(self, owner: str, pool: str = "host") -> int:
        with self._lock:
            return sum(c.nbytes for c in self._charges if c.owner == owner and c.pool == pool)

    # ---- internals (lock held) -------------------------------------------------------------
    def _used(self, pool: str) -> int:
        return sum(c.nbytes for c in self._charges if c.pool == pool)

    def _victims(self, c: Charge, need: int, now: float) -> list[Charge] | None:
        """Charges to release, least recently used first, that free ``need`` bytes of
        ``c``'s pool: unpinned ones of ``c``'s owner or unused for protect_s; None if
        they cannot free enough."""
        candidates = sorted(
            (
                v
                for v in self._charges
                if v is not c
                and v.pool == c.pool
                and not v.pins
                and v.nbytes
                and (v.owner == c.owner or now - v.last_used >= self.protect_s)
            ),
            key=lambda v: v.last_used,  # stable: ties in the order taken
        )
        out, freed = [], 0
        for v in candidates:
            if freed >= need:
                break
            out.append(v)
            freed += v.nbytes
        return out if freed >= need else None

    def _drop(self, c: Charge) -> None:
        if c.live:
            c.live = False
            self._charges.remove(c)

    def _busy_message(self, c: Charge, nbytes: int, what: str | None) -> str:
        limit = self.limits[c.pool]
        memory = "GPU memory" if c.pool == "device" else "memory"
        return (
            f"The server is busy: {what or c.what} needs {format_bytes(nbytes)} of {memory} "
            f"and {format_bytes(self._used(c.pool))} of the "
            f"{format_bytes(limit)} it may use are held by cases in use right now. Try a "
            "smaller clip (fewer frames or a lower resolution), or again in a few minutes."
        )


class _Pin:
    def __init__(self, budget: MemoryBudget, c: Charge) -> None:
        self.budget, self.c = budget, c

    def __enter__(self) -> Charge:
        with self.budget._lock:
            self.c.pins += 1
        return self.c

    def __exit__(self, *exc: object) -> None:
        with self.budget._lock:
            self.c.pins -= 1
        self.budget.use(self.c)


def _call_release(c: Charge, reason: str) -> None:
    if c.release is not None:
        c.release(reason)
