"""The app's event wiring: which handler answers which component event, with which inputs
and outputs (the components are those :mod:`demo.ui` lays out, by name)."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence

from demo.callbacks import Callbacks
from demo.config import AppConfig
from demo.context import user_errors
from demo.controls import CONTROL_NAMES, Controls
from demo.render import (
    FRAME_OUTPUTS,
    REFUSE_OUTPUTS,
    REFUSE_SLOW_OUTPUTS,
    VIDEO_OUTPUTS,
    VIEW_OUTPUTS,
)
from refine.inspect import Session


def _handler(fn: Callable, c: dict) -> Callable:
    """Adapt a handler for Gradio: its ``controls`` parameter is given as the components of
    :data:`CONTROL_NAMES` (one :class:`Controls` is built from them), and its
    ``{name: value}`` result becomes ``{component: value}``. Invalid control values become
    a status message like every other failure."""
    sig = inspect.signature(fn)
    params = list(sig.parameters.values())
    names = [p.name for p in params]
    at = names.index("controls") if "controls" in names else None
    n = len(CONTROL_NAMES)
    if at is not None:
        kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
        params[at : at + 1] = [inspect.Parameter(name, kind) for name in CONTROL_NAMES]

    @user_errors
    def call(*args, **kwargs) -> dict:
        if args and isinstance(args[0], Session):
            args[0].touch()  # the user is here: their memory is the most recently used
        if at is not None:
            args = (*args[:at], Controls.of(*args[at : at + n]), *args[at + n :])
        return fn(*args, **kwargs)

    @functools.wraps(fn)
    def handler(*args, **kwargs):
        return {c[k]: v for k, v in call(*args, **kwargs).items()}

    handler.__signature__ = sig.replace(parameters=params)
    return handler


WAITING_AT_GATE = 4  # SAM2 events of each kind admitted beyond the gate's slots


def admitted(config: AppConfig) -> int:
    """How many Run (and, separately, Rank) events Gradio lets in at once: the gate's
    slots, plus a few that wait at the gate, where turns go round-robin by session (in
    Gradio's queue they would go first come, first served). Each holds a server thread
    while it waits, so this is bounded."""
    return config.concurrency + WAITING_AT_GATE


def wire(c: dict, cb: Callbacks, config: AppConfig) -> None:
    """Connect the events of the components ``c`` (by name) to the handlers of ``cb``."""
    controls = [c[k] for k in CONTROL_NAMES]

    def outs(names: Sequence[str]) -> list:
        return [c[n] for n in names]

    view_out = outs(VIEW_OUTPUTS)
    progress_on = outs(("status", *FRAME_OUTPUTS))  # in view next to Run and the overlays
    video_out = outs((*VIDEO_OUTPUTS, "status"))
    videos = _handler(cb.runs.videos, c)
    private = {"api_visibility": "private"}
    # The SAM2 work of Run and Rank is shared out by the context's fair gate, one
    # expression at a time; Gradio only admits them, each kind in its own group, so that a
    # long ranking never holds a Run in Gradio's queue (see admitted).
    run_group = {"concurrency_id": "sam2-run", "concurrency_limit": admitted(config)}
    rank_group = {"concurrency_id": "sam2-rank", "concurrency_limit": admitted(config)}

    def opens(event, fn: Callable, inputs: list, api_name: str, **kw) -> None:
        """An event that opens a view, then renders its videos."""
        event(
            _handler(fn, c),
            inputs,
            view_out,
            api_name=api_name,
            show_progress_on=progress_on,
            **kw,
        ).success(videos, [c["session"]], video_out, api_name=f"videos_{api_name}", **private)

    opens(
        c["example"].input,
        cb.cases.open_example,
        [c["session"], c["example"], *controls],
        "open_example",
    )
    upload_in = [c["session"], c["up_video"], c["up_stage1"], *controls, c["up_gt"], c["up_meta"]]
    opens(c["up_load"].click, cb.cases.open_upload, upload_in, "open_upload")
    if "ds_video" in c:
        opens(
            c["ds_video"].input,
            cb.cases.open_dataset_video,
            [c["session"], c["ds_video"], *controls],
            "open_dataset_video",
        )
    opens(
        c["expression"].input,
        cb.cases.select_expression,
        [c["session"], c["expression"], *controls, c["frame"]],
        "select_expression",
    )
    opens(
        c["rank_table"].select,
        cb.ranks.open_ranked,
        [c["session"], *controls],
        "open_ranked",
        **private,
    )

    begin = _handler(cb.runs.begin, c)
    c["run"].click(begin, [c["session"]], outs(("session", "status")), queue=False, **private).then(
        _handler(cb.runs.run, c),
        [c["session"], c["expression"], *controls, c["area_ratio"], c["vote"], c["frame"]],
        view_out,
        api_name="run",
        show_progress_on=progress_on,
        **run_group,
    ).success(videos, [c["session"]], video_out, api_name="videos")
    c["stop"].click(
        _handler(cb.runs.stop, c), [c["session"]], [c["status"]], queue=False, api_name="stop"
    )

    for slider in (c["area_ratio"], c["vote"]):
        first = slider is c["area_ratio"]
        slider.change(
            _handler(cb.runs.refuse, c),
            [c["session"], c["area_ratio"], c["vote"], c["frame"]],
            outs(REFUSE_OUTPUTS),
            api_name="refuse" if first else "refuse_vote",
            api_visibility="public" if first else "private",
            show_progress="hidden",
            queue=False,  # a few ms of work: skip the queue's latency
        ).success(
            _handler(cb.runs.refuse_slow, c),
            [c["session"]],
            outs(REFUSE_SLOW_OUTPUTS),
            show_progress="minimal",
            **private,
        ).success(
            _handler(cb.ranks.reorder, c),
            [c["session"], c["rank_order"]],
            outs(("rank_table", "status")),
            show_progress="hidden",
            **private,
        )

    c["frame"].change(
        _handler(cb.runs.show_frame, c),
        [c["session"], c["frame"]],
        outs((*FRAME_OUTPUTS, "status")),
        api_name="show_frame",
        show_progress="hidden",
    )
    changed = outs(("status", "banner", "plot_scores", "img_stage1", "decision"))
    for name in CONTROL_NAMES:
        c[name].change(
            _handler(cb.runs.controls_changed, c),
            [c["session"], *controls, c["frame"]],
            changed,
            show_progress="hidden",
            **private,
        )
    c["device"].focus(
        _handler(cb.runs.detect_devices, c),
        [c["device"]],
        outs(("device", "status")),
        show_progress="hidden",
        **private,
    )
    c["reset"].click(
        _handler(cb.runs.reset_fusion, c),
        None,
        outs(("threshold", "area_ratio", "vote")),
        queue=False,
        **private,
    )
    c["prepare"].click(
        _handler(cb.runs.downloads, c),
        [c["session"]],
        outs(("downloads", "status")),
        api_name="downloads",
    )
    c["rank_btn"].click(
        begin, [c["session"]], outs(("session", "status")), queue=False, **private
    ).then(
        _handler(cb.ranks.rank, c),
        [
            c["session"],
            c["rank_set"],
            c["rank_order"],
            c["rank_limit"],
            *controls,
            c["area_ratio"],
            c["vote"],
        ],
        outs(("session", "rank_table", "rank_note", "sam2_runs", "status")),
        api_name="rank",
        **rank_group,
    )
    c["rank_order"].change(
        _handler(cb.ranks.reorder, c),
        [c["session"], c["rank_order"]],
        outs(("rank_table", "status")),
        **private,
    )
