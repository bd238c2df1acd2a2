"""A fake of the three web search APIs ``web_search`` speaks, on one Starlette app.

    fake = FakeSearch(key="test-key")
    async with serve(fake.app) as base:
        settings = make_settings(brave_api_key="test-key", brave_api_url=base + BRAVE_PATH, ...)

- SearXNG: ``GET /searxng/search?q=..&format=json`` answers ``{"query", "results": [{title, url,
  content}]}`` (20, one page of a real instance). Any other ``format``, or any request at all
  with ``searxng_json = False``, gets 403, as from an instance whose settings.yml does not list
  it in ``search.formats`` (the default lists only html).
- Brave: ``GET /brave/res/v1/web/search?q=..&count=N`` needs ``X-Subscription-Token: <key>``,
  else 422 ``SUBSCRIPTION_TOKEN_INVALID`` (what Brave answers), whose detail repeats the token
  it got; results in ``web.results[]`` with ``description`` marked up as Brave does
  (``<strong>``, entities).
- Tavily: ``POST /tavily/search`` with JSON ``{"query", "max_results"}`` needs ``Authorization:
  Bearer <key>``, else 401 ``{"detail": {"error": ...}}``; ``results[]`` with long ``content``.

``fail(*answers)`` queues answers given before the normal one: an HTTP status (a provider-style
JSON error body), ``"html"`` (200 with an HTML page) or ``"slow"`` (answers after ``slow_s``).
Every request is kept in ``requests`` (method, path, headers, query parameters, JSON body).
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

SEARXNG_PATH = "/searxng"
BRAVE_PATH = "/brave/res/v1/web/search"
TAVILY_PATH = "/tavily/search"
PAGE_SIZE = 20  # a SearXNG page, and the most Brave returns at once
SNIPPET = "word " * 200  # 1,000 characters: longer than any snippet web_search shows


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    params: dict[str, str]
    body: Any = None


@dataclass
class FakeSearch:
    key: str = "test-key"
    slow_s: float = 2.0
    searxng_json: bool = True
    requests: list[Seen] = field(default_factory=list)
    _queued: deque[int | str] = field(default_factory=deque)

    def fail(self, *answers: int | str) -> None:
        self._queued.extend(answers)

    @property
    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route(f"{SEARXNG_PATH}/search", self._searxng),
                Route(BRAVE_PATH, self._brave),
                Route(TAVILY_PATH, self._tavily, methods=["POST"]),
            ]
        )

    async def _record(self, request: Request) -> Seen:
        body = json.loads(await request.body() or b"null")
        seen = Seen(request.method, request.url.path, dict(request.headers), dict(request.query_params), body)
        self.requests.append(seen)
        return seen

    async def _scripted(self, provider: str) -> Response | None:
        if not self._queued:
            return None
        answer = self._queued.popleft()
        if answer == "html":
            return HTMLResponse("<html><body>Just a moment...</body></html>")
        if answer == "slow":
            await asyncio.sleep(self.slow_s)
            return None
        assert isinstance(answer, int)
        if provider == "brave":
            error = {"status": answer, "code": "SCRIPTED", "detail": f"scripted {answer}"}
            return JSONResponse({"type": "ErrorResponse", "error": error}, status_code=answer)
        return JSONResponse({"detail": {"error": f"scripted {answer}"}}, status_code=answer)

    async def _searxng(self, request: Request) -> Response:
        seen = await self._record(request)
        if seen.params.get("format") != "json" or not self.searxng_json:
            return HTMLResponse("<h1>403 Forbidden</h1>", status_code=403)
        scripted = await self._scripted("searxng")
        if scripted is not None:
            return scripted
        query = seen.params.get("q", "")
        results = [_result(query, i, content=SNIPPET) for i in range(1, PAGE_SIZE + 1)]
        return JSONResponse({"query": query, "number_of_results": 1000, "results": results})

    async def _brave(self, request: Request) -> Response:
        seen = await self._record(request)
        token = request.headers.get("x-subscription-token", "")
        if token != self.key:
            detail = f"The provided subscription token {token} is invalid."
            error = {"status": 422, "code": "SUBSCRIPTION_TOKEN_INVALID", "detail": detail}
            return JSONResponse({"type": "ErrorResponse", "error": error}, status_code=422)
        scripted = await self._scripted("brave")
        if scripted is not None:
            return scripted
        query = seen.params.get("q", "")
        count = min(int(seen.params.get("count", PAGE_SIZE)), PAGE_SIZE)
        description = f"All about <strong>{query}</strong> &amp; more"
        results = [_result(query, i, description=description) for i in range(1, count + 1)]
        return JSONResponse({"type": "search", "web": {"type": "search", "results": results}})

    async def _tavily(self, request: Request) -> Response:
        seen = await self._record(request)
        if request.headers.get("authorization") != f"Bearer {self.key}":
            return JSONResponse({"detail": {"error": "Unauthorized: missing or invalid API key."}}, 401)
        scripted = await self._scripted("tavily")
        if scripted is not None:
            return scripted
        query = str(seen.body.get("query", ""))
        count = int(seen.body.get("max_results", 5))
        results = [_result(query, i, content=SNIPPET, score=0.9) for i in range(1, count + 1)]
        return JSONResponse({"query": query, "answer": None, "results": results, "response_time": 0.1})


def _result(query: str, number: int, **fields: Any) -> dict[str, Any]:
    return {"title": f"Result {number} for {query}", "url": f"https://example.org/{number}", **fields}
