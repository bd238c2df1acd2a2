"""Where the web skill may connect: public addresses only (unless allowed), checked once and
pinned, so a second, rebound DNS answer cannot send the request elsewhere (SSRF)."""

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit, urlunsplit

from skills._tool import SkillError

USER_AGENT = "omni-web-skill/1.0 (+https://github.com/)"  # on every request the skill makes

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


async def check_url(url: str, allow_private: bool) -> str | None:
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
