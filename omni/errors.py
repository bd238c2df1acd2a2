"""The root of omni's expected failures.

    OmniError                  user_message: what a user may be shown
    ├── SettingsError          a bad or missing OMNI_* value (the CLI exits 2)
    ├── memory.errors.*        storage failures
    └── agent.errors.*         LLM and tool failures

Only the edges (bot error handler, ``omni chat``, the gateway, the CLI, the MCP server) turn
these into words; everything else raises them.
"""

from __future__ import annotations


class OmniError(Exception):
    """An expected failure whose ``user_message`` is safe to show to a user."""

    user_message = "Sorry, something went wrong on my side. Please try again in a moment."

    def __init__(self, message: str = "", *, user_message: str | None = None) -> None:
        super().__init__(message or self.user_message)
        if user_message is not None:
            self.user_message = user_message


class SettingsError(OmniError):
    """A setting is missing or wrong; ``str(err)`` is one line naming it."""
