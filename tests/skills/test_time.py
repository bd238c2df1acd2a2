from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from mcp import Client

from tests.skills.conftest import text_of

pytestmark = pytest.mark.anyio


async def test_current_time_in_a_timezone(client: Client) -> None:
    result = await client.call_tool("current_time", {"timezone": "Asia/Tokyo"})
    data = result.structured_content
    assert data and data["timezone"] == "Asia/Tokyo" and data["utc_offset"] == "+09:00"
    assert data["date"] == datetime.now(ZoneInfo("Asia/Tokyo")).date().isoformat()


async def test_unknown_timezone_is_an_error(client: Client) -> None:
    result = await client.call_tool("current_time", {"timezone": "Mars/Olympus"})
    assert result.is_error and "unknown timezone" in text_of(result)


async def test_date_arithmetic(client: Client) -> None:
    shifted = await client.call_tool("add_to_date", {"start": "2024-02-28", "days": 2})
    assert shifted.structured_content == {"result": "2024-03-01", "weekday": "Friday"}
    shifted = await client.call_tool("add_to_date", {"start": "2024-03-01T10:00", "hours": -12})
    assert shifted.structured_content == {"result": "2024-02-29T22:00:00", "weekday": "Thursday"}
    between = await client.call_tool("days_between", {"start": "2024-01-01", "end": "2025-01-01"})
    assert between.structured_content == {"days": 366}
    bad = await client.call_tool("days_between", {"start": "yesterday", "end": "2025-01-01"})
    assert bad.is_error and "ISO date" in text_of(bad)
