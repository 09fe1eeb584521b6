"""The one-line faults planted by ``scripts/mutation_check.py``.

Each mutant names its file, one exact snippet (it must occur once), its replacement, the
fault in words, and the tests run against it (empty: :data:`TESTS`). ``equivalent`` says why
a mutant that survives changes no observable behaviour (empty for a real fault).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Mutant:
    path: str
    old: str
    new: str
    what: str
    tests: tuple[str, ...] = ()
    equivalent: str = ""


SEL = ("tests/test_selection.py", "tests/test_pipeline.py")
PROMPTS = ("tests/test_prompts.py", "tests/test_pipeline.py")
METRICS = ("tests/test_metrics.py",)
PNG = ("tests/test_fast_rules.py", "tests/test_mask_reading.py")
FUSION = ("tests/test_fusion.py", "tests/test_pipeline.py", "tests/test_streaming.py")
UPSAMPLE = ("tests/test_fast_rules.py", "tests/test_streaming.py")
ORDER = ("tests/test_fast_rules.py",)
PRUNING = (
    "tests/test_sam2_reference.py::test_pruned_states_match_plain_sam2_on_a_clip_longer_than_the_window",
)
TESTS = (*SEL, *FUSION, *METRICS)

MUTANTS: list[Mutant] = [
    # selection (design §2 step 2) and prompt frames (step 4)
    Mutant(
        "refine/selection.py",
        "valid = (scores > thr)",
        "valid = (scores >= thr)",
        "confident frames: > θ becomes ≥ θ",
        SEL,
    ),
    Mutant(
        "refine/selection.py",
        "(valid.sum(0) + scores.dtype.type(1e-6))",
        "(valid.sum(0) + scores.dtype.type(1e-3))",
        "average's epsilon 1e-6 → 1e-3",
        SEL,
    ),
    Mutant(
        "refine/selection.py",
        "return np.flatnonzero(avg > scores.dtype.type(threshold))",
        "return np.flatnonzero(avg >= scores.dtype.type(threshold))",
        "kept when average ≥ θ instead of > θ",
        SEL,
    ),
    Mutant(
        "refine/selection.py",
        "np.argmax(np.asarray(scores)[:, kept], axis=0)",
        "(len(scores) - 1 - np.argmax(np.asarray(scores)[::-1, kept], axis=0))",
        "prompt frame: last maximum instead of the first",
        SEL,
    ),
    Mutant(
        "refine/selection.py",
        "DEFAULT_THRESHOLD = 0.275",
        "DEFAULT_THRESHOLD = 0.3",
        "default θ changed",
        SEL,
    ),
    # prompts (step 4)
    Mutant(
        "refine/prompts.py",
        "half = np.float32(0.5)",
        "half = np.float32(1.0)",
        "box from (cx, cy, w, h): half width becomes full width",
        PROMPTS,
    ),
    Mutant(
        "refine/prompts.py",
        "cx, cy = b[..., 0] * np.float32(width), b[..., 1] * np.float32(height)",
        "cx, cy = b[..., 0] * np.float32(height), b[..., 1] * np.float32(width)",
        "box centre scaled by the swapped frame size",
        PROMPTS,
    ),
    Mutant(
        "refine/prompts.py",
        "return yx[idx, ::-1].astype(np.float32)",
        "return yx[idx].astype(np.float32)",
        "points as (y, x) instead of (x, y)",
        PROMPTS,
    ),
    Mutant(
        "refine/prompts.py",
        "DEFAULT_NUM_POINTS = 20",
        "DEFAULT_NUM_POINTS = 10",
        "20 points → 10",
        PROMPTS,
    ),
    # metrics (design §4)
    Mutant(
        "refine/metrics.py",
        "BOUND_TH = 0.008",
        "BOUND_TH = 0.01",
        "boundary tolerance 0.008 → 0.01",
        METRICS,
    ),
    Mutant(
        "refine/metrics.py",
        "return float(np.ceil(bound_th * np.linalg.norm(shape)))",
        "return float(np.floor(bound_th * np.linalg.norm(shape)))",
        "tolerance rounded down instead of up",
        METRICS,
    ),
    Mutant(
        "refine/metrics.py",
        "out=np.ones(np.shape(union), dtype=np.float64)",
        "out=np.zeros(np.shape(union), dtype=np.float64)",
        "J of two empty masks 1 → 0",
        METRICS,
    ),
    Mutant(
        "refine/metrics.py",
        "precision = np.where(n_fg > 0, fg_match / n_fg.astype(np.float64), 1.0)",
        "precision = np.where(n_fg > 0, fg_match / n_fg.astype(np.float64), 0.0)",
        "precision of an empty boundary 1 → 0",
        METRICS,
    ),
    Mutant(
        "refine/metrics.py",
        "    b[..., -1, -1] = False",
        "    b[..., -1, -1] = True",
        "seg2bmap: the bottom-right pixel becomes a boundary pixel",
        METRICS,
    ),
    Mutant(
        "refine/metrics.py",
        "    jf = (j + f) / 2",
        "    jf = (j * f) ** 0.5",
        "J&F as a geometric mean",
        METRICS,
    ),
    # PNG output (step 7)
    Mutant(
        "refine/mask_io.py",
        "np.where(mask, np.uint8(255), np.uint8(0))",
        "np.where(mask, np.uint8(1), np.uint8(0))",
        "PNG foreground value 255 → 1",
        PNG,
    ),
    # upsampling of stage-1 logits (step 3)
    Mutant(
        "refine/upsample.py",
        'mode="bilinear", align_corners=False',
        'mode="nearest"',
        "nearest instead of bilinear upsampling",
        UPSAMPLE,
    ),
    Mutant(
        "refine/upsample.py",
        'mode="bilinear", align_corners=False',
        'mode="bilinear", align_corners=True',
        "align_corners=True",
        UPSAMPLE,
    ),
    Mutant(
        "refine/upsample.py",
        "out[s : s + step] = (y > 0).numpy()",
        "out[s : s + step] = (y >= 0).numpy()",
        "stage-1 foreground at logit ≥ 0",
        UPSAMPLE,
    ),
    # propagation order, logit threshold, pruning window (step 5)
    Mutant(
        "refine/propagation.py",
        "return (logits[:, 0] > 0).cpu().numpy()",
        "return (logits[:, 0] >= 0).cpu().numpy()",
        "SAM2 foreground at logit ≥ 0",
        ORDER,
    ),
    Mutant(
        "refine/propagation.py",
        "for reverse in (False, True):",
        "for reverse in (True, False):",
        "reverse pass first (forward wins)",
        ORDER,
    ),
    Mutant(
        "refine/propagation.py",
        "order = range(max(r.start for r in runs), -1, -1)",
        "order = range(max(r.start for r in runs), 0, -1)",
        "reverse pass stops before frame 0",
        ORDER,
    ),
    Mutant(
        "refine/propagation.py",
        "if (t <= r.start and r.start > 0) if reverse else t >= r.start:",
        "if (t < r.start and r.start > 0) if reverse else t >= r.start:",
        "reverse pass skips the start frame (forward wins there)",
        ORDER,
    ),
    Mutant(
        "refine/propagation.py",
        "return max(p.num_maskmem, p.max_obj_ptrs_in_encoder) + 1",
        "return max(p.num_maskmem, p.max_obj_ptrs_in_encoder) - 2",
        "pruning window 3 frames too short",
        PRUNING,
    ),
    # fusion (step 6)
    Mutant(
        "refine/fusion.py",
        "shrunk = valid & (a2 * rho.denominator < a1 * rho.numerator)",
        "shrunk = valid & (a2 * rho.denominator <= a1 * rho.numerator)",
        "shrunk at area(sam) = ρ·area(ori)",
        FUSION,
    ),
    Mutant(
        "refine/fusion.py",
        "multi = n_shrunk * v.denominator > n_valid * v.numerator",
        "multi = n_shrunk * v.denominator >= n_valid * v.numerator",
        "multi when shrunk = v·valid",
        FUSION,
    ),
    Mutant(
        "refine/fusion.py",
        "valid = (a1 > 0) & (a2 > 0)",
        "valid = (a1 > 0) | (a2 > 0)",
        "a frame is valid when either area is positive",
        FUSION,
    ),
    Mutant(
        "refine/fusion.py",
        "(rmax - rmin) * (cmax - cmin), 0)",
        "(rmax - rmin + 1) * (cmax - cmin + 1), 0)",
        "box area with +1",
        FUSION,
    ),
    Mutant(
        "refine/fusion.py",
        "DEFAULT_AREA_RATIO = Fraction(2, 3)",
        "DEFAULT_AREA_RATIO = Fraction(3, 4)",
        "default ρ 2/3 → 3/4",
        FUSION,
    ),
    Mutant(
        "refine/fusion.py",
        "DEFAULT_VOTE = Fraction(1, 2)",
        "DEFAULT_VOTE = Fraction(1, 3)",
        "default v 1/2 → 1/3",
        FUSION,
    ),
    Mutant(
        "refine/fusion.py",
        "    return sam2 | stage1",
        "    return sam2 & stage1",
        "union branch as an intersection",
        FUSION,
    ),
    Mutant(
        "refine/fusion.py",
        "return union_branch(stage1, sam2) if decision.multi else sam2.copy()",
        "return union_branch(stage1, sam2) if not decision.multi else sam2.copy()",
        "branches swapped",
        FUSION,
    ),
]
