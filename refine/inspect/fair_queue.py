"""A fair gate for SAM2 work shared by sessions: a few slots, handed out round-robin.

Each acquisition covers one expression's tracking, so a long job (a ranking of many
expressions) takes a slot per expression and gives it back in between: a Run of another
session that arrives meanwhile gets the next free slot, not the end of the ranking. Slots
go to sessions in turn (round-robin, FIFO within a session), so one session's many waiting
jobs cannot starve another's one. A session's stop request ends its wait
(:class:`~refine.inspect.runs.RunCancelled`).
"""

from __future__ import annotations

import contextlib
import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable, Iterator

from refine.inspect.runs import RunCancelled, Tracker
from refine.memory import SAM2_MEMORY

POLL_S = 0.05  # how often a waiter looks at its stop request


class _Ticket:
    __slots__ = ("granted",)

    def __init__(self) -> None:
        self.granted = False


class FairGate:
    """``slots`` units of SAM2 work at a time, given to owners (e.g. sessions) in turn."""

    def __init__(self, slots: int) -> None:
        if slots < 1:
            raise ValueError(f"a gate needs at least 1 slot, got {slots}")
        self.slots = slots
        self._free = slots
        self._waiting: OrderedDict[Hashable, deque[_Ticket]] = OrderedDict()  # turn order
        self._cond = threading.Condition()

    @property
    def waiting(self) -> int:
        """Acquisitions waiting for a slot now."""
        with self._cond:
            return sum(len(q) for q in self._waiting.values())

    @property
    def busy(self) -> int:
        """Slots held now."""
        with self._cond:
            return self.slots - self._free

    def acquire(
        self,
        owner: Hashable,
        cancel: threading.Event | None = None,
        on_wait: Callable[[], None] | None = None,
    ) -> None:
        """Take a slot for ``owner``: at once if one is free and nobody waits, else when
        ``owner``'s turn comes. ``on_wait()`` is called once if it must wait; ``cancel``
        set while waiting → RunCancelled (no slot taken)."""
        with self._cond:
            if self._free > 0 and not self._waiting:
                self._free -= 1
                return
            ticket = _Ticket()
            self._waiting.setdefault(owner, deque()).append(ticket)
        if on_wait is not None:
            on_wait()
        with self._cond:
            while not ticket.granted:
                if cancel is not None and cancel.is_set():
                    self._withdraw(owner, ticket)
                    raise RunCancelled("stopped while waiting for SAM2")
                self._cond.wait(POLL_S)

    def release(self) -> None:
        """Give a slot back; the next owner in turn gets it."""
        with self._cond:
            if self._free >= self.slots:
                raise RuntimeError("FairGate.release without a matching acquire")
            self._free += 1
            self._grant()

    @contextlib.contextmanager
    def slot(
        self,
        owner: Hashable,
        cancel: threading.Event | None = None,
        on_wait: Callable[[], None] | None = None,
    ) -> Iterator[None]:
        """A slot held for the ``with`` block (see :meth:`acquire`)."""
        self.acquire(owner, cancel, on_wait)
        try:
            yield
        finally:
            self.release()

    def _grant(self) -> None:
        """Hand free slots to waiters: the first owner in turn order gets one, then goes to
        the back if it still waits. Call with the lock held."""
        while self._free > 0 and self._waiting:
            owner, queue = next(iter(self._waiting.items()))
            queue.popleft().granted = True
            self._free -= 1
            if queue:
                self._waiting.move_to_end(owner)
            else:
                del self._waiting[owner]
        self._cond.notify_all()

    def _withdraw(self, owner: Hashable, ticket: _Ticket) -> None:
        queue = self._waiting[owner]
        queue.remove(ticket)
        if not queue:
            del self._waiting[owner]


def gated(
    track: Tracker,
    gate: FairGate,
    owner: Hashable,
    cancel: threading.Event | None = None,
    on_wait: Callable[[], None] | None = None,
) -> Tracker:
    """``track`` with each call (one expression) holding a slot of ``gate`` for ``owner``."""

    def run(frames, exp_id, exp, params, spec, progress, memory=SAM2_MEMORY):
        with gate.slot(owner, cancel, on_wait):
            return track(frames, exp_id, exp, params, spec, progress, memory)

    return run
