"""The web search providers behind ``web_search``: one request shape, one result shape.

    SearXNG  GET  {base}/search?q=..&format=json        results[]: title, url, content
    Brave    GET  {url}?q=..&count=N  X-Subscription-Token  web.results[]: title, url, description
    Tavily   POST {url} {"query", "max_results"}  Authorization: Bearer  results[]: title, url, content

This module speaks the providers' protocols and turns every way they fail into one line for the
model; ``tools.py`` checks and pins the address first, as it does for ``fetch_url``. httpx is
imported by the caller, inside the call, so the server starts without it.
"""

import asyncio
import html
import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urljoin

from omni.settings import Settings
from skills._context import WebSearch
from skills._tool import SkillError
from skills.web.address import USER_AGENT, NonPublicAddress, check_url, pinned_request

if TYPE_CHECKING:
    import httpx

TIMEOUT_S = 15.0  # one attempt; two attempts and the wait stay well inside the tool's 60 s
RETRY_WAIT_S = 0.5
ATTEMPTS = 2
MAX_BYTES = 1024 * 1024
# Per-result caps: ten results stay near 9,000 characters, well under the agent's 16,000 cap.
TITLE_CHARS = 150
URL_CHARS = 300
SNIPPET_CHARS = 400
_TRANSIENT = frozenset({429, 500, 502, 503, 504})
NAMES = {"searxng": "SearXNG", "brave": "Brave Search", "tavily": "Tavily"}
KEY_SETTINGS = {"searxng": "OMNI_SEARXNG_URL", "brave": "OMNI_BRAVE_API_KEY", "tavily": "OMNI_TAVILY_API_KEY"}
_TAG = re.compile(r"<[^>]*>")


@dataclass(frozen=True, slots=True)
class Result:
    title: str
    url: str
    snippet: str


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    url: str
    headers: dict[str, str] = field(default_factory=dict, repr=False)  # may carry the key
    body: dict[str, Any] | None = None


def build_request(config: WebSearch, query: str, count: int) -> Request:
    """The HTTP request that asks ``config``'s provider for ``count`` results."""
    if config.provider == "searxng":
        # SearXNG has no result count: it answers one page (about 20) and we keep the first.
        base = config.url if config.url.endswith("/") else config.url + "/"
        return Request("GET", f"{urljoin(base, 'search')}?{urlencode({'q': query, 'format': 'json'})}")
    key = config.api_key or ""
    if config.provider == "brave":
        query_string = urlencode({"q": query, "count": count})
        headers = {"X-Subscription-Token": key, "Accept": "application/json"}
        return Request("GET", f"{config.url}?{query_string}", headers)
    headers = {"Authorization": f"Bearer {key}"}
    return Request("POST", config.url, headers, {"query": query, "max_results": count})


async def fetch(
    client: "httpx.AsyncClient", config: WebSearch, request: Request, extensions: dict[str, str]
) -> list[Result]:
    """Send ``request`` (already pinned to a checked address), retrying a transient failure once."""
    import httpx
    from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_fixed

    name = NAMES[config.provider]
    retrying = AsyncRetrying(
        stop=stop_after_attempt(ATTEMPTS),
        wait=wait_fixed(RETRY_WAIT_S),
        retry=retry_if_exception_type((httpx.TransportError, TimeoutError, _Transient)),
        reraise=True,
    )
    try:
        async for attempt in retrying:
            with attempt:
                status, reason, body = await _send(client, request, extensions)
                if status in _TRANSIENT:
                    raise _Transient(status, reason, body)
    except _Transient as exc:
        status, reason, body = exc.args
    except (httpx.TimeoutException, TimeoutError):
        raise SkillError(f"{name} did not answer within {TIMEOUT_S:g} s; try again later") from None
    except httpx.TransportError as exc:
        raise SkillError(f"cannot reach {name} ({type(exc).__name__}); try again later") from None
    except _TooLarge:
        raise SkillError(f"{name}'s answer was larger than {MAX_BYTES // 1024} KiB") from None
    if status != 200:
        raise SkillError(redact(failure(config, status, reason, body), config.api_key))
    return parse_results(config, body)


class _Transient(Exception):
    """A status worth one more try; carries (status, reason, body) out of the retry loop."""


class _TooLarge(Exception):
    pass


async def _send(
    client: "httpx.AsyncClient", request: Request, extensions: dict[str, str]
) -> tuple[int, str, bytes]:
    # httpx's timeout bounds each read; this bounds the whole answer, however it trickles in.
    async with (
        asyncio.timeout(TIMEOUT_S),
        client.stream(
            request.method, request.url, headers=request.headers, json=request.body, extensions=extensions
        ) as response,
    ):
        body = bytearray()
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) > MAX_BYTES:
                raise _TooLarge
        return response.status_code, response.reason_phrase, bytes(body)


def failure(config: WebSearch, status: int, reason: str, body: bytes) -> str:
    """One line saying why the provider did not answer with results."""
    name = NAMES[config.provider]
    detail = _detail(body)
    said = f"HTTP {status} {reason}".strip() + (f": {detail}" if detail else "")
    if config.provider == "searxng" and status == 403:
        return f"SearXNG refused the search ({said}); its settings.yml must list json in search.formats"
    if status in (401, 403) or (config.provider == "brave" and "SUBSCRIPTION_TOKEN" in detail):
        return f"{name} refused the API key ({said}); check {KEY_SETTINGS[config.provider]}"
    if status == 429:
        return f"{name} is rate limiting searches ({said}); try again later"
    if status >= 500:
        return f"{name} failed ({said}); try again later"
    if 300 <= status < 400:
        return f"{name} answered with a redirect ({said}); set its final URL in the settings"
    return f"{name} refused the search ({said})"


def _detail(body: bytes) -> str:
    """The provider's own error words, if its error body is JSON: Brave's ``error.detail`` and
    ``error.code``, Tavily's ``detail.error``, or a top-level ``error``/``message``/``detail``."""
    try:
        data = json.loads(body)
    except ValueError:
        return ""
    if not isinstance(data, dict):
        return ""
    words: list[str] = []
    for key in ("error", "detail", "message"):
        value = data.get(key)
        if isinstance(value, str):
            words.append(value)
        elif isinstance(value, dict):
            words += [str(value[k]) for k in ("code", "detail", "error", "message") if k in value]
    return _clean(" ".join(words), 200)


def parse_results(config: WebSearch, body: bytes) -> list[Result]:
    """The results list of a provider's JSON answer, each field cleaned and cut."""
    name = NAMES[config.provider]
    try:
        data = json.loads(body)
    except ValueError:
        raise SkillError(f"{name} did not answer with JSON") from None
    holder = data
    if config.provider == "brave" and isinstance(data, dict):
        holder = data.get("web", {"results": []})  # Brave leaves ``web`` out when nothing matched
    found = holder.get("results") if isinstance(holder, dict) else None
    if not isinstance(found, list):
        raise SkillError(f"{name}'s answer has no results list")
    snippet_key = "description" if config.provider == "brave" else "content"
    results = []
    for item in found:
        if not isinstance(item, dict) or not isinstance(item.get("url"), str):
            continue
        results.append(
            Result(
                title=_clean(str(item.get("title") or ""), TITLE_CHARS) or "(no title)",
                url=_cut(item["url"].strip(), URL_CHARS),
                snippet=_clean(str(item.get(snippet_key) or ""), SNIPPET_CHARS),
            )
        )
    return results


def format_results(query: str, results: list[Result]) -> str:
    """Numbered results, one block each: title, URL, snippet."""
    if not results:
        return f"No results for {query!r}."
    blocks = []
    for number, result in enumerate(results, 1):
        lines = [f"{number}. {result.title}", f"   {result.url}"]
        if result.snippet:
            lines.append(f"   {result.snippet}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def _clean(text: str, limit: int) -> str:
    """Plain text on one line: providers mark matches with tags (Brave's ``<strong>``)."""
    return _cut(" ".join(html.unescape(_TAG.sub("", text)).split()), limit)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def redact(text: str, key: str | None) -> str:
    # A provider that echoes the request (some error pages do) must not show the key to the model.
    return text.replace(key, "***") if key else text


def config_of(settings: Settings) -> WebSearch | None:
    """The web search provider the settings name (they allow at most one), or None."""
    # OMNI_WEB_ALLOW_PRIVATE already lets the whole web skill reach private addresses.
    private = settings.web_search_allow_private or settings.web_allow_private
    if settings.searxng_url:
        return WebSearch("searxng", settings.searxng_url, allow_private=private)
    if settings.brave_api_key:
        key = settings.brave_api_key.get_secret_value()
        return WebSearch("brave", settings.brave_api_url, key, allow_private=private)
    if settings.tavily_api_key:
        key = settings.tavily_api_key.get_secret_value()
        return WebSearch("tavily", settings.tavily_api_url, key, allow_private=private)
    return None


async def search_web(config: WebSearch, query: str, count: int) -> list[Result]:
    """At most ``count`` results from ``config``'s provider, its address checked and pinned as
    ``fetch_url``'s is; every failure is a :class:`SkillError` in words for the model (``omni
    doctor`` shows them too)."""
    import httpx  # as in fetch_url: only the first search pays for the import

    request = build_request(config, query, count)
    try:
        address = await check_url(request.url, config.allow_private)
    except NonPublicAddress as exc:
        hint = "set OMNI_WEB_SEARCH_ALLOW_PRIVATE=true for a self-hosted one"
        raise SkillError(f"search endpoint: {exc}; {hint}") from None
    except SkillError as exc:
        raise SkillError(f"search endpoint: {exc}") from None
    target, headers, extensions = pinned_request(request.url, address)
    pinned = Request(request.method, target, {**request.headers, **headers}, request.body)
    async with httpx.AsyncClient(
        follow_redirects=False, timeout=TIMEOUT_S, headers={"User-Agent": USER_AGENT}
    ) as client:
        results = await fetch(client, config, pinned, extensions)
    return results[:count]  # SearXNG answers a page whatever the count
