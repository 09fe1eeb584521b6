"""The app's UI-free side: cases and uploads, cached SAM2 runs, ranking, exports and the
per-user :class:`Session` that ties them together (no Gradio import)."""

from refine.inspect.budget import Charge, MemoryBudget, ServerBusy
from refine.inspect.cases import Case, DataSource, stage1_preview
from refine.inspect.exports import FilesRemoved, SessionFiles
from refine.inspect.ranking import (
    RANK_ORDERS,
    RankRow,
    find_row,
    jf,
    rank_expressions,
    rank_rows,
    stage_scores,
)
from refine.inspect.runs import (
    DEFAULT_CACHE_BYTES,
    CaseRun,
    OutOfMemory,
    ProgressFn,
    RunCache,
    RunCancelled,
    RunMasks,
    RunSettings,
    Tracker,
    branch,
    is_out_of_memory,
)
from refine.inspect.session import MAX_CASES, STAGES, Session
from refine.inspect.uploads import case_from_upload, upload_video_name

__all__ = [
    "DEFAULT_CACHE_BYTES",
    "MAX_CASES",
    "RANK_ORDERS",
    "STAGES",
    "Case",
    "CaseRun",
    "Charge",
    "DataSource",
    "FilesRemoved",
    "MemoryBudget",
    "OutOfMemory",
    "ProgressFn",
    "RankRow",
    "RunCache",
    "RunCancelled",
    "RunMasks",
    "RunSettings",
    "ServerBusy",
    "Session",
    "SessionFiles",
    "Tracker",
    "branch",
    "case_from_upload",
    "find_row",
    "is_out_of_memory",
    "jf",
    "rank_expressions",
    "rank_rows",
    "stage1_preview",
    "stage_scores",
    "upload_video_name",
]
