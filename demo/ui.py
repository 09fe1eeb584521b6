"""The app's layout and event wiring (Gradio Blocks). No torch work happens here: the
page opens without importing torch; SAM2 is loaded by the first Run.

Layout: the controls a person uses while looking at results (case picker, expression,
Run/Stop, status and progress, ρ and v) sit in a narrow left column; the three overlays
with the frame slider and the fusion decision fill the right, so that at 1366×768 all of
them are in view together. Model settings and θ are in a closed accordion; videos,
diagnostics, downloads and the failure cases are tabs below the overlays.
"""

from __future__ import annotations

import gradio as gr
from starlette.middleware import Middleware

from demo.cached_image import serve_arrays_atomically
from demo.callbacks import Callbacks
from demo.config import AppConfig
from demo.controls import (
    DEVICE_AUTO,
    WEIGHT_CHOICES,
    WEIGHTS_CHECKPOINT,
    WEIGHTS_RANDOM,
    Controls,
)
from demo.rank_handlers import RANK_ORDER_CHOICES
from demo.upload_guard import UploadGuard, max_request_bytes
from demo.views import (
    FAKE_BANNER,
    METRIC_HEADERS,
    NO_CASE,
    RANDOM_BANNER,
    RANK_HEADERS,
    frac,
    runs_text,
)
from demo.wiring import wire
from refine.fusion import DEFAULT_AREA_RATIO, DEFAULT_VOTE
from refine.models import MODEL_SIZES
from refine.overlay import STAGE_LABELS
from refine.prompts import PROMPT_KINDS
from refine.selection import DEFAULT_THRESHOLD

TITLE = "refine · SAM2 enhancement + conditional fusion"
CSS = """
#random-banner { background: #fde2e1; border: 2px solid #d9453a; border-radius: 8px; padding: 0 10px; }
#random-banner h3, #random-banner p { color: #a11d12; margin: 2px 0; font-size: 0.9em; }
#title h2 { margin: 0; }
#sam2-runs { font-weight: 600; font-size: 0.85em; }
#status { min-height: 2.6em; }
.overlay img { width: 100%; height: 100%; object-fit: contain; }
#rank-table { overflow-x: auto; }
"""
INTRO = """Pick a case (an example, an upload, or a data-set video), press **Run** to prompt SAM2
with the confident stage-1 queries, then compare **stage 1**, **SAM2-enhanced** and **fused**
masks. Moving **ρ** or **v** re-fuses instantly from the cached SAM2 masks; changing **θ**, the
prompt kind or the model needs a new SAM2 run.

Uploads: a video (mp4/webm/mov) or a zip of JPEG/PNG frames; stage-1 results as a safe
`.npz` or a zip of PNG masks `<exp_id>/<frame>.png` (with an optional
`meta_expressions.json` inside it, or as its own upload, for the sentences); optional
ground truth as a zip of PNG masks `<exp_id>/<frame>.png`."""

SESSION_TTL_S = 3 * 3600  # a session's state is dropped this long after its last event
CACHE_SWEEP_S = 3600  # how often Gradio sweeps its copies of uploads and outputs
OVERLAY_HEIGHT = 260


def launch_kwargs(config: AppConfig | None = None) -> dict:
    """Arguments of ``Blocks.launch`` that the app needs: the CSS (Gradio 6 takes it at
    launch), the upload limit, so that Gradio refuses larger files before storing them, and
    :class:`UploadGuard`, which refuses an upload request larger than the app's file inputs
    at that limit before Gradio reads it."""
    limits = (config or AppConfig()).limits
    guard = Middleware(UploadGuard, max_bytes=max_request_bytes(limits))
    return {
        "css": CSS,
        "max_file_size": limits.max_upload_bytes,
        "app_kwargs": {"middleware": [guard]},
    }


def build_app(config: AppConfig) -> tuple[gr.Blocks, Callbacks]:
    """The Blocks app and its callbacks object."""
    cb = Callbacks(config)
    c: dict[str, gr.components.Component] = {}

    # delete_cache: Gradio's own copies of uploads and outputs older than a session's life
    # go every hour, and all of them at shutdown
    blocks = gr.Blocks(
        title=TITLE, analytics_enabled=False, delete_cache=(CACHE_SWEEP_S, SESSION_TTL_S)
    )
    with blocks as demo:
        c["session"] = gr.State(
            None, time_to_live=SESSION_TTL_S, delete_callback=cb.sessions.discard
        )
        with gr.Row(equal_height=True):
            gr.Markdown(f"## {TITLE}", elem_id="title")
            c["banner"] = gr.Markdown(
                FAKE_BANNER if config.fake_sam2 else RANDOM_BANNER,
                visible=config.random_weights or config.fake_sam2,
                label="warning",
                elem_id="random-banner",
            )
        with gr.Row(equal_height=False):
            with gr.Column(scale=1, min_width=300):
                _case_inputs(c, cb, config)
                _run_controls(c)
                _settings(c, config)
            with gr.Column(scale=3):
                _outputs(c, cb)
        wire(c, cb, config)
        demo.unload(cb.end_session)  # a closed tab: its session's files go at once
    demo.queue(default_concurrency_limit=4, max_size=64)
    return demo, cb


def _case_inputs(c: dict, cb: Callbacks, config: AppConfig) -> None:
    with gr.Tabs():
        with gr.Tab("Examples", id="tab-examples"):
            c["example"] = gr.Dropdown(
                cb.cases.example_choices(),
                value=None,
                label="Bundled example (video · sentence)",
                elem_id="example",
            )
        with gr.Tab("Upload", id="tab-upload"):
            files = (
                (
                    "up_video",
                    "Video or zip of frames",
                    [".mp4", ".webm", ".mov", ".m4v", ".mkv", ".avi", ".zip"],
                ),
                ("up_stage1", "Stage-1 results (.npz or zip of PNG masks)", [".npz", ".zip"]),
                ("up_gt", "Ground truth (optional zip of PNG masks)", [".zip"]),
                ("up_meta", "meta_expressions.json (optional: sentences)", [".json"]),
            )
            for name, label, types in files:
                c[name] = gr.File(
                    label=label,
                    file_types=types,
                    type="filepath",
                    height=70,
                    elem_id=name.replace("_", "-"),
                )
            c["up_load"] = gr.Button("Open upload", variant="secondary", elem_id="up-load")
        if "dataset" in cb.ctx.sources:
            with gr.Tab("Data set", id="tab-dataset"):
                c["ds_video"] = gr.Dropdown(
                    choices=cb.ctx.sources["dataset"].videos(),
                    value=None,
                    label="Video of the data set",
                    filterable=True,
                    elem_id="ds-video",
                )
    c["expression"] = gr.Dropdown(
        choices=[],
        value=None,
        label="Expression (type to search the sentences)",
        interactive=True,
        filterable=True,
        elem_id="expression",
    )


def _run_controls(c: dict) -> None:
    with gr.Row():
        c["run"] = gr.Button("Run", variant="primary", elem_id="run-button", min_width=80)
        c["stop"] = gr.Button("Stop", variant="stop", elem_id="stop-button", min_width=80)
    c["status"] = gr.Markdown("", label="status", elem_id="status")
    fusion = (
        (
            "area_ratio",
            "ρ area ratio",
            DEFAULT_AREA_RATIO,
            "frame 'shrunk' when SAM2's box < ρ × stage 1's",
        ),
        ("vote", "v vote", DEFAULT_VOTE, "union when shrunk frames > v × comparable frames"),
    )
    for name, label, default, info in fusion:
        c[name] = gr.Slider(
            0.0,
            1.0,
            value=float(default),
            step=0.01,
            label=f"{label} (default {frac(default)})",
            info=f"{info} (live)",
            elem_id=name.replace("_", "-"),
        )
    c["sam2_runs"] = gr.Markdown(runs_text(0), label="SAM2 runs", elem_id="sam2-runs")


def _settings(c: dict, config: AppConfig) -> None:
    with gr.Accordion("Model and selection settings", open=False, elem_id="settings"):
        c["size"] = gr.Dropdown(
            list(MODEL_SIZES), value=config.start_size(), label="SAM2.1 size", elem_id="size"
        )
        c["device"] = gr.Dropdown(
            [DEVICE_AUTO],
            value=DEVICE_AUTO,
            label="Device",
            info="auto = first GPU, else MPS, else CPU (the list fills when opened)",
            allow_custom_value=True,
            elem_id="device",
        )
        c["weights"] = gr.Radio(
            WEIGHT_CHOICES,
            value=WEIGHTS_RANDOM if config.random_weights else WEIGHTS_CHECKPOINT,
            label="Weights",
            elem_id="weights",
        )
        c["prompt"] = gr.Radio(
            list(PROMPT_KINDS), value=Controls.prompt, label="SAM2 prompt", elem_id="prompt"
        )
        c["memory"] = gr.Radio(
            [("SAM2", "sam2"), ("SAMURAI (motion-aware)", "samurai")],
            value=Controls.memory,
            label="Tracking memory",
            info="SAMURAI: Kalman-filter mask choice and memory selection; needs a new run",
            elem_id="memory",
        )
        c["threshold"] = gr.Slider(
            0.0,
            0.95,
            value=DEFAULT_THRESHOLD,
            step=0.005,
            label="θ query score threshold",
            info="changing θ needs a new SAM2 run",
            elem_id="threshold",
        )
        defaults = f"{DEFAULT_THRESHOLD:g}, {frac(DEFAULT_AREA_RATIO)}, {frac(DEFAULT_VOTE)}"
        c["reset"] = gr.Button(f"Reset θ, ρ, v to {defaults}", size="sm", elem_id="reset")


def _outputs(c: dict, cb: Callbacks) -> None:
    c["case_info"] = gr.Markdown(NO_CASE, label="case", elem_id="case-info")
    with gr.Row():
        for stage, label in STAGE_LABELS.items():
            c[f"img_{stage}"] = serve_arrays_atomically(
                gr.Image(
                    label=label,
                    type="numpy",
                    format="jpeg",
                    interactive=False,
                    elem_id=f"img-{stage}",
                    elem_classes="overlay",
                    height=OVERLAY_HEIGHT,
                    buttons=[],
                )
            )
    c["frame"] = gr.Slider(0, 1, value=0, step=1, label="frame", elem_id="frame")
    c["decision"] = gr.Markdown("", label="fusion decision", elem_id="decision")
    with gr.Tabs():
        with gr.Tab("Videos", id="tab-videos"):
            with gr.Row():
                for stage, label in STAGE_LABELS.items():
                    c[f"vid_{stage}"] = gr.Video(
                        label=label, interactive=False, elem_id=f"vid-{stage}"
                    )
        with gr.Tab("Diagnostics", id="tab-diagnostics"):
            with gr.Row():
                c["plot_scores"] = gr.Plot(
                    label="query scores per frame", show_label=False, format="png"
                )
                c["plot_ratio"] = gr.Plot(
                    label="SAM2 / stage-1 box area per frame", show_label=False, format="png"
                )
            c["metrics"] = _table(METRIC_HEADERS, "J, F, J&F of each stage", "metrics")
            c["metrics_note"] = gr.Markdown("", label="metrics note")
        with gr.Tab("Downloads", id="tab-downloads"):
            c["prepare"] = gr.Button(
                "Prepare downloads (fused masks zip + 3 overlay videos)", elem_id="prepare"
            )
            c["downloads"] = gr.File(label="Downloads", file_count="multiple", interactive=False)
        with gr.Tab("Failure cases", id="tab-failures"):
            _failure_cases(c, cb)
        with gr.Tab("About", id="tab-about"):
            gr.Markdown(INTRO)


def _table(headers: list[str], label: str, elem_id: str, **kwargs) -> gr.Dataframe:
    """A read-only table, empty at first."""
    return gr.Dataframe(
        headers=headers, value=[], interactive=False, label=label, elem_id=elem_id, **kwargs
    )


def _failure_cases(c: dict, cb: Callbacks) -> None:
    gr.Markdown(
        "Runs SAM2 (current settings) on every expression with ground truth in the set and "
        "ranks them; click a row to open that case."
    )
    with gr.Row():
        c["rank_set"] = gr.Radio(
            cb.ranks.rank_sets(), value="examples", label="Set", elem_id="rank-set"
        )
        c["rank_order"] = gr.Radio(
            RANK_ORDER_CHOICES, value="fused", label="Rank by", elem_id="rank-order"
        )
        most = cb.ctx.config.work.max_rank_expressions
        c["rank_limit"] = gr.Number(
            value=min(50, most),
            precision=0,
            minimum=1,
            maximum=most,
            label="at most N expressions",
            elem_id="rank-limit",
        )
    c["rank_btn"] = gr.Button("Rank expressions", elem_id="rank-button")
    c["rank_note"] = gr.Markdown("", label="ranking note", elem_id="rank-note")
    c["rank_table"] = _table(
        RANK_HEADERS,
        "worst first",
        "rank-table",
        wrap=True,
        column_widths=["4%", "10%", "6%", "32%", "10%", "10%", "10%", "10%", "8%"],
    )
