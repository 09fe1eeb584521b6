"""The process-wide memory budget: charges before allocation, LRU release across owners,
protection of recently used memory, pins, idle release and the "server busy" message."""

from __future__ import annotations

import pytest

from refine.errors import InputError
from refine.inspect.budget import MemoryBudget, ServerBusy

MB = 2**20


class Clock:
    """A clock for MemoryBudget that moves only when a test sets ``now``."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _budget(host_mb: int = 100, **kw) -> tuple[MemoryBudget, Clock, list[str]]:
    clock, released = Clock(), []
    return MemoryBudget(host_mb * MB, 10 * MB, clock=clock, **kw), clock, released


def _release(log: list[str], name: str):
    return lambda reason: log.append(f"{name}: {reason}")


def test_a_charge_that_fits_is_taken_and_counted_per_pool():
    b, _, _ = _budget()
    b.charge("a", "case", 60 * MB)
    b.charge("a", "features", 4 * MB, pool="device")
    assert b.used("host") == 60 * MB and b.used("device") == 4 * MB
    assert b.held_by("a") == 60 * MB


def test_the_least_recently_used_memory_of_an_idle_owner_makes_room():
    b, clock, log = _budget()
    b.charge("old", "case 1", 40 * MB, release=_release(log, "old1"))
    clock.now += 5
    b.charge("old", "case 2", 40 * MB, release=_release(log, "old2"))
    clock.now += 60  # both unused for longer than protect_s
    b.charge("new", "case 3", 50 * MB)
    assert log == ["old1: to make room for another case"]  # the older one only
    assert b.used() == 90 * MB


def test_recently_used_memory_of_others_is_kept_and_the_newcomer_is_told_the_server_is_busy():
    b, clock, log = _budget(protect_s=30)
    b.charge("busy", "case", 80 * MB, release=_release(log, "busy"))
    clock.now += 10
    with pytest.raises(ServerBusy) as err:
        b.charge("new", "the video clip", 50 * MB)
    assert isinstance(err.value, InputError)
    assert str(err.value) == (
        "The server is busy: the video clip needs 50.0 MiB of memory and 80.0 MiB of the "
        "100.0 MiB it may use are held by cases in use right now. Try a smaller clip (fewer "
        "frames or a lower resolution), or again in a few minutes."
    )
    assert log == [] and b.used() == 80 * MB  # the refused charge holds nothing


def test_an_owner_frees_its_own_older_memory_at_once():
    b, clock, log = _budget()
    b.charge("me", "case 1", 80 * MB, release=_release(log, "mine"))
    clock.now += 1
    b.charge("me", "case 2", 50 * MB)
    assert log == ["mine: to make room for another case"]


def test_touch_makes_an_owner_recent_again():
    b, clock, log = _budget(protect_s=30)
    b.charge("a", "case", 80 * MB, release=_release(log, "a"))
    clock.now += 100
    b.touch("a")
    with pytest.raises(ServerBusy):
        b.charge("b", "case", 50 * MB)
    assert log == []


def test_pinned_memory_is_not_released():
    b, clock, log = _budget()
    c = b.charge("a", "case", 80 * MB, release=_release(log, "a"))
    clock.now += 100
    with b.pin(c), pytest.raises(ServerBusy):
        b.charge("b", "case", 50 * MB)
    assert log == []


def test_grow_and_settle_adjust_a_charge():
    b, _, _ = _budget()
    c = b.charge("a", "case", 10 * MB)
    c.grow(30 * MB)
    assert b.used() == 40 * MB
    c.settle(25 * MB)
    assert b.used() == 25 * MB
    with pytest.raises(ServerBusy, match="the preview needs 80.0 MiB"):
        c.grow(80 * MB, "the preview")
    assert b.used() == 25 * MB
    c.close()
    assert b.used() == 0


def test_idle_owners_give_everything_back():
    b, clock, log = _budget(idle_s=600)
    b.charge("idle", "case", 30 * MB, release=_release(log, "idle"))
    b.charge("idle", "run", 10 * MB, release=_release(log, "idle run"))
    b.charge("active", "case", 20 * MB, release=_release(log, "active"))
    clock.now += 599
    b.touch("active")
    assert b.release_idle() == 0
    clock.now += 1
    assert b.release_idle() == 40 * MB
    assert log == ["idle: after 10 minutes without use", "idle run: after 10 minutes without use"]
    assert b.used() == 20 * MB


def test_an_unbounded_budget_never_refuses():
    b = MemoryBudget()
    b.charge("a", "case", 10**15)
    assert b.release_idle() == 0


@pytest.mark.parametrize("kw", [{"host_bytes": 0}, {"device_bytes": -1}, {"idle_s": 0}])
def test_bad_budgets_are_refused(kw):
    with pytest.raises(InputError, match="must be positive"):
        MemoryBudget(**kw)
