"""The fair gate for SAM2 work: turns round-robin by owner, a stop ends a wait."""

from __future__ import annotations

import threading
import time

import pytest

from refine.inspect import RunCancelled
from refine.inspect.fair_queue import FairGate

WAIT_S = 5.0


def _until(condition, timeout: float = WAIT_S) -> None:
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.005)


def _waiter(gate: FairGate, owner: str, order: list, cancel=None, errors=None):
    def work() -> None:
        try:
            with gate.slot(owner, cancel):
                order.append(owner)
        except RunCancelled as err:
            errors.append(str(err))

    thread = threading.Thread(target=work)
    thread.start()
    return thread


def test_slots_go_round_robin_by_owner_not_first_come():
    gate, order = FairGate(1), []
    gate.acquire("holder")
    threads = []
    for n, owner in enumerate(("a", "a", "a", "b", "c"), 1):  # a queues 3 before b and c
        threads.append(_waiter(gate, owner, order))
        _until(lambda n=n: gate.waiting == n)
    gate.release()
    for t in threads:
        t.join(WAIT_S)
    assert order == ["a", "b", "c", "a", "a"]
    assert gate.busy == 0 and gate.waiting == 0


def test_a_free_slot_is_taken_at_once_and_a_second_waits():
    gate = FairGate(2)
    gate.acquire("a")
    gate.acquire("b")
    assert gate.busy == 2
    order = []
    thread = _waiter(gate, "c", order)
    _until(lambda: gate.waiting == 1)
    assert order == []
    gate.release()
    thread.join(WAIT_S)
    assert order == ["c"] and gate.busy == 1


def test_stop_while_waiting_raises_run_cancelled_and_takes_no_slot():
    gate, order, errors = FairGate(1), [], []
    cancel = threading.Event()
    gate.acquire("holder")
    thread = _waiter(gate, "a", order, cancel, errors)
    _until(lambda: gate.waiting == 1)
    cancel.set()
    thread.join(WAIT_S)
    assert errors == ["stopped while waiting for SAM2"] and order == []
    assert gate.waiting == 0 and gate.busy == 1  # the holder's slot only
    gate.release()
    gate.acquire("b")  # the slot is free again: taken at once
    assert gate.busy == 1


def test_release_without_acquire_is_a_bug():
    with pytest.raises(RuntimeError, match="without a matching acquire"):
        FairGate(1).release()
