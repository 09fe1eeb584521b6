"""The app's layout and event wiring (Gradio Blocks). No torch work happens here: the
page opens without importing torch; SAM2 is loaded by the first Run."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import gradio as gr

from demo.callbacks import (
    DEVICE_AUTO,
    FRAME_OUTPUTS,
    RANK_ORDER_CHOICES,
    REFUSE_OUTPUTS,
    REFUSE_SLOW_OUTPUTS,
    VIDEO_OUTPUTS,
    VIEW_OUTPUTS,
    WEIGHT_CHOICES,
    WEIGHTS_CHECKPOINT,
    WEIGHTS_RANDOM,
    Callbacks,
)
from demo.config import AppConfig
from demo.views import FAKE_BANNER, METRIC_HEADERS, RANDOM_BANNER, RANK_HEADERS, runs_text
from refine.fusion import DEFAULT_AREA_RATIO, DEFAULT_VOTE
from refine.models import MODEL_SIZES
from refine.prompts import PROMPT_KINDS
from refine.selection import DEFAULT_THRESHOLD

TITLE = "refine · SAM2 enhancement + conditional fusion"
CSS = """
#random-banner { background: #fde2e1; border: 2px solid #d9453a; border-radius: 8px; padding: 4px 12px; }
#random-banner h3 { color: #a11d12; margin: 4px 0; }
#sam2-runs { font-weight: 600; }
.overlay img { width: 100%; height: 100%; object-fit: contain; }
"""
INTRO = """# refine — SAM2 enhancement + conditional mask fusion
Pick a case (an example, an upload, or a data-set video), press **Run** to prompt SAM2 with the
confident stage-1 queries, then compare **stage 1**, **SAM2-enhanced** and **fused** masks.
Moving **ρ** or **v** re-fuses instantly from the cached SAM2 masks; changing **θ** or the
prompt kind needs a new SAM2 run."""


SESSION_TTL_S = 3 * 3600  # a session's state is dropped this long after its last event
CACHE_SWEEP_S = 3600  # how often Gradio sweeps its copies of uploads and outputs


def launch_kwargs(config: AppConfig | None = None) -> dict:
    """Arguments of ``Blocks.launch`` that the app needs: the CSS (Gradio 6 takes it at
    launch) and the upload limit, so that Gradio refuses larger files before storing them."""
    limits = (config or AppConfig()).limits
    return {"css": CSS, "max_file_size": limits.max_upload_bytes}


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
        gr.Markdown(INTRO)
        c["banner"] = gr.Markdown(
            FAKE_BANNER if config.fake_sam2 else RANDOM_BANNER,
            visible=config.random_weights or config.fake_sam2,
            label="warning",
            elem_id="random-banner",
        )
        with gr.Row(equal_height=False):
            with gr.Column(scale=1, min_width=320):
                _case_inputs(c, cb, config)
                _controls(c, config)
            with gr.Column(scale=3):
                _outputs(c, cb)
        _wire(c, cb, config)
        demo.unload(cb.end_session)  # a closed tab: its session's files go at once
    demo.queue(default_concurrency_limit=4, max_size=64)
    return demo, cb


def _case_inputs(c: dict, cb: Callbacks, config: AppConfig) -> None:
    gr.Markdown("### 1 · Case")
    with gr.Tabs():
        with gr.Tab("Examples", id="tab-examples"):
            c["ex_video"] = gr.Textbox(label="video", visible=False)
            c["ex_exp"] = gr.Textbox(label="expression", visible=False)
            c["ex_sentence"] = gr.Textbox(label="sentence", visible=False)
            rows = [[v, e, s] for v, e, s in cb.sources["examples"].expressions()]
            c["examples"] = gr.Examples(
                examples=rows,
                inputs=[c["ex_video"], c["ex_exp"], c["ex_sentence"]],
                label="Bundled examples (click one)",
                cache_examples=False,
                examples_per_page=20,
                elem_id="examples",
            )
        with gr.Tab("Upload", id="tab-upload"):
            c["up_video"] = gr.File(
                label="Video (mp4/webm/mov) or zip of JPEG/PNG frames",
                file_types=[".mp4", ".webm", ".mov", ".m4v", ".mkv", ".avi", ".zip"],
                type="filepath",
                elem_id="up-video",
            )
            c["up_stage1"] = gr.File(
                label="Stage-1 results: safe .npz, or zip of PNG masks <exp_id>/<frame>.png",
                file_types=[".npz", ".zip"],
                type="filepath",
                elem_id="up-stage1",
            )
            c["up_gt"] = gr.File(
                label="Ground truth (optional): zip of PNG masks <exp_id>/<frame>.png",
                file_types=[".zip"],
                type="filepath",
                elem_id="up-gt",
            )
            c["up_load"] = gr.Button("Open upload", variant="secondary", elem_id="up-load")
        if "dataset" in cb.sources:
            with gr.Tab("Data set", id="tab-dataset"):
                c["ds_video"] = gr.Dropdown(
                    choices=cb.sources["dataset"].videos(),
                    value=None,
                    label=f"Video of {config.mevis_root}",
                    filterable=True,
                )
    c["case_info"] = gr.Markdown(
        "No case open yet: click an example above.", label="case", elem_id="case-info"
    )
    c["expression"] = gr.Dropdown(
        choices=[],
        value=None,
        label="Expression (sentence)",
        interactive=True,
        allow_custom_value=True,
        elem_id="expression",
    )


def _controls(c: dict, config: AppConfig) -> None:
    gr.Markdown("### 2 · Settings")
    with gr.Accordion("Model", open=True):
        c["size"] = gr.Dropdown(list(MODEL_SIZES), value=config.model_size, label="SAM2.1 size")
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
        c["prompt"] = gr.Radio(list(PROMPT_KINDS), value="mask", label="SAM2 prompt")
    with gr.Accordion("Selection and fusion", open=True):
        c["threshold"] = gr.Slider(
            0.0,
            0.95,
            value=DEFAULT_THRESHOLD,
            step=0.005,
            label="θ query score threshold",
            info="changing θ needs a new SAM2 run",
            elem_id="threshold",
        )
        c["area_ratio"] = gr.Slider(
            0.0,
            1.0,
            value=float(DEFAULT_AREA_RATIO),
            step=0.01,
            label="ρ area ratio",
            info="frame 'shrunk' when SAM2 box area < ρ · stage-1 box area (live)",
            elem_id="area-ratio",
        )
        c["vote"] = gr.Slider(
            0.0,
            1.0,
            value=float(DEFAULT_VOTE),
            step=0.01,
            label="v vote",
            info="union when shrunk frames > v · comparable frames (live)",
            elem_id="vote",
        )
        c["reset"] = gr.Button("Reset θ, ρ, v to 0.275, 2/3, 1/2", size="sm")
    with gr.Row():
        c["run"] = gr.Button("Run", variant="primary", elem_id="run-button")
        c["stop"] = gr.Button("Stop", variant="stop", elem_id="stop-button")
    c["sam2_runs"] = gr.Markdown(runs_text(0), label="SAM2 runs", elem_id="sam2-runs")
    c["status"] = gr.Markdown("", label="status", elem_id="status")


def _outputs(c: dict, cb: Callbacks) -> None:
    gr.Markdown("### 3 · Results")
    with gr.Row():
        c["img_stage1"] = gr.Image(
            label="stage 1",
            type="numpy",
            format="jpeg",
            interactive=False,
            elem_id="img-stage1",
            elem_classes="overlay",
            height=300,
        )
        c["img_sam2"] = gr.Image(
            label="SAM2-enhanced",
            type="numpy",
            format="jpeg",
            interactive=False,
            elem_id="img-sam2",
            elem_classes="overlay",
            height=300,
        )
        c["img_fused"] = gr.Image(
            label="fused",
            type="numpy",
            format="jpeg",
            interactive=False,
            elem_id="img-fused",
            elem_classes="overlay",
            height=300,
        )
    c["frame"] = gr.Slider(0, 1, value=0, step=1, label="frame", elem_id="frame")
    c["decision"] = gr.Markdown("", label="fusion decision", elem_id="decision")
    with gr.Tabs():
        with gr.Tab("Videos", id="tab-videos"):
            with gr.Row():
                c["vid_stage1"] = gr.Video(label="stage 1", interactive=False, elem_id="vid-stage1")
                c["vid_sam2"] = gr.Video(
                    label="SAM2-enhanced", interactive=False, elem_id="vid-sam2"
                )
                c["vid_fused"] = gr.Video(label="fused", interactive=False, elem_id="vid-fused")
        with gr.Tab("Diagnostics", id="tab-diagnostics"):
            with gr.Row():
                c["plot_scores"] = gr.Plot(
                    label="query scores per frame", show_label=False, format="png"
                )
                c["plot_ratio"] = gr.Plot(
                    label="SAM2 / stage-1 box area per frame", show_label=False, format="png"
                )
            c["metrics"] = gr.Dataframe(
                headers=METRIC_HEADERS,
                value=[],
                interactive=False,
                label="J, F, J&F of each stage",
                elem_id="metrics",
            )
            c["metrics_note"] = gr.Markdown("", label="metrics note")
        with gr.Tab("Downloads", id="tab-downloads"):
            c["prepare"] = gr.Button("Prepare downloads (fused masks zip + 3 overlay videos)")
            c["downloads"] = gr.File(label="Downloads", file_count="multiple", interactive=False)
        with gr.Tab("Failure cases", id="tab-failures"):
            gr.Markdown(
                "Runs SAM2 (current settings) on every expression with ground truth in the set "
                "and ranks them; click a row to open that case."
            )
            with gr.Row():
                c["rank_set"] = gr.Radio(
                    cb.rank_sets(), value="examples", label="Set", elem_id="rank-set"
                )
                c["rank_order"] = gr.Radio(
                    RANK_ORDER_CHOICES, value="fused", label="Rank by", elem_id="rank-order"
                )
                c["rank_limit"] = gr.Number(
                    value=50, precision=0, minimum=1, label="at most N expressions"
                )
            c["rank_btn"] = gr.Button("Rank expressions", elem_id="rank-button")
            c["rank_note"] = gr.Markdown("", label="ranking note")
            c["rank_table"] = gr.Dataframe(
                headers=RANK_HEADERS,
                value=[],
                interactive=False,
                elem_id="rank-table",
                label="worst first",
            )


def _named(fn: Callable, c: dict) -> Callable:
    """Adapt a callback returning {name: value} to Gradio's {component: value}."""

    @functools.wraps(fn)
    def handler(*args, **kwargs):
        return {c[k]: v for k, v in fn(*args, **kwargs).items()}

    return handler


def _wire(c: dict, cb: Callbacks, config: AppConfig) -> None:
    controls = [c[k] for k in ("size", "device", "weights", "prompt", "threshold")]

    def outs(names: Sequence[str]) -> list:
        return [c[n] for n in names]

    view_out = outs(VIEW_OUTPUTS)
    overlays = outs(FRAME_OUTPUTS)  # where a view's progress shows
    video_out = outs(VIDEO_OUTPUTS)
    videos = _named(cb.videos, c)
    sam2 = {"concurrency_id": "sam2", "concurrency_limit": config.concurrency}

    c["examples"].load_input_event.then(
        _named(cb.open_example, c),
        [c["session"], c["ex_video"], c["ex_exp"], *controls],
        view_out,
        api_name="open_example",
        show_progress_on=overlays,
    ).success(
        videos, [c["session"]], video_out, api_name="videos_example", api_visibility="private"
    )

    c["up_load"].click(
        _named(cb.open_upload, c),
        [c["session"], c["up_video"], c["up_stage1"], c["up_gt"], *controls],
        view_out,
        api_name="open_upload",
        show_progress_on=overlays,
    ).success(videos, [c["session"]], video_out, api_name="videos_upload", api_visibility="private")

    if "ds_video" in c:
        c["ds_video"].input(
            _named(cb.open_dataset_video, c),
            [c["session"], c["ds_video"], *controls],
            view_out,
            api_name="open_dataset_video",
            show_progress_on=overlays,
        ).success(
            videos, [c["session"]], video_out, api_name="videos_dataset", api_visibility="private"
        )

    c["expression"].input(
        _named(cb.select_expression, c),
        [c["session"], c["expression"], *controls],
        view_out,
        api_name="select_expression",
        show_progress_on=overlays,
    ).success(videos, [c["session"]], video_out, api_name="videos_select", api_visibility="private")

    c["run"].click(
        _named(cb.begin, c), [c["session"]], [c["session"]], queue=False, api_visibility="private"
    ).then(
        _named(cb.run, c),
        [c["session"], c["expression"], *controls, c["area_ratio"], c["vote"], c["frame"]],
        view_out,
        api_name="run",
        show_progress_on=overlays,
        **sam2,
    ).success(videos, [c["session"]], video_out, api_name="videos")
    c["stop"].click(_named(cb.stop, c), [c["session"]], [c["status"]], queue=False, api_name="stop")

    refuse_out = outs(REFUSE_OUTPUTS)
    slow_out = outs(REFUSE_SLOW_OUTPUTS)
    for slider in (c["area_ratio"], c["vote"]):
        slider.change(
            _named(cb.refuse, c),
            [c["session"], c["area_ratio"], c["vote"], c["frame"]],
            refuse_out,
            api_name="refuse" if slider is c["area_ratio"] else "refuse_vote",
            api_visibility="public" if slider is c["area_ratio"] else "private",
            show_progress="hidden",
            queue=False,  # a few ms of work: skip the queue's latency
        ).success(
            _named(cb.refuse_slow, c),
            [c["session"], c["rank_order"]],
            slow_out,
            api_visibility="private",
            show_progress="minimal",
        )

    c["frame"].change(
        _named(cb.show_frame, c),
        [c["session"], c["frame"]],
        outs(FRAME_OUTPUTS),
        api_name="show_frame",
        show_progress="hidden",
    )
    changed = ["status", "banner", "plot_scores", "img_stage1", "decision"]
    for name in ("size", "device", "weights", "prompt", "threshold"):
        c[name].change(
            _named(cb.controls_changed, c),
            [c["session"], *controls, c["frame"]],
            outs(changed),
            api_visibility="private",
            show_progress="hidden",
        )
    c["device"].focus(
        _named(cb.detect_devices, c), [c["device"]], [c["device"]], api_visibility="private"
    )
    c["reset"].click(
        _named(cb.reset_fusion, c),
        None,
        outs(("threshold", "area_ratio", "vote")),
        queue=False,
        api_visibility="private",
    )
    c["prepare"].click(
        _named(cb.downloads, c), [c["session"]], [c["downloads"]], api_name="downloads"
    )
    c["rank_btn"].click(
        _named(cb.begin, c), [c["session"]], [c["session"]], queue=False, api_visibility="private"
    ).then(
        _named(cb.rank, c),
        [
            c["session"],
            c["rank_set"],
            c["rank_order"],
            c["rank_limit"],
            *controls,
            c["area_ratio"],
            c["vote"],
        ],
        outs(("session", "rank_table", "rank_note", "sam2_runs")),
        api_name="rank",
        **sam2,
    )
    c["rank_order"].change(
        _named(cb.reorder, c),
        [c["session"], c["rank_order"]],
        [c["rank_table"]],
        api_visibility="private",
    )
    c["rank_table"].select(
        _named(cb.open_ranked, c),
        [c["session"], c["rank_order"], *controls],
        view_out,
        api_visibility="private",
        show_progress_on=overlays,
    ).success(videos, [c["session"]], video_out, api_name="videos_ranked", api_visibility="private")
