"""Text and tables the app shows: decisions, status lines, metrics and rankings (pure)."""

from __future__ import annotations

from fractions import Fraction

from refine.fusion import FusionDecision
from refine.inspect import Case, CaseRun, RankRow, RunSettings, branch, jf
from refine.overlay import STAGE_LABELS

RANDOM_BANNER = (
    "### ⚠️ RANDOM WEIGHTS — SAM2 is untrained: its masks are MEANINGLESS.\n"
    "Use this only to try the software. Pick **SAM2.1 checkpoint** under *Model and selection settings* for real results."
)
FAKE_BANNER = (
    "### ⚠️ FAKE SAM2 (test mode) — no SAM2 runs: each object's mask is its stage-1 prompt "
    "copied to every frame.\nStarted with --fake-sam2, for testing the interface only."
)
METRIC_HEADERS = ["stage", "J (%)", "F (%)", "J&F (%)"]
RANK_HEADERS = [
    "#",
    "video",
    "exp",
    "sentence",
    "stage-1 J&F",
    "SAM2 J&F",
    "fused J&F",
    "Δ vs stage 1",
    "fusion",
    "Δ vs other memory",
]
BRANCH_NAMES = {"union": "union of SAM2 and stage 1", "sam2": "SAM2 only"}
NO_CASE = "No case open yet: pick an example, a data-set video, or upload one."


def plural(n: int, word: str) -> str:
    """ "1 expression", "3 expressions"."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def frac(value: Fraction | float) -> str:
    """2/3 for fractions, 0.275 for floats."""
    return str(value) if isinstance(value, Fraction) else f"{value:g}"


def case_info(case: Case, exp_id: str | None) -> str:
    h, w = case.frames.height, case.frames.width
    gt = "yes" if case.gt is not None else "no"
    lines = [
        f"**{case.video}** · {case.num_frames} frames · {w}×{h} · "
        f"{plural(len(case.exp_ids), 'expression')} · ground truth: {gt} · source: {case.source}"
    ]
    if exp_id is not None:
        sentence = case.sentence(exp_id) or "(no sentence given)"
        lines.append(f"Expression **{exp_id}**: “{sentence}”")
    return "\n\n".join(lines)


def expression_choices(case: Case) -> list[tuple[str, str]]:
    """Dropdown choices: (label "exp_id: sentence", exp_id)."""
    out = []
    for exp_id in case.exp_ids:
        sentence = case.sentence(exp_id)
        label = f"{exp_id}: {sentence}" if sentence else exp_id
        out.append((label if len(label) <= 90 else label[:87] + "…", exp_id))
    return out


def decision_text(run: CaseRun | None, decision: FusionDecision | None, threshold: float) -> str:
    """The fusion decision in words, with its numbers (or why there is none yet)."""
    if run is None or decision is None:
        return (
            "SAM2 has not run for this expression yet: press **Run**. The stage-1 overlay "
            f"shows the queries kept at θ = {threshold:g}."
        )
    r = run.result
    if len(r.kept) == 0:
        return (
            f"No query passed θ = {run.settings.threshold:g}: the output is empty on every "
            "frame (SAM2 was not run)."
        )
    kept = ", ".join(
        f"q{q} (prompt frame {f})" for q, f in zip(r.kept, r.prompt_frames, strict=True)
    )
    d = decision
    cmp = ">" if branch(d) == "union" else "≤"
    return (
        f"**Fusion: {BRANCH_NAMES[branch(d)]}.** SAM2's box is under ρ = {frac(d.area_ratio)} "
        f"× stage 1's on {d.shrunk} of {plural(d.valid, 'comparable frame')} {cmp} "
        f"v = {frac(d.vote)}.\n\nKept queries: {kept} · θ = {run.settings.threshold:g} · "
        f"{run.settings.prompt} prompts"
        + (" · ⚠️ random weights" if run.settings.spec.random_weights else "")
    )


def stale_notes(run: CaseRun | None, controls: RunSettings, device_auto: bool) -> list[str]:
    """What differs between the masks shown and the controls (SAM2 must run again)."""
    if run is None:
        return []
    shown = run.settings
    notes = []
    if shown.threshold != controls.threshold:
        notes.append(f"θ is {controls.threshold:g} but the masks shown used {shown.threshold:g}")
    if shown.prompt != controls.prompt:
        notes.append(f"prompt is {controls.prompt} but the masks shown used {shown.prompt}")
    if shown.memory != controls.memory:
        notes.append(
            f"tracking memory is {controls.memory.mode} but the masks shown used "
            f"{shown.memory.mode}"
        )
    s, c = shown.spec, controls.spec
    if s.size != c.size:
        notes.append(f"SAM2 size is {c.size} but the masks shown used {s.size}")
    if s.random_weights != c.random_weights:
        notes.append(
            "weights are "
            + ("random" if c.random_weights else "the checkpoint")
            + " but the masks shown used "
            + ("random weights" if s.random_weights else "the checkpoint")
        )
    if not device_auto and s.device != c.device:
        notes.append(f"device is {c.device} but the masks shown ran on {s.device}")
    return notes


def metrics_note(case: Case | None, run: CaseRun | None, scores: dict | None) -> str:
    """What the metrics table shows, or why it is empty."""
    if case is not None and case.gt is None:
        return "No ground truth for this case: J and F cannot be computed."
    if scores is None:
        return (
            "J and F appear after SAM2 runs."
            if run is None
            else "No ground truth for this expression."
        )
    return "J, F and J&F in % against the ground truth (fused: under the current ρ, v)."


def status_text(notes: list[str], extra: str | None = None) -> str:
    parts = []
    if notes:
        parts.append("**SAM2 must run again** (press Run): " + "; ".join(notes) + ".")
    if extra:
        parts.append(extra)
    return "\n\n".join(parts)


def runs_text(count: int) -> str:
    return f"SAM2 runs this session: {count}"


def metrics_rows(scores: dict | None) -> list[list]:
    """Rows [stage, J %, F %, J&F %] for each stage; empty without scores."""
    if not scores:
        return []
    rows = []
    for stage in ("stage1", "sam2", "fused"):
        s = scores[stage]
        rows.append([STAGE_LABELS[stage], _pct(s.J), _pct(s.F), _pct(jf(s))])
    return rows


def rank_table(ranked: list[tuple[RankRow, FusionDecision]]) -> list[list]:
    rows = []
    for i, (row, d) in enumerate(ranked, start=1):
        change = row.memory_change(d.area_ratio, d.vote)
        s1 = jf(row.scores["stage1"])
        fused = jf(row.fused_score(d))
        rows.append(
            [
                i,
                row.video,
                row.exp_id,
                row.sentence,
                _pct(s1),
                _pct(jf(row.scores["sam2"])),
                _pct(fused),
                _pct(fused - s1),
                "union" if branch(d) == "union" else "SAM2",
                None if change is None else _pct(change),
            ]
        )
    return rows


def _pct(x: float) -> float:
    return round(100 * x, 1)
