"""A cap on the body of one upload request, before Gradio reads any of it.

Gradio 6 checks the size of each uploaded file (``max_file_size``) but lets one
``/gradio_api/upload`` request carry up to 1,000 files, each stored in its temp folder as it
arrives. :class:`UploadGuard` (an ASGI middleware, given to Gradio's FastAPI app through
``launch(app_kwargs=...)``) answers a multipart POST whose ``Content-Length`` is missing
(411) or larger than :func:`max_request_bytes` (413) with a short plain-text message and
never calls the app, so nothing is stored. The bound is on the declared length; the server
(h11) reads no more body than it declares.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from refine.limits import UploadLimits, format_bytes

FILES_PER_REQUEST = 4  # the app's file inputs: video, stage-1, ground truth, sentences
MULTIPART_OVERHEAD = 64 * 1024  # part headers and boundaries of that many files

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def max_request_bytes(limits: UploadLimits) -> int:
    """The largest body one multipart request may declare: every file input at the
    per-file limit, plus the multipart framing."""
    return FILES_PER_REQUEST * limits.max_upload_bytes + MULTIPART_OVERHEAD


class UploadGuard:
    """ASGI middleware: refuses multipart POSTs without a ``Content-Length`` or with one
    over ``max_bytes``; every other request passes through untouched."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        refusal = self.refusal(scope) if scope["type"] == "http" else None
        if refusal is None:
            await self.app(scope, receive, send)
            return
        status, message = refusal
        body = message.encode()
        headers = [
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),  # the unread body must not be taken as a request
        ]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    def refusal(self, scope: Scope) -> tuple[int, str] | None:
        """(status, message) when the request must be refused, else None."""
        if scope.get("method") != "POST":
            return None
        headers = dict(scope.get("headers") or ())
        if not headers.get(b"content-type", b"").lower().startswith(b"multipart/form-data"):
            return None
        declared = headers.get(b"content-length")
        if declared is None:
            return (
                411,
                "Upload refused: the request has no Content-Length; send the file(s) with one.",
            )
        if not declared.isdigit():
            return 400, "Upload refused: the request's Content-Length is not a number of bytes."
        if int(declared) > self.max_bytes:
            return 413, (
                f"Upload refused: the request carries {format_bytes(int(declared))}, more than "
                f"{format_bytes(self.max_bytes)} ({FILES_PER_REQUEST} files at the per-file "
                "limit); upload fewer or smaller files at a time."
            )
        return None
