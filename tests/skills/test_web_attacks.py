"""The web skill attacked as the audit did, through the real ``omni mcp``: SSRF and hostile pages."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.fakes.server import serve
from tests.skills.conftest import NON_ADMIN, RealServer, text_of

pytestmark = pytest.mark.anyio

# IPv6 forms that carry a private IPv4 address: each one reaches that address through a relay.
EMBEDDED = [
    "2002:7f00:1::",  # 6to4 of 127.0.0.1
    "2002:a9fe:a9fe::1",  # 6to4 of 169.254.169.254 (cloud metadata)
    "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
    "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
    "64:ff9b:1::a00:1",  # local-use NAT64 (RFC 8215)
    "2001:0:4136:e378:8000:63bf:80ff:fffe",  # Teredo whose client is 127.0.0.1
    "::ffff:127.0.0.1",
    "::127.0.0.1",
]


def _hostile_site() -> Starlette:
    async def odd_charset(_: Request) -> Response:
        body = "<html><body><p>caf\xe9 ok</p></body></html>".encode("latin-1")
        return Response(body, headers={"content-type": "text/html; charset=no-such-charset"})

    return Starlette(routes=[Route("/odd", odd_charset)])


@pytest.fixture
async def site() -> AsyncIterator[str]:
    async with serve(_hostile_site()) as url:
        yield url


async def test_ipv6_forms_of_private_ipv4_are_refused(real_server: RealServer) -> None:
    async with real_server() as session:
        for address in EMBEDDED:
            result = await session.call_tool("fetch_url", {"url": f"http://[{address}]/"}, meta=NON_ADMIN)
            assert result.is_error and "non-public address" in text_of(result), (address, text_of(result))


def test_embedded_addresses_are_judged_by_their_ipv4() -> None:
    import ipaddress

    from skills.web.address import is_public_address

    assert not any(is_public_address(ipaddress.ip_address(a)) for a in EMBEDDED)
    # The same forms around a public IPv4 address stay usable.
    for public in ("2002:808:808::", "64:ff9b::808:808", "::ffff:8.8.8.8"):
        assert is_public_address(ipaddress.ip_address(public)), public


async def test_unknown_charset_falls_back_to_utf8(real_server: RealServer, site: str) -> None:
    async with real_server(OMNI_WEB_ALLOW_PRIVATE="true") as session:
        result = await session.call_tool("fetch_url", {"url": f"{site}/odd"}, meta=NON_ADMIN)
    assert not result.is_error, text_of(result)
    assert "caf\ufffd ok" in text_of(result)
