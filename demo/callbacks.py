"""The app's handlers, grouped per part of the page. Each handler takes the session
(``None`` before the first event) and component values (the run settings as one
:class:`~demo.controls.Controls`), and returns ``{component name: value or gr.update}``;
the layout (:mod:`demo.ui`) maps names to components. Every failure becomes a message in
the status area (see :func:`demo.context.user_errors`); the server keeps serving.
"""

from __future__ import annotations

import gradio as gr

from demo.case_handlers import CaseHandlers
from demo.config import AppConfig
from demo.context import AppContext
from demo.rank_handlers import RankHandlers
from demo.run_handlers import RunHandlers


class Callbacks:
    """All handlers of one app: ``cases``, ``runs`` and ``ranks``, sharing one context."""

    def __init__(self, config: AppConfig) -> None:
        self.ctx = AppContext(config)
        self.cases = CaseHandlers(self.ctx)
        self.runs = RunHandlers(self.ctx)
        self.ranks = RankHandlers(self.ctx, self.cases, self.runs)

    @property
    def sessions(self):
        return self.ctx.sessions

    def end_session(self, request: gr.Request) -> None:
        """The browser tab closed (Gradio's unload event): delete the session's files."""
        if request.session_hash is not None:
            self.ctx.sessions.end(request.session_hash)

    def close(self) -> None:
        """App shutdown: close all sessions and delete their folders."""
        self.ctx.close()
