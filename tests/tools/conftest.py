from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest

from agent.mcp_config import StdioSpec

EXTRA_SERVER = Path(__file__).with_name("extra_server.py")


@pytest.fixture
def extra_spec() -> StdioSpec:
    return StdioSpec(command=sys.executable, args=[str(EXTRA_SERVER)])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
