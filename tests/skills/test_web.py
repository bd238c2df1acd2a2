from __future__ import annotations

import ipaddress
import sys
from collections.abc import AsyncIterator, Callable

import pytest
from mcp import Client
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from tests.fakes.server import serve
from tests.skills.conftest import text_of

pytestmark = pytest.mark.anyio

PAGE = "<html><head><title>T</title></head><body><h1>Hello</h1><p>Some <b>bold</b> text.</p></body></html>"


def _app() -> Starlette:
    async def page(_: Request) -> Response:
        return HTMLResponse(PAGE)

    async def big(_: Request) -> Response:
        return PlainTextResponse("y" * 50_000)

    async def binary(_: Request) -> Response:
        return Response(b"\x89PNG", media_type="image/png")

    async def to(request: Request) -> Response:
        return RedirectResponse(request.query_params["url"], status_code=302)

    routes = [Route("/page", page), Route("/big", big), Route("/img", binary), Route("/to", to)]
    return Starlette(routes=routes)


@pytest.fixture
async def site() -> AsyncIterator[str]:
    async with serve(_app()) as url:
        yield url


async def test_private_addresses_are_refused_by_default(client: Client, site: str) -> None:
    for url in (f"{site}/page", site.replace("127.0.0.1", "localhost") + "/page", "http://169.254.169.254/"):
        result = await client.call_tool("fetch_url", {"url": url})
        assert result.is_error and "non-public address" in text_of(result), url


async def test_only_http_and_https(client: Client) -> None:
    for url in ("file:///etc/passwd", "ftp://example.com/x", "gopher://x"):
        result = await client.call_tool("fetch_url", {"url": url})
        assert result.is_error and "only http and https" in text_of(result)


async def test_html_becomes_markdown_when_private_is_allowed(
    connect: Callable[..., Client], site: str
) -> None:
    async with connect(web_allow_private=True) as client:
        result = await client.call_tool("fetch_url", {"url": f"{site}/page"})
        assert not result.is_error
        assert "# Hello" in text_of(result) and "**bold**" in text_of(result)
        raw = await client.call_tool("fetch_url", {"url": f"{site}/page", "raw": True})
        assert "<h1>Hello</h1>" in text_of(raw)
        big = await client.call_tool("fetch_url", {"url": f"{site}/big", "max_chars": 1000})
        assert "[truncated: showed 1000 of 50000 characters]" in text_of(big)
        img = await client.call_tool("fetch_url", {"url": f"{site}/img"})
        assert img.is_error and "not text" in text_of(img)
        hop = await client.call_tool("fetch_url", {"url": f"{site}/to?url=/page"})
        assert "# Hello" in text_of(hop)


async def test_redirect_to_a_private_address_is_refused(client: Client, site: str) -> None:
    # Let the test server's loopback address count as public, so only the redirect target is judged.
    web = sys.modules["skills.web.address"]  # where fetch_url's address check looks it up
    real = web.is_public_address

    def loopback_is_public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        return str(ip) == "127.0.0.1" or real(ip)

    web.is_public_address = loopback_is_public
    try:
        ok = await client.call_tool("fetch_url", {"url": f"{site}/page"})
        assert not ok.is_error
        for target in ("http://169.254.169.254/latest/meta-data/", "http://10.1.2.3/", "http://[::1]:1/"):
            result = await client.call_tool("fetch_url", {"url": f"{site}/to?url={target}"})
            assert result.is_error and "non-public address" in text_of(result), target
    finally:
        web.is_public_address = real


def test_public_address_classification() -> None:
    from skills.web.address import is_public_address

    public = ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111"]
    private = ["127.0.0.1", "10.0.0.1", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1",
               "0.0.0.0", "::1", "fe80::1", "fd00::1", "::ffff:127.0.0.1", "224.0.0.1"]  # fmt: skip
    assert all(is_public_address(ipaddress.ip_address(a)) for a in public)
    assert not any(is_public_address(ipaddress.ip_address(a)) for a in private)


def test_requests_are_pinned_to_the_checked_address() -> None:
    from skills.web.address import pinned_request

    assert pinned_request("http://example.org/a?b=1", None) == ("http://example.org/a?b=1", {}, {})
    url, headers, ext = pinned_request("https://example.org:8443/p", "93.184.216.34")
    assert url == "https://93.184.216.34:8443/p"
    assert headers == {"Host": "example.org:8443"} and ext == {"sni_hostname": "example.org"}
    url, headers, ext = pinned_request("http://v6.example/", "2606:2800:220:1::1")
    assert url == "http://[2606:2800:220:1::1]/" and headers == {"Host": "v6.example"} and ext == {}
