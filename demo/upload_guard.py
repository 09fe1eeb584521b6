"""A cap on what one upload request may carry, before Gradio stores any of it.

Gradio 6 checks the size of each uploaded file (``max_file_size``) but lets one
``/gradio_api/upload`` request carry up to 1,000 files, each stored in its temp folder as it
arrives. :class:`UploadGuard` (an ASGI middleware, given to Gradio's FastAPI app through
``launch(app_kwargs=...)``) refuses a multipart POST

* without a ``Content-Length`` (411) or with one over :func:`max_request_bytes` (413), before
  the app is called (the server, h11, reads no more body than is declared);
* with more than :data:`FILES_PER_REQUEST` parts (413), as soon as the body read so far has
  that many: the app's read of the body fails and the guard answers instead.

The answers are short plain-text messages; every other request passes through untouched.
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


TOO_MANY_PARTS = (
    f"Upload refused: the request carries more than {FILES_PER_REQUEST} files; upload fewer "
    "files at a time."
)


class TooManyParts(Exception):
    """A multipart body has more parts than allowed (raised while the app reads it)."""


class PartCounter:
    """Counts the parts of a multipart body fed in chunks; raises :class:`TooManyParts`
    once there are more than ``max_parts`` (a delimiter split across chunks counts once)."""

    def __init__(self, delimiter: bytes, max_parts: int) -> None:
        self.delimiter = delimiter
        self.max_parts = max_parts
        self.seen = 0  # delimiters: one per part, plus the closing one
        self.tail = b""

    def feed(self, chunk: bytes) -> None:
        data = self.tail + chunk
        self.seen += data.count(self.delimiter)
        keep = len(self.delimiter) - 1  # a delimiter cut by the chunk's end
        self.tail = data[-keep:] if keep else b""
        if self.seen > self.max_parts + 1:
            raise TooManyParts


def _delimiter(scope: Scope) -> bytes | None:
    """``--boundary`` of a multipart POST, else None."""
    if scope.get("method") != "POST":
        return None
    content_type = dict(scope.get("headers") or ()).get(b"content-type", b"")
    if not content_type.lower().startswith(b"multipart/form-data"):
        return None
    for param in content_type.split(b";")[1:]:
        key, _, value = param.strip().partition(b"=")
        if key.lower() == b"boundary" and value.strip(b'"'):
            return b"--" + value.strip(b'"')
    return None


async def _answer(send: Send, status: int, message: str) -> None:
    """A plain-text response that closes the connection (its unread body must not be
    taken as the next request)."""
    body = message.encode()
    headers = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def max_request_bytes(limits: UploadLimits) -> int:
    """The largest body one multipart request may declare: every file input at the
    per-file limit, plus the multipart framing."""
    return FILES_PER_REQUEST * limits.max_upload_bytes + MULTIPART_OVERHEAD


class UploadGuard:
    """ASGI middleware: refuses multipart POSTs without a ``Content-Length``, with one over
    ``max_bytes`` or with more than :data:`FILES_PER_REQUEST` parts; every other request
    passes through untouched."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        refusal = self.refusal(scope) if scope["type"] == "http" else None
        if refusal is not None:
            await _answer(send, *refusal)
            return
        delimiter = _delimiter(scope) if scope["type"] == "http" else None
        if delimiter is None:
            await self.app(scope, receive, send)
            return
        counter = PartCounter(delimiter, FILES_PER_REQUEST)
        started = False

        async def counted() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                counter.feed(message.get("body", b""))
            return message

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, tracked)
        except TooManyParts:
            if started:
                raise
            await _answer(send, 413, TOO_MANY_PARTS)

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
