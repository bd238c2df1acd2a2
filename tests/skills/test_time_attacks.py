"""The time skill attacked as a hostile non-admin would, through the real ``omni mcp``.

Its only reach is the time zone database: a zone name must not become a path to another file,
and no argument may crash the tool or the server.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.skills.conftest import NON_ADMIN, RealServer, non_admin_root, text_of

pytestmark = pytest.mark.anyio

# A file shaped like a zone file (the TZif magic) that a non-admin wrote into their folder.
FAKE_TZIF = "TZif2" + "\0" * 40


async def test_zone_names_cannot_reach_files(real_server: RealServer, workspace: Path) -> None:
    async with real_server() as session:
        written = await session.call_tool(
            "write_file", {"path": "zone", "content": FAKE_TZIF}, meta=NON_ADMIN
        )
        assert not written.is_error, text_of(written)
        planted = non_admin_root(workspace) / "zone"
        names = [
            str(planted),
            "../../../../../../" + str(planted).lstrip("/"),
            "/etc/passwd",
            "../../../../etc/passwd",
            "UTC\0",
            "x" * 100_000,
            "Europe/../../../../etc/hostname",
        ]
        for name in names:
            result = await session.call_tool("current_time", {"timezone": name}, meta=NON_ADMIN)
            assert result.is_error and "unknown timezone" in text_of(result), name[:60]
        good = await session.call_tool("current_time", {"timezone": "Europe/Berlin"}, meta=NON_ADMIN)
        assert not good.is_error


async def test_out_of_range_arithmetic_is_a_clear_error(real_server: RealServer) -> None:
    async with real_server() as session:
        for args in (
            {"start": "2025-01-01", "days": 10**18},
            {"start": "2025-01-01", "weeks": -(10**30)},
            {"start": "9999-12-31T23:59", "minutes": 1},
            {"start": "not a date"},
            {"start": "2025-01-01T00:00+99:00"},
        ):
            result = await session.call_tool("add_to_date", args, meta=NON_ADMIN)
            assert result.is_error, args
            assert "Traceback" not in text_of(result) and "\n" not in text_of(result), args
        mixed = await session.call_tool(
            "days_between", {"start": "2025-01-01T00:00+05:00", "end": "2025-03-01"}, meta=NON_ADMIN
        )
        assert not mixed.is_error and '"days":59' in text_of(mixed).replace(" ", "")
