"""What every handler shares: the app's configuration, sessions, data sources and SAM2
tracker (:class:`AppContext`), and :func:`user_errors`, which turns every failure into a
message in the page's status area."""

from __future__ import annotations

import functools
import html
import logging
import re
from collections.abc import Callable
from fractions import Fraction

import gradio as gr

from demo.config import AppConfig
from demo.controls import Controls
from demo.gpu import make_tracker, resolve_device
from demo.sessions import SessionStore
from refine.errors import InputError
from refine.fusion import as_fraction
from refine.inspect import DataSource, FilesRemoved, RunSettings, Session, Tracker
from refine.inspect.fair_queue import FairGate, gated
from refine.inspect.work_limits import bounded
from refine.models import resolve_checkpoint

log = logging.getLogger(__name__)

SLIDER_DENOMINATOR = 1000  # slider values become fractions with at most this denominator


_ABSOLUTE_PATH = re.compile(r"(?<![\w.~])/(?:[^\s/'\"`()]+/)+(?=[^\s/'\"`()]*)")


def hide_paths(message: str) -> str:
    """``message`` with every absolute path cut to its last part: the server's folders
    (Gradio's temp folder, the working directory) are not the user's business, the file
    name is ("/tmp/gradio/ab12/clip.zip: …" → "clip.zip: …")."""
    return _ABSOLUTE_PATH.sub("", message)


def error_status(message: str) -> str:
    """The status area's text for an error (HTML-escaped: messages may contain <exp_id>)."""
    return f"⚠ **{html.escape(message, quote=False)}**"


def warning_status(message: str) -> str:
    return f"⚠ {html.escape(message, quote=False)}"


def user_errors(fn: Callable[..., dict]) -> Callable[..., dict]:
    """Every failure of a handler becomes ``{"status": message}`` (the rest of the page
    stays as it was) plus a toast: an InputError (and SAM2's OutOfMemory) with its message;
    any other exception, a bug, as an internal error with its traceback in the log."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs) -> dict:
        try:
            return fn(*args, **kwargs)
        except FilesRemoved as err:  # the tab closed while files were written
            log.info("%s: %s", fn.__qualname__, err)
            return {"status": warning_status(hide_paths(str(err)))}
        except InputError as err:
            message = str(err)
        except Exception as err:  # a bug: say so, keep serving, log the traceback
            log.exception("%s failed", fn.__qualname__)
            message = (
                f"Internal error in {fn.__name__}: {type(err).__name__}: {err}. The app keeps "
                "running: try again, or open the case again; please report this (the server "
                "log has the details)."
            )
        message = hide_paths(message)
        gr.Warning(html.escape(message, quote=False))
        return {"status": error_status(message)}

    return wrapper


def slider_fraction(value: float | str | None, name: str) -> Fraction:
    """A slider's ρ or v as a small exact fraction (0.6666666 → 2/3)."""
    try:
        return as_fraction(value, name).limit_denominator(SLIDER_DENOMINATOR)
    except ValueError as err:
        raise InputError(str(err)) from err


def _static_factory(cls: type) -> Callable:
    def factory(spec):
        return cls()

    return factory


class AppContext:
    """The app's configuration, browser sessions, data sources and SAM2 tracker, whose
    calls (one expression each) share the fair :attr:`gate` of ``config.concurrency``
    slots."""

    def __init__(self, config: AppConfig) -> None:
        self.config = config
        factory = config.propagator_factory
        if factory is None and config.fake_sam2:
            from refine.testing import StaticPropagator

            factory = _static_factory(StaticPropagator)
        self.track = make_tracker(factory, config.cache_mb)
        self.gate = FairGate(config.concurrency)
        self.uses_sam2 = factory is None  # False: a fake/test propagator, no checkpoint needed
        features = config.cache_mb if self.uses_sam2 else 0  # a fake SAM2 caches nothing
        self.sessions = SessionStore(budget=config.budget(), feature_cache_mb=features)
        root = config.examples_root
        self.sources: dict[str, DataSource] = {
            "examples": DataSource("examples", root, f"{root}/stage1")
        }
        if config.mevis_root is not None:
            self.sources["dataset"] = DataSource(
                "dataset", config.mevis_root, config.dataset_stage1_dir
            )

    def tracker(self, session: Session, on_wait: Callable[[], None] | None = None) -> Tracker:
        """The tracker for ``session``'s runs: each call refuses work over the limits
        (``config.work``), then waits for its turn at the gate (``on_wait()`` when it must
        wait; the session's Stop ends the wait) and holds a slot while SAM2 tracks."""
        track = gated(self.track, self.gate, session, session.cancel, on_wait)
        return bounded(track, self.config.work)

    def session(self, session: Session | None, request: gr.Request | None = None) -> Session:
        """``session``, or the browser session's new one (with its own folder)."""
        key = request.session_hash if request is not None else None
        return self.sessions.get(session, key)

    def settings(self, controls: Controls) -> RunSettings:
        """RunSettings of ``controls`` for the page's labels (device as chosen)."""
        return controls.settings(self.config.image_size)

    def run_settings(self, controls: Controls) -> RunSettings:
        """RunSettings for a SAM2 run: the checkpoint checked (when SAM2 is real and the
        checkpoint chosen) and device "auto" resolved."""
        if not controls.random_weights and self.uses_sam2:
            try:
                resolve_checkpoint(controls.size)
            except InputError as err:
                raise InputError(
                    f"{err}. To try the app without it, choose “Random weights (masks "
                    "meaningless)” under *Model and selection settings*."
                ) from err
        if not self.uses_sam2 and controls.device_auto:
            device = "cpu"  # a fake propagator runs nowhere; don't import torch to find a GPU
        else:
            device = resolve_device(controls.device)
        return controls.settings(self.config.image_size, device)

    def model_name(self, settings: RunSettings) -> str:
        return settings.describe() if self.uses_sam2 else "the FAKE SAM2 (test mode)"

    def close(self) -> None:
        """App shutdown: close all sessions and delete their folders."""
        self.sessions.close()
