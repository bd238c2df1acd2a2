"""The web skill: fetch a public URL and return readable text, refusing private addresses (SSRF);
search the web through the configured provider (``search.py``), whose endpoint obeys the same rule."""

# Annotations are evaluated once, here: the SDK reads a tool's hints several times at start-up
# and string annotations (``from __future__ import annotations``) would be re-parsed each time.

import asyncio
import codecs
import ipaddress
import socket
from typing import TYPE_CHECKING, Annotated
from urllib.parse import urljoin, urlsplit, urlunsplit

from pydantic import Field

from skills._context import SkillsContext, ToolContext, WebSearch, skills_context
from skills._tool import SkillError, tool
from skills.web import search

if TYPE_CHECKING:
    import httpx

TIMEOUT_S = 20.0
MAX_BYTES = 2 * 1024 * 1024
MAX_REDIRECTS = 5
USER_AGENT = "omni-web-skill/1.0 (+https://github.com/)"
_TEXT_TYPES = (
    "text/",
    "application/json",
    "application/xml",
    "application/xhtml",
    "application/rss",
    "+json",
    "+xml",
)
# Ranges ipaddress does not flag as private but that are never public destinations
# (carrier-grade NAT, IETF protocol assignments, local-use NAT64 of RFC 8215).
_EXTRA_BLOCKED = (
    ipaddress.ip_network("100.64.0.0/10"),
    ipaddress.ip_network("192.0.0.0/24"),
    ipaddress.ip_network("64:ff9b:1::/48"),
)
# The well-known NAT64 prefix (RFC 6052): the last 32 bits are the IPv4 host a gateway reaches.
_NAT64 = ipaddress.ip_network("64:ff9b::/96")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class NonPublicAddress(SkillError):
    """A URL's host resolves to a loopback, private or otherwise non-public address."""


def embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """IPv4 addresses an IPv6 address carries: mapped, 6to4, Teredo (server and client), NAT64.

    Packets to such an address end up at the IPv4 host inside it (through a relay or gateway), so
    a filter that judged only the IPv6 form would let ``2002:7f00:1::`` reach 127.0.0.1.
    """
    found = [v4 for v4 in (ip.ipv4_mapped, ip.sixtofour) if v4 is not None]
    if ip.teredo is not None:
        found += ip.teredo
    if ip in _NAT64:
        found.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return found


def is_public_address(ip: IPAddress) -> bool:
    """Whether ``ip`` is a public unicast address (not loopback, private, link-local, metadata...).

    An IPv6 address that embeds IPv4 addresses is public only if each of those is. Mapped and
    NAT64 addresses are judged by their IPv4 alone: ipaddress calls both ranges non-global, yet
    behind DNS64 every public host has a NAT64 address.
    """
    if isinstance(ip, ipaddress.IPv6Address):
        inner = embedded_ipv4(ip)
        if ip.ipv4_mapped is not None or ip in _NAT64:
            return all(map(_is_public, inner))
        if inner and not all(map(_is_public, inner)):
            return False
    return _is_public(ip)


def _is_public(ip: IPAddress) -> bool:
    if any(ip in net for net in _EXTRA_BLOCKED if net.version == ip.version):
        return False
    return ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_link_local)


async def _check_url(url: str, allow_private: bool) -> str | None:
    """Refuse non-http(s) URLs and hosts that resolve to a non-public address.

    Returns the checked address to connect to (None when private addresses are allowed), so
    the request cannot be sent to a different address by a second, rebound DNS answer.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise SkillError(f"only http and https URLs can be fetched, not {parts.scheme or 'no scheme'!r}")
    host = parts.hostname
    if not host:
        raise SkillError(f"URL {url!r} has no host")
    if allow_private:
        return None
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        raise SkillError(f"cannot resolve host {host!r}") from None
    addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
    for address in addresses:
        if not is_public_address(address):
            raise NonPublicAddress(f"refusing {host!r}: it resolves to a non-public address ({address})")
    if not addresses:
        raise SkillError(f"cannot resolve host {host!r}")
    return str(addresses[0])


def pinned_request(url: str, address: str | None) -> tuple[str, dict[str, str], dict[str, str]]:
    """URL, headers and httpx extensions that reach ``address`` while naming the real host.

    The Host header keeps virtual hosting working and ``sni_hostname`` keeps TLS verifying the
    certificate against the real name.
    """
    if address is None:
        return url, {}, {}
    parts = urlsplit(url)
    host = parts.hostname or ""
    ip_host = f"[{address}]" if ":" in address else address
    netloc = f"{ip_host}:{parts.port}" if parts.port else ip_host
    headers = {"Host": f"{host}:{parts.port}" if parts.port else host}
    extensions = {"sni_hostname": host} if parts.scheme == "https" else {}
    return urlunsplit(parts._replace(netloc=netloc)), headers, extensions


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
        target, headers, extensions = pinned_request(url, await _check_url(url, allow_private))
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
    results = await search_web(config, query, count)
    return search.redact(search.format_results(query, results), config.api_key)


async def search_web(config: WebSearch, query: str, count: int) -> list[search.Result]:
    """At most ``count`` results from ``config``'s provider, its address checked and pinned as
    ``fetch_url``'s is; every failure is a :class:`SkillError` in words for the model (``omni
    doctor`` shows them too)."""
    import httpx  # as in fetch_url: only the first search pays for the import

    request = search.build_request(config, query, count)
    try:
        address = await _check_url(request.url, config.allow_private)
    except NonPublicAddress as exc:
        hint = "set OMNI_WEB_SEARCH_ALLOW_PRIVATE=true for a self-hosted one"
        raise SkillError(f"search endpoint: {exc}; {hint}") from None
    except SkillError as exc:
        raise SkillError(f"search endpoint: {exc}") from None
    target, headers, extensions = pinned_request(request.url, address)
    pinned = search.Request(request.method, target, {**request.headers, **headers}, request.body)
    async with httpx.AsyncClient(
        follow_redirects=False, timeout=search.TIMEOUT_S, headers={"User-Agent": USER_AGENT}
    ) as client:
        results = await search.fetch(client, config, pinned, extensions)
    return results[:count]  # SearXNG answers a page whatever the count
