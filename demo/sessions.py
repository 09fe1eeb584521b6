"""The app's sessions and their files: one folder per browser session, all under one
folder per app process (no Gradio import: callers pass Gradio's session hash)."""

from __future__ import annotations

import logging
import os
import tempfile
import threading
import uuid
import weakref

from refine.feature_cache import DEFAULT_CACHE_MB
from refine.files import remove_tree
from refine.inspect import MemoryBudget, Session

log = logging.getLogger(__name__)


class SessionStore:
    """Makes each browser session's :class:`Session`, with its own folder under :attr:`root`
    (``refine-app-…`` in the temp folder, or in ``parent``).

    A session's files go when its tab closes (:meth:`end`, from Gradio's unload event; the
    session itself stays, as Gradio keeps its state an hour for a reconnect, and remakes
    files on demand); the session when Gradio drops its state (:meth:`discard`, the
    ``delete_callback`` of its gr.State) or when it is garbage-collected; the root with
    everything in it at shutdown (:meth:`close`, also run at interpreter exit).

    Every session charges what it holds to one ``budget``; with the budget's ``idle_s``,
    a daemon thread returns idle sessions' memory every :func:`sweep_interval` seconds.
    """

    def __init__(
        self,
        parent: str | None = None,
        budget: MemoryBudget | None = None,
        feature_cache_mb: float = DEFAULT_CACHE_MB,
    ) -> None:
        self.root = tempfile.mkdtemp(prefix="refine-app-", dir=parent)
        self.budget = budget or MemoryBudget()
        self.feature_cache_mb = feature_cache_mb
        self._sessions: weakref.WeakValueDictionary[str, Session] = weakref.WeakValueDictionary()
        self._lock = threading.Lock()
        self._remove_root = weakref.finalize(self, remove_tree, self.root, "app session folder")
        self._stop = threading.Event()
        if self.budget.idle_s is not None:
            every = sweep_interval(self.budget.idle_s)
            args = (weakref.ref(self.budget), self._stop, every)
            threading.Thread(target=_sweep, args=args, daemon=True).start()

    def get(self, session: Session | None, key: str | None = None) -> Session:
        """``session`` if there is one, else the session of browser session ``key``
        (Gradio's session hash; None: a new anonymous session), made on first use."""
        if session is not None:
            return session
        with self._lock:
            found = self._sessions.get(key) if key is not None else None
            if found is not None:
                return found
            if not self._remove_root.alive:
                raise RuntimeError(f"the session store at {self.root} is closed")
            new = Session(
                workdir=os.path.join(self.root, uuid.uuid4().hex),
                budget=self.budget,
                feature_cache_mb=self.feature_cache_mb,
            )
            self._sessions[key if key is not None else new.workdir] = new
        return new

    def end(self, key: str) -> None:
        """The tab of browser session ``key`` closed: delete its files (none is fine)."""
        with self._lock:
            session = self._sessions.get(key)
        if session is not None:
            session.remove_files()

    def discard(self, session: Session | None) -> None:
        """Gradio dropped ``session``'s state: close it (files and memory) and forget it."""
        if session is None:
            return
        with self._lock:
            for key in [k for k, s in self._sessions.items() if s is session]:
                del self._sessions[key]
        session.close()

    def __len__(self) -> int:
        return len(self._sessions)

    def close(self) -> None:
        """Shutdown: close every session and delete the root folder with all files."""
        self._stop.set()
        with self._lock:
            sessions = list(self._sessions.values())
            self._sessions.clear()
        for session in sessions:
            session.close()
        self._remove_root()


def sweep_interval(idle_s: float) -> float:
    """Seconds between idle sweeps: a quarter of the idle time, at most a minute."""
    return min(60.0, idle_s / 4)


def _sweep(budget: weakref.ref, stop: threading.Event, every: float) -> None:
    """Release idle sessions' memory every ``every`` s, until ``stop`` or the budget goes."""
    while not stop.wait(every):
        live = budget()
        if live is None:
            return
        freed = live.release_idle()
        del live
        if freed:
            log.info("released %d bytes of idle sessions", freed)
