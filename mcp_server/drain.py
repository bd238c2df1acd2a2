"""A graceful stop for the HTTP transports: requests in flight finish, then event streams end.

Clients keep an event stream open that never ends by itself (``GET /sse`` of the legacy
transport; ``GET /mcp`` for a Streamable HTTP session's server messages). uvicorn, told to
stop, waits for every response, so it would wait for those streams until its own deadline and
then cancel them with an error in the log. sse-starlette (3.x, under the MCP SDK) ends its
streams when ``AppStatus.should_exit`` is set, as uvicorn's own signal handler would do;
``omni mcp`` owns its signals (``QuietSignalsServer``), so :meth:`Drain.run` sets it, once
the MCP requests in flight are done: a tool call's result may still be on its way over such a
stream. sse-starlette then returns without the response's last (empty) body message, which
uvicorn reports as an error; :meth:`Drain.wrap` sends it instead, during a stop only.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import anyio

if TYPE_CHECKING:
    from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger(__name__)

DRAIN_S = 2  # seconds for the requests in flight at a stop
SETTLE_S = 0.1  # for a result handed back by its request to be written to its stream


class Drain:
    """Counts the MCP requests being handled (as server middleware); stops after them."""

    def __init__(self) -> None:
        self.in_flight = 0
        self.stopping = False
        self._idle = anyio.Event()
        self._idle.set()

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        if ctx.request_id is None:  # a notification: nobody waits for it
            return await call_next(ctx)
        self.in_flight += 1
        self._idle = anyio.Event()
        try:
            return await call_next(ctx)
        finally:
            self.in_flight -= 1
            if not self.in_flight:
                self._idle.set()

    async def run(self) -> None:
        """Wait for the requests in flight (``DRAIN_S`` at most), then end the event streams."""
        self.stopping = True
        with anyio.move_on_after(DRAIN_S) as drain:
            while self.in_flight:
                await self._idle.wait()
        if drain.cancelled_caught:
            log.warning("%d requests still running after %d s; stopping them", self.in_flight, DRAIN_S)
        await anyio.sleep(SETTLE_S)
        from sse_starlette.sse import AppStatus

        AppStatus.should_exit = True  # process-wide, never reset: set as the process ends

    def wrap(self, app: ASGIApp) -> ASGIApp:
        """``app``, with a response left unfinished during a stop finished properly."""

        async def finishing(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            started = ended = False

            async def tracked(message: Message) -> None:
                nonlocal started, ended
                started = started or message["type"] == "http.response.start"
                ended = ended or (message["type"] == "http.response.body" and not message.get("more_body"))
                await send(message)

            await app(scope, receive, tracked)
            if self.stopping and started and not ended:
                await send({"type": "http.response.body", "body": b"", "more_body": False})

        return finishing
