"""The web skill: fetch a public URL and return readable text, refusing private addresses (SSRF);
search the web through the configured provider (``search.py``), whose endpoint obeys the same rule."""

# Annotations are evaluated once, here: the SDK reads a tool's hints several times at start-up
# and string annotations (``from __future__ import annotations``) would be re-parsed each time.

import asyncio
import codecs
from typing import TYPE_CHECKING, Annotated
from urllib.parse import urljoin

from pydantic import Field

from skills._context import SkillsContext, ToolContext, skills_context
from skills._tool import SkillError, tool
from skills.web import search
from skills.web.address import USER_AGENT, check_url, pinned_request

if TYPE_CHECKING:
    import httpx

TIMEOUT_S = 20.0
MAX_BYTES = 2 * 1024 * 1024
MAX_REDIRECTS = 5
_TEXT_TYPES = (
    "text/",
    "application/json",
    "application/xml",
    "application/xhtml",
    "application/rss",
    "+json",
    "+xml",
)


@tool(read_only=True, open_world=True, title="Fetch a web page")
async def fetch_url(
    ctx: ToolContext,
    url: Annotated[str, Field(description="An http:// or https:// URL")],
    max_chars: Annotated[int, Field(ge=100, le=200_000, description="Truncate the text after this")] = 20_000,
    raw: Annotated[bool, Field(description="Return HTML as is instead of converting it")] = False,
) -> str:
    """Fetch a public web page and return its readable text (HTML as Markdown)."""
    import httpx  # costs ~100 ms: only the first fetch pays it, not server start-up

    allow_private = skills_context(ctx).web_allow_private
    try:
        async with (
            asyncio.timeout(TIMEOUT_S),
            httpx.AsyncClient(
                follow_redirects=False, timeout=TIMEOUT_S, headers={"User-Agent": USER_AGENT}
            ) as client,
        ):
            final_url, content_type, body = await _fetch(client, url, allow_private)
    except TimeoutError:
        raise SkillError(f"fetching {url!r} took longer than {TIMEOUT_S:.0f}s") from None
    except httpx.HTTPError as exc:
        raise SkillError(f"fetching {url!r} failed: {type(exc).__name__}: {exc}".splitlines()[0]) from None
    text = _readable(body, content_type, raw, final_url)
    if len(text) > max_chars:
        text = text[:max_chars] + f"\n\n[truncated: showed {max_chars} of {len(text)} characters]"
    return text


async def _fetch(client: "httpx.AsyncClient", url: str, allow_private: bool) -> tuple[str, str, str]:
    # Redirects are followed by hand so every hop's host is checked before it is contacted.
    for _ in range(MAX_REDIRECTS + 1):
        target, headers, extensions = pinned_request(url, await check_url(url, allow_private))
        async with client.stream("GET", target, headers=headers, extensions=extensions) as response:
            if response.is_redirect and "location" in response.headers:
                url = urljoin(url, response.headers["location"])
                continue
            if response.status_code >= 400:
                raise SkillError(f"{url} answered HTTP {response.status_code} {response.reason_phrase}")
            content_type = response.headers.get("content-type", "").lower()
            if content_type and not any(kind in content_type for kind in _TEXT_TYPES):
                raise SkillError(f"{url} is not text (content-type {content_type.split(';')[0]})")
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) >= MAX_BYTES:
                    break
            return url, content_type, bytes(body[:MAX_BYTES]).decode(_codec(response), errors="replace")
    raise SkillError(f"too many redirects (more than {MAX_REDIRECTS})")


def _codec(response: "httpx.Response") -> str:
    """The page's declared charset when Python knows it, else UTF-8 (a page may name anything)."""
    declared = response.charset_encoding
    if declared:
        try:
            return codecs.lookup(declared).name
        except LookupError:
            pass
    return "utf-8"


def _readable(body: str, content_type: str, raw: bool, url: str) -> str:
    looks_html = "html" in content_type or (
        not content_type and body.lstrip()[:15].lower().startswith("<!doctype html")
    )
    if raw or not looks_html:
        return body
    import html2text

    converter = html2text.HTML2Text(baseurl=url, bodywidth=0)
    converter.ignore_images = True
    return str(converter.handle(body)).strip()


def _search_configured(context: SkillsContext) -> bool:
    return context.web_search is not None


@tool(read_only=True, open_world=True, title="Search the web", enabled=_search_configured)
async def web_search(
    ctx: ToolContext,
    query: Annotated[str, Field(min_length=1, max_length=400, description="What to search for")],
    count: Annotated[int, Field(ge=1, le=10, description="How many results")] = 5,
) -> str:
    """Search the web; returns numbered results with title, URL and snippet (read one with fetch_url)."""
    config = skills_context(ctx).web_search
    if config is None:  # never: the tool is registered only with a provider (enabled= above)
        raise SkillError("no web search provider is configured")
    results = await search.search_web(config, query, count)
    return search.redact(search.format_results(query, results), config.api_key)
